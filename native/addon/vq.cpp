// N-API for the vector codec (native/core/vq): d-dimensional k-means, product quantization / LR²VQ of a matrix,
// its reconstruction, and index packing. Argument checks and conversion only.
#include <cstring>
#include <memory>

#include "../core/pack.h"
#include "../core/vq/kmeans.h"
#include "../core/vq/product.h"
#include "common.h"

namespace wpa {

namespace {

template <typename T>
T* typed_of(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, size_t n, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw_arg(env, std::string(what) + (type == napi_float32_array ? " must be a Float32Array" : " must be a Uint32Array"));
  Bytes b = bytes_of(v, what);
  if (b.size != n * sizeof(T)) throw_arg(env, std::string(what) + " must hold " + std::to_string(n) + " values");
  return reinterpret_cast<T*>(b.data);
}

bool present(const Napi::Value& v) { return !v.IsUndefined() && !v.IsNull(); }

Napi::Float32Array f32_copy(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}

Napi::Array doubles(Napi::Env env, const std::vector<double>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, v[i]));
  return a;
}

class KmeansWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  const float *x = nullptr, *w = nullptr;
  size_t n = 0;
  int d = 0;
  wp::vq::KmeansParams p;
  wp::Context ctx;
  std::vector<float> centroids;
  std::vector<uint32_t> assign;
  wp::vq::KmeansStats st;
  void Run() override {
    centroids.resize((size_t)p.k * d);
    assign.resize(n);
    st = wp::vq::kmeans(x, w, n, d, p, centroids.data(), assign.data(), ctx);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("centroids", f32_copy(env, centroids));
    Napi::Uint32Array a = Napi::Uint32Array::New(env, n);
    if (n) std::memcpy(a.Data(), assign.data(), n * 4);
    o.Set("assign", a);
    o.Set("iterations", Napi::Number::New(env, st.iterations));
    o.Set("sse", Napi::Number::New(env, st.sse));
    o.Set("history", doubles(env, st.history));
    o.Set("reseeded", Napi::Number::New(env, (double)st.reseeded));
    return o;
  }
};

// kmeansNd(x, w|null, n, d, {k, maxIter, seed, seedSample, threads}, cancel?) → {centroids, assign, iterations, sse, history, reseeded}
Napi::Value KmeansNd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[4].IsObject()) throw_arg(env, "kmeansNd(x, w, n, d, params, cancel?)");
  auto* wk = new KmeansWorker(env);
  std::unique_ptr<KmeansWorker> guard(wk);
  wk->n = (size_t)info[2].As<Napi::Number>().Int64Value();
  wk->d = info[3].As<Napi::Number>().Int32Value();
  if (wk->d < 1 || wk->d > 1024) throw_arg(env, "d must be 1 ... 1024");
  wk->x = typed_of<float>(env, info[0], napi_float32_array, wk->n * wk->d, "x");
  if (present(info[1])) wk->w = typed_of<float>(env, info[1], napi_float32_array, wk->n * wk->d, "w");
  Napi::Object p = info[4].As<Napi::Object>();
  wk->p.k = (int)num_of(p, "k", 256);
  wk->p.max_iter = (int)num_of(p, "maxIter", 20);
  wk->p.seed = (uint64_t)num_of(p, "seed", 0);
  wk->p.seed_sample = (size_t)num_of(p, "seedSample", 0);
  wk->ctx.threads = (int)num_of(p, "threads", 0);
  wk->ctx.cancel = cancel_of(info[5]);
  wk->Keep(info[0]);
  wk->Keep(info[1]);
  wk->Keep(info[5]);
  guard.release();
  return wk->Queue();
}

class ProductWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::vq::ProductIn in;
  wp::vq::ProductParams p;
  wp::Context ctx;
  std::vector<float> scales, codebooks, projection;
  std::vector<uint32_t> codes;
  wp::vq::ProductStats st;
  void Run() override {
    const wp::vq::ProductShape sh = wp::vq::product_shape(in.rows, in.cols, p);
    scales.resize(p.row_scale ? in.rows : 0);
    codes.resize(in.rows * sh.positions);
    codebooks.resize(sh.groups * (size_t)p.k * p.m);
    projection.resize(p.rank != 0 ? (size_t)p.m * p.m : 0);
    wp::vq::ProductOut out{scales.data(), codes.data(), codebooks.data(), projection.data()};
    st = wp::vq::product_quantize(in, p, out, ctx);
    const int dk = p.rank != 0 ? st.rank : p.m;
    codebooks.resize(sh.groups * (size_t)p.k * dk);
    projection.resize(p.rank != 0 ? (size_t)dk * p.m : 0);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Uint32Array c = Napi::Uint32Array::New(env, codes.size());
    if (!codes.empty()) std::memcpy(c.Data(), codes.data(), codes.size() * 4);
    o.Set("codes", c);
    o.Set("codebooks", f32_copy(env, codebooks));
    if (p.rank != 0) o.Set("projection", f32_copy(env, projection));
    if (p.row_scale) o.Set("scales", f32_copy(env, scales));
    o.Set("rank", Napi::Number::New(env, p.rank != 0 ? st.rank : p.m));
    Napi::Array est = Napi::Array::New(env, st.estimate.size());
    for (size_t i = 0; i < st.estimate.size(); i++) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("rank", Napi::Number::New(env, st.estimate[i].rank));
      e.Set("lowRank", Napi::Number::New(env, st.estimate[i].low_rank));
      e.Set("clustering", Napi::Number::New(env, st.estimate[i].clustering));
      est.Set((uint32_t)i, e);
    }
    o.Set("estimate", est);
    o.Set("scalesF32", Napi::Boolean::New(env, st.scales_f32));
    o.Set("iterations", Napi::Number::New(env, st.iterations));
    o.Set("reseeded", Napi::Number::New(env, (double)st.reseeded));
    o.Set("indexEntropy", Napi::Number::New(env, st.index_entropy));
    if (in.gram) {
      o.Set("outputErrorInitial", Napi::Number::New(env, st.output_error_initial));
      o.Set("outputError", Napi::Number::New(env, st.output_error));
      o.Set("refineRounds", Napi::Number::New(env, st.refine_rounds));
    }
    return o;
  }
};

// vqEncode({w, rows, cols, importance?, gram?, name?}, {m, k, rank, rowScale, groupRows, maxIter, seed, f16,
//   refineRounds, threads}, cancel?, onProgress?) → {codes, codebooks, projection?, scales?, rank, estimate, ...}
Napi::Value VqEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject()) throw_arg(env, "vqEncode(tensor, params, cancel?, onProgress?)");
  Napi::Object t = info[0].As<Napi::Object>();
  Napi::Object p = info[1].As<Napi::Object>();
  auto* wk = new ProductWorker(env);
  std::unique_ptr<ProductWorker> guard(wk);
  wk->tensor = str_of(t, "name", "");
  wk->in.rows = (size_t)num_of(t, "rows", 0);
  wk->in.cols = (size_t)num_of(t, "cols", 0);
  const size_t numel = wk->in.rows * wk->in.cols;
  wk->in.w = typed_of<float>(env, t.Get("w"), napi_float32_array, numel, "w");
  if (present(t.Get("importance"))) wk->in.importance = typed_of<float>(env, t.Get("importance"), napi_float32_array, numel, "importance");
  if (present(t.Get("gram"))) wk->in.gram = typed_of<float>(env, t.Get("gram"), napi_float32_array, wk->in.cols * wk->in.cols, "gram");
  wk->p.m = (int)num_of(p, "m", 8);
  wk->p.k = (int)num_of(p, "k", 256);
  wk->p.rank = (int)num_of(p, "rank", 0);
  wk->p.row_scale = bool_of(p, "rowScale", false);
  wk->p.group_rows = (size_t)num_of(p, "groupRows", 0);
  wk->p.max_iter = (int)num_of(p, "maxIter", 20);
  wk->p.seed = (uint64_t)num_of(p, "seed", 0);
  wk->p.f16 = bool_of(p, "f16", false);
  wk->p.refine_rounds = (int)num_of(p, "refineRounds", 4);
  wk->p.rate = num_of(p, "rate", 0);
  wk->ctx.threads = (int)num_of(p, "threads", 0);
  wk->ctx.cancel = cancel_of(info[2]);
  wk->AttachProgress(env, info[3], wk->ctx);
  wk->Keep(t);
  wk->Keep(info[2]);
  guard.release();
  return wk->Queue();
}

class ReconstructWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  size_t rows = 0, cols = 0, group_rows = 0;
  int m = 0, k = 0, dk = 0;
  const float *scales = nullptr, *codebooks = nullptr, *projection = nullptr;
  const uint32_t* codes = nullptr;
  float* out = nullptr;
  wp::Context ctx;
  void Run() override { wp::vq::product_reconstruct(rows, cols, m, k, dk, group_rows, scales, codes, codebooks, projection, out, ctx); }
};

// vqDecode({rows, cols, m, k, dk, groupRows, codes, codebooks, projection?, scales?}, out: Float32Array, threads, cancel?)
Napi::Value VqDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_arg(env, "vqDecode(parts, out, threads, cancel?)");
  Napi::Object s = info[0].As<Napi::Object>();
  auto* wk = new ReconstructWorker(env);
  std::unique_ptr<ReconstructWorker> guard(wk);
  wk->rows = (size_t)num_of(s, "rows", 0);
  wk->cols = (size_t)num_of(s, "cols", 0);
  wk->m = (int)num_of(s, "m", 0);
  wk->k = (int)num_of(s, "k", 0);
  wk->dk = (int)num_of(s, "dk", 0);
  wk->group_rows = (size_t)num_of(s, "groupRows", 0);
  if (wk->m < 1 || wk->m > 16 || wk->k < 1 || wk->dk < 1 || wk->dk > wk->m) throw_arg(env, "vqDecode: bad m, k or dk");
  const size_t P = (wk->cols + wk->m - 1) / wk->m;
  const size_t gr = wk->group_rows ? std::min(wk->group_rows, wk->rows) : wk->rows;
  const size_t groups = gr ? (wk->rows + gr - 1) / gr : 0;
  wk->codes = typed_of<uint32_t>(env, s.Get("codes"), napi_uint32_array, wk->rows * P, "codes");
  for (size_t i = 0; i < wk->rows * P; i++)
    if (wk->codes[i] >= (uint32_t)wk->k) throw to_js_error(env, wp::Error(wp::Code::Format, "index " + std::to_string(wk->codes[i]) + " at " + std::to_string(i) + " is not below " + std::to_string(wk->k) + " codewords"));
  wk->codebooks = typed_of<float>(env, s.Get("codebooks"), napi_float32_array, groups * (size_t)wk->k * wk->dk, "codebooks");
  if (present(s.Get("projection"))) wk->projection = typed_of<float>(env, s.Get("projection"), napi_float32_array, (size_t)wk->dk * wk->m, "projection");
  else if (wk->dk != wk->m) throw_arg(env, "vqDecode: dk < m needs a projection");
  if (present(s.Get("scales"))) wk->scales = typed_of<float>(env, s.Get("scales"), napi_float32_array, wk->rows, "scales");
  wk->out = typed_of<float>(env, info[1], napi_float32_array, wk->rows * wk->cols, "out");
  wk->ctx.threads = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  wk->ctx.cancel = cancel_of(info[3]);
  wk->Keep(s);
  wk->Keep(info[1]);
  wk->Keep(info[3]);
  guard.release();
  return wk->Queue();
}

// packIndices(codes: Uint32Array, bits) → Uint8Array of ceil(n·bits/8) bytes (LSB first, native/core/pack.h).
Napi::Value PackIndices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int bits = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || bits < 1 || bits > 16)
    throw_arg(env, "packIndices(codes: Uint32Array, bits 1 ... 16)");
  Napi::Uint32Array c = info[0].As<Napi::Uint32Array>();
  Napi::Uint8Array out = Napi::Uint8Array::New(env, (c.ElementLength() * bits + 7) / 8);
  wp::pack_indices(c.Data(), c.ElementLength(), bits, out.Data());
  return out;
}

// unpackIndices(bytes: Uint8Array, n, bits) → Uint32Array of n codes.
Napi::Value UnpackIndices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = bytes_of(info[0], "bytes");
  const size_t n = info[1].IsNumber() ? (size_t)info[1].As<Napi::Number>().Int64Value() : 0;
  const int bits = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  if (bits < 1 || bits > 16) throw_arg(env, "unpackIndices: bits must be 1 ... 16");
  if (b.size < (n * bits + 7) / 8) throw to_js_error(env, wp::Error(wp::Code::Format, "packed indices are " + std::to_string(b.size) + " bytes, need " + std::to_string((n * bits + 7) / 8)));
  Napi::Uint32Array out = Napi::Uint32Array::New(env, n);
  wp::unpack_indices(b.data, n, bits, out.Data());
  return out;
}

}  // namespace

void init_vq(Napi::Env env, Napi::Object exports) {
  exports.Set("kmeansNd", Napi::Function::New(env, KmeansNd, "kmeansNd"));
  exports.Set("vqEncode", Napi::Function::New(env, VqEncode, "vqEncode"));
  exports.Set("vqDecode", Napi::Function::New(env, VqDecode, "vqDecode"));
  exports.Set("packIndices", Napi::Function::New(env, PackIndices, "packIndices"));
  exports.Set("unpackIndices", Napi::Function::New(env, UnpackIndices, "unpackIndices"));
  exports.Set("vqKernelIsa", Napi::String::New(env, wp::vq::kmeans_kernel_isa()));
}

}  // namespace wpa
