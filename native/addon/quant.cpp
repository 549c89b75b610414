// N-API face of the scalar pipeline: quantize / dequantize a tensor, and solve a 1-D problem directly.
#include <cmath>
#include <thread>

#include "../core/pack.h"
#include "../core/quantize.h"
#include "../core/summarize.h"
#include "common.h"
#ifdef WP_WITH_CUDA
#include "../cuda/device.h"
#endif

namespace wpa {

namespace {

wp::Granularity granularity_of(Napi::Env env, const std::string& g) {
  if (g == "tensor") return wp::Granularity::Tensor;
  if (g == "row") return wp::Granularity::Row;
  if (g == "group") return wp::Granularity::Group;
  throw_arg(env, "granularity must be tensor, row or group, got '" + g + "'");
}

Napi::Object stats_to_js(Napi::Env env, const wp::QuantizeStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("n", Napi::Number::New(env, (double)s.n));
  o.Set("slices", Napi::Number::New(env, (double)s.slices));
  o.Set("sse", Napi::Number::New(env, s.sse));
  o.Set("signal", Napi::Number::New(env, s.signal));
  o.Set("maxAbsErr", Napi::Number::New(env, s.max_abs_err));
  o.Set("levelsUsed", Napi::Number::New(env, s.levels_used));
  o.Set("backend", s.backend);
  return o;
}

class QuantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::TensorIn in;
  wp::QuantizeParams params;
  wp::QuantizeOut out;
  wp::Context ctx;
  wp::QuantizeStats stats;
  wp::Quantizer fixed;
  std::vector<wp::Quantizer> slices;
  void Run() override { wp::quantize_tensor(in, params, out, ctx, &stats); }
  Napi::Value Result(Napi::Env env) override { return stats_to_js(env, stats); }
};

// quantize(tensor: {data, dtype, numel, importance?: Float32Array, name?},
//          params: {method, bits, granularity, sliceSize, codebookDtype, packBits?, fixedLevels?, fixedThresholds?,
//                   device?, threads?, and the solver's: seed, maxIter, symmetric, step, lambda, lambda2,
//                   targetValues, rate, penalty, l0Algorithm, dpBound},
//          codes: Uint8Array, codebook: Uint8Array, cancel?: Int32Array, onProgress?: (done, total) => void)
//   -> Promise<stats>: one tensor through the scalar pipeline (native/core/quantize.h).
Napi::Value Quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject()) throw_arg(env, "quantize(tensor, params, codes, codebook, cancel?)");
  Napi::Object t = info[0].As<Napi::Object>(), p = info[1].As<Napi::Object>();
  auto* w = new QuantizeWorker(env);
  std::unique_ptr<QuantizeWorker> guard(w);
  Bytes data = bytes_of(t.Get("data"), "tensor data");
  w->in.data = data.data;
  w->in.dtype = dtype_of(env, str_of(t, "dtype"));
  w->in.numel = (uint64_t)num_of(t, "numel", 0);
  w->tensor = str_of(t, "name", "");
  size_t esz = wp::dtype_size(w->in.dtype);
  if (esz == 0 || data.size != w->in.numel * esz) throw_arg(env, "tensor data size does not match numel x dtype size");
  w->in.importance = importance_of(env, t.Get("importance"), w->in.numel, *w);
  w->params.method = str_of(p, "method", "kmeans-optimal");
  double bits = num_of(p, "bits", 4);
  if (!(bits >= 1 && bits <= 8) || bits != std::floor(bits)) throw_arg(env, "bits must be an integer from 1 to 8");
  w->params.bits = (int)bits;
  w->params.granularity = granularity_of(env, str_of(p, "granularity", "tensor"));
  w->params.slice_size = (uint64_t)num_of(p, "sliceSize", (double)w->in.numel);
  if (w->params.slice_size == 0) w->params.slice_size = 1;
  w->params.codebook_dtype = dtype_of(env, str_of(p, "codebookDtype", "F32"));
  w->params.solver = solver_params_of(env, p.Get("solverParams"));
  w->params.solver.threads = (int)num_of(p, "threads", 0);
  if (w->params.solver.threads <= 0) w->params.solver.threads = (int)std::thread::hardware_concurrency();
  Napi::Value fl = p.Get("fixedLevels");
  if (!fl.IsUndefined() && !fl.IsNull()) {
    auto read = [&](const Napi::Value& v, const char* what) {
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
        throw_arg(env, std::string(what) + " must be a Float64Array");
      Bytes b = bytes_of(v, what);
      const double* d = reinterpret_cast<const double*>(b.data);
      return std::vector<double>(d, d + b.size / 8);
    };
    w->fixed.levels = read(fl, "fixedLevels");
    Napi::Value ft = p.Get("fixedThresholds");
    if (!ft.IsUndefined() && !ft.IsNull()) w->fixed.thresholds = read(ft, "fixedThresholds");
    if (w->fixed.levels.empty() || (!w->fixed.thresholds.empty() && w->fixed.thresholds.size() + 1 != w->fixed.levels.size()))
      throw_arg(env, "fixedLevels must be non-empty, with one threshold fewer");
    w->params.fixed = &w->fixed;
  }
  // fixedSlices: {levels: Float64Array [slices·L], thresholds: Float64Array [slices·(L−1)]}, one quantizer per slice.
  Napi::Value fs = p.Get("fixedSlices");
  if (!fs.IsUndefined() && !fs.IsNull()) {
    if (!fs.IsObject()) throw_arg(env, "fixedSlices must be {levels, thresholds}");
    Napi::Object fo = fs.As<Napi::Object>();
    auto read = [&](const Napi::Value& v, const char* what) {
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
        throw_arg(env, std::string(what) + " must be a Float64Array");
      Bytes b = bytes_of(v, what);
      const double* d = reinterpret_cast<const double*>(b.data);
      return std::vector<double>(d, d + b.size / 8);
    };
    std::vector<double> L = read(fo.Get("levels"), "fixedSlices.levels"), T = read(fo.Get("thresholds"), "fixedSlices.thresholds");
    const uint64_t nsl = wp::slice_count(w->in.numel, w->params.slice_size);
    if (nsl == 0 || L.size() % nsl || L.size() / nsl < 1 || T.size() != nsl * (L.size() / nsl - 1))
      throw_arg(env, "fixedSlices must hold L levels and L - 1 thresholds per slice");
    const size_t nl = L.size() / nsl;
    w->slices.resize(nsl);
    for (size_t s = 0; s < nsl; ++s) {
      w->slices[s].levels.assign(L.begin() + s * nl, L.begin() + (s + 1) * nl);
      w->slices[s].thresholds.assign(T.begin() + s * (nl - 1), T.begin() + (s + 1) * (nl - 1));
    }
    w->params.fixed_slices = &w->slices;
  }
  Napi::Value af = t.Get("assignFrom");
  if (!af.IsUndefined() && !af.IsNull()) {
    if (!af.IsTypedArray() || af.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_arg(env, "assignFrom must be a Float32Array");
    Bytes ab = bytes_of(af, "assignFrom");
    if (ab.size != w->in.numel * 4) throw_arg(env, "assignFrom must have one value per element");
    w->in.assign_from = reinterpret_cast<const float*>(ab.data);
    w->Keep(af);
  }
  w->ctx.threads = (int)num_of(p, "threads", 0);
  w->ctx.cancel = cancel_of(info[4]);
  w->AttachProgress(env, info[5], w->ctx);
  // device: 'cpu' | 'cuda' | 'auto'. auto takes CUDA when a driver and a device answer, and never fails.
  std::string device = str_of(p, "device", "auto");
  if (device != "cpu" && device != "cuda" && device != "auto") throw_arg(env, "device must be auto, cpu or cuda");
#ifdef WP_WITH_CUDA
  if (device != "cpu") w->params.backend16 = wp::cuda::backend16();
  if (device == "cuda" && !w->params.backend16)
    throw to_js_error(env, wp::Error(wp::Code::Cuda, "device 'cuda' asked for, but no CUDA device answers: " + wp::cuda::device_info().reason));
#else
  if (device == "cuda") throw to_js_error(env, wp::Error(wp::Code::Cuda, "device 'cuda' asked for, but this binary was built without CUDA"));
#endif
  Bytes codes = bytes_of(info[2], "codes");
  Bytes cb = bytes_of(info[3], "codebook");
  const uint64_t ns = wp::slice_count(w->in.numel, w->params.slice_size);
  w->params.pack_bits = (int)num_of(p, "packBits", 0);
  if (w->params.pack_bits != 0 && w->params.pack_bits != 8 && w->params.pack_bits != w->params.bits) throw_arg(env, "packBits must be 8 or bits");
  int pbq = w->params.pack_bits ? w->params.pack_bits : w->params.bits;
  if (codes.size < (w->in.numel * pbq + 7) / 8) throw_arg(env, "codes buffer is too small");
  if (cb.size != ns * ((size_t)1 << w->params.bits) * wp::dtype_size(w->params.codebook_dtype))
    throw_arg(env, "codebook buffer has the wrong size");
  w->out.codes = codes.data;
  w->out.codes_bytes = codes.size;
  w->out.codebook = cb.data;
  w->Keep(t.Get("data"));
  w->Keep(info[2]);
  w->Keep(info[3]);
  w->Keep(info[4]);
  guard.release();
  return w->Queue();
}

class DequantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::DequantizeIn in;
  wp::Dtype out_dtype = wp::Dtype::F32;
  void* out = nullptr;
  wp::Context ctx;
  uint64_t saturated = 0;
  void Run() override { saturated = wp::dequantize_tensor(in, out_dtype, out, ctx); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, (double)saturated); }
};

// dequantize({codes, codebook, codebookDtype, numel, bits, sliceSize, name?, allowOverflow?}, outDtype, out: TypedArray,
//            threads?, cancel?) -> Promise<number of values saturated (allowOverflow), else E_RANGE on overflow>
Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_arg(env, "dequantize(source, outDtype, out, threads?, cancel?)");
  Napi::Object s = info[0].As<Napi::Object>();
  auto* w = new DequantizeWorker(env);
  std::unique_ptr<DequantizeWorker> guard(w);
  Bytes codes = bytes_of(s.Get("codes"), "codes");
  Bytes cb = bytes_of(s.Get("codebook"), "codebook");
  w->in.codes = codes.data;
  w->in.codebook = cb.data;
  w->in.codebook_dtype = dtype_of(env, str_of(s, "codebookDtype", "F32"));
  w->in.numel = (uint64_t)num_of(s, "numel", 0);
  w->in.bits = (int)num_of(s, "bits", 4);
  w->in.slice_size = (uint64_t)num_of(s, "sliceSize", (double)w->in.numel);
  w->in.pack_bits = (int)num_of(s, "packBits", 0);
  w->in.overflow = overflow_of(s);
  w->tensor = str_of(s, "name", "");
  if (w->in.bits < 1 || w->in.bits > 8) throw to_js_error(env, wp::Error(wp::Code::Format, "bits must be from 1 to 8", w->tensor));
  if (w->in.slice_size == 0) w->in.slice_size = 1;
  uint64_t ns = wp::slice_count(w->in.numel, w->in.slice_size);
  int pbd = w->in.pack_bits ? w->in.pack_bits : w->in.bits;
  if (pbd != 8 && pbd != w->in.bits) throw to_js_error(env, wp::Error(wp::Code::Format, "packBits must be 8 or bits", w->tensor));
  if (codes.size < (w->in.numel * pbd + 7) / 8)
    throw to_js_error(env, wp::Error(wp::Code::Format, "codes hold " + std::to_string(codes.size) + " bytes, too few for " +
                                                           std::to_string(w->in.numel) + " codes", w->tensor));
  if (cb.size != ns * ((size_t)1 << w->in.bits) * wp::dtype_size(w->in.codebook_dtype))
    throw to_js_error(env, wp::Error(wp::Code::Format, "codebook has " + std::to_string(cb.size) + " bytes, expected " +
                                                           std::to_string(ns * ((size_t)1 << w->in.bits) * wp::dtype_size(w->in.codebook_dtype)), w->tensor));
  DenseOut o = dense_out_of(info, 1, w->in.numel, w->ctx, *w);
  w->out_dtype = o.dtype;
  w->out = o.data;
  w->Keep(s.Get("codes"));
  w->Keep(s.Get("codebook"));
  guard.release();
  return w->Queue();
}

// Reads (x: Float64Array, w: Float64Array | null) as WeightedPoints: sorted, merged, zero weights dropped.
wp::WeightedPoints points_of(Napi::Env env, const Napi::Value& xv, const Napi::Value& wv) {
  if (!xv.IsTypedArray() || xv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw_arg(env, "values must be a Float64Array");
  Bytes xb = bytes_of(xv, "values");
  size_t n = xb.size / 8;
  const double* x = reinterpret_cast<const double*>(xb.data);
  const double* w = nullptr;
  if (!wv.IsUndefined() && !wv.IsNull()) {
    if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw_arg(env, "weights must be a Float64Array");
    Bytes wb = bytes_of(wv, "weights");
    if (wb.size != xb.size) throw_arg(env, "weights must have one entry per value");
    w = reinterpret_cast<const double*>(wb.data);
  }
  if (!w) {  // unweighted: the pipeline's own radix sort and merge (also rejects NaN/Inf)
    wp::WeightedPoints p;
    try {
      wp::summarize_slice(x, wp::Dtype::F64, 0, n, nullptr, p);
    } catch (const wp::Error& e) {
      throw to_js_error(env, e);
    }
    return p;
  }
  std::vector<std::pair<double, double>> v(n);
  for (size_t i = 0; i < n; ++i) {
    double wi = w ? w[i] : 1.0;
    if (!std::isfinite(x[i])) throw to_js_error(env, wp::Error(wp::Code::NonFinite, "value " + std::to_string(i) + " is not finite"));
    if (!(wi >= 0) || !std::isfinite(wi)) throw to_js_error(env, wp::Error(wp::Code::NonFinite, "weight " + std::to_string(i) + " must be finite and non-negative"));
    v[i] = {x[i] == 0 ? 0.0 : x[i], wi};
  }
  std::sort(v.begin(), v.end());
  wp::WeightedPoints p;
  for (auto& e : v) {
    if (e.second <= 0) continue;
    if (!p.x.empty() && p.x.back() == e.first) p.w.back() += e.second;
    else { p.x.push_back(e.first); p.w.push_back(e.second); }
  }
  return p;
}

Napi::Value levels_to_js(Napi::Env env, const std::vector<double>& lv) {
  Napi::Float64Array a = Napi::Float64Array::New(env, lv.size());
  for (size_t i = 0; i < lv.size(); ++i) a[i] = lv[i];
  return a;
}

// The (method, x, w, params) arguments of solve/solveSync/quantizer: the solver row and its parameters.
const wp::SolverRow* solver_of(const Napi::CallbackInfo& info, wp::SolverParams& sp) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_arg(env, "method must be a string");
  std::string method = info[0].As<Napi::String>().Utf8Value();
  const wp::SolverRow* row = wp::find_solver(method);
  if (!row) throw to_js_error(env, wp::Error(wp::Code::Argument, "unknown method '" + method + "' (known: " + wp::solver_names() + ")"));
  Napi::Object p = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
  sp = solver_params_of(env, info[3], {"k"});
  sp.k = (int)num_of(p, "k", 16);
  if (sp.k < 1) throw_arg(env, "k must be at least 1");
  return row;
}

// solveSync(method, x, w, {k, seed, maxIter, symmetric, step, ...}) -> Float64Array levels (small inputs).
Napi::Value SolveSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  wp::SolverParams sp;
  const wp::SolverRow* row = solver_of(info, sp);
  wp::WeightedPoints pts = points_of(env, info[1], info[2]);
  try {
    wp::Quantizer q = pts.size() ? wp::solve_checked(*row, pts, sp) : wp::Quantizer{};
    if (info.Data() != nullptr) {  // quantizer(): levels and thresholds
      Napi::Object o = Napi::Object::New(env);
      o.Set("levels", levels_to_js(env, q.levels));
      o.Set("thresholds", levels_to_js(env, q.thresholds));
      return o;
    }
    return levels_to_js(env, q.levels);
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

class SolveWorker : public PromiseWorker {
 public:
  SolveWorker(Napi::Env env, const wp::SolverRow* row, wp::WeightedPoints p, wp::SolverParams sp)
      : PromiseWorker(env), row_(row), p_(std::move(p)), sp_(sp) {}
  void Run() override { lv_ = p_.size() ? wp::solve_checked(*row_, p_, sp_).levels : std::vector<double>{}; }
  Napi::Value Result(Napi::Env env) override { return levels_to_js(env, lv_); }

 private:
  const wp::SolverRow* row_;
  wp::WeightedPoints p_;
  wp::SolverParams sp_;
  std::vector<double> lv_;
};

// solve(method, x, w, params) -> Promise<Float64Array levels>
Napi::Value Solve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  wp::SolverParams sp;
  const wp::SolverRow* row = solver_of(info, sp);
  auto* w = new SolveWorker(env, row, points_of(env, info[1], info[2]), sp);
  return w->Queue();
}

class ConvertWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  const void* src = nullptr;
  wp::Dtype from = wp::Dtype::F32, to = wp::Dtype::F32;
  uint64_t n = 0;
  void* dst = nullptr;
  wp::Overflow overflow = wp::Overflow::Error;
  uint64_t saturated = 0;
  void Run() override { saturated = wp::convert_float(src, from, n, to, dst, overflow); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, (double)saturated); }
};

// convert(src: TypedArray, fromDtype, toDtype, dst: TypedArray, name?, allowOverflow?) -> Promise<number saturated>: float dtype conversion
// (round to nearest even), for decode's kept tensors.
Napi::Value Convert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* w = new ConvertWorker(env);
  std::unique_ptr<ConvertWorker> guard(w);
  Bytes s = bytes_of(info[0], "src");
  w->from = dtype_of(env, info[1].As<Napi::String>().Utf8Value());
  w->to = dtype_of(env, info[2].As<Napi::String>().Utf8Value());
  Bytes d = bytes_of(info[3], "dst");
  if (info[4].IsString()) w->tensor = info[4].As<Napi::String>().Utf8Value();
  if (info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value()) w->overflow = wp::Overflow::Saturate;
  if (!wp::dtype_is_quantizable(w->from) || !wp::dtype_is_quantizable(w->to)) throw_arg(env, "convert handles F64, F32, F16 and BF16 only");
  w->n = s.size / wp::dtype_size(w->from);
  if (s.size % wp::dtype_size(w->from) || d.size != w->n * wp::dtype_size(w->to)) throw_arg(env, "convert: buffer sizes do not match");
  w->src = s.data;
  w->dst = d.data;
  w->Keep(info[0]);
  w->Keep(info[3]);
  guard.release();
  return w->Queue();
}

using SummaryRef = std::shared_ptr<wp::WeightedPoints>;

class SummarizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  SummaryRef acc;
  const void* data = nullptr;
  wp::Dtype dtype = wp::Dtype::F32;
  uint64_t numel = 0;
  const float* importance = nullptr;
  void Run() override {
    wp::WeightedPoints pts;
    wp::summarize_slice(data, dtype, 0, numel, importance, pts);
    wp::merge_points(*acc, pts);
  }
};

// summaryNew() -> handle: an accumulator of weighted distinct values over many tensors.
Napi::Value SummaryNew(const Napi::CallbackInfo& info) {
  return Napi::External<SummaryRef>::New(info.Env(), new SummaryRef(std::make_shared<wp::WeightedPoints>()),
                                         [](Napi::Env, SummaryRef* p) { delete p; });
}

// summaryAdd(handle, {data, dtype, numel, importance?, name?}) -> Promise<void>
Napi::Value SummaryAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal() || !info[1].IsObject()) throw_arg(env, "summaryAdd(handle, tensor)");
  Napi::Object t = info[1].As<Napi::Object>();
  auto* w = new SummarizeWorker(env);
  std::unique_ptr<SummarizeWorker> guard(w);
  w->acc = *info[0].As<Napi::External<SummaryRef>>().Data();
  Bytes data = bytes_of(t.Get("data"), "tensor data");
  w->data = data.data;
  w->dtype = dtype_of(env, str_of(t, "dtype"));
  w->numel = (uint64_t)num_of(t, "numel", 0);
  w->tensor = str_of(t, "name", "");
  if (data.size != w->numel * wp::dtype_size(w->dtype)) throw_arg(env, "tensor data size does not match numel x dtype size");
  Napi::Value imp = t.Get("importance");
  if (!imp.IsUndefined() && !imp.IsNull()) {
    Bytes ib = bytes_of(imp, "importance");
    if (ib.size != w->numel * 4) throw_arg(env, "importance must have one F32 value per element");
    w->importance = reinterpret_cast<const float*>(ib.data);
    w->Keep(imp);
  }
  w->Keep(t.Get("data"));
  guard.release();
  return w->Queue();
}

class SummarySolveWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  SummaryRef acc;
  const wp::SolverRow* row = nullptr;
  wp::SolverParams sp;
  wp::Quantizer q;
  void Run() override { q = wp::solve_checked(*row, *acc, sp); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("levels", levels_to_js(env, q.levels));
    o.Set("thresholds", levels_to_js(env, q.thresholds));
    o.Set("points", Napi::Number::New(env, (double)acc->size()));
    return o;
  }
};

// summarySolve(handle, method, params) -> Promise<{levels, thresholds, points}>
Napi::Value SummarySolve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) throw_arg(env, "summarySolve(handle, method, params)");
  std::string method = info[1].As<Napi::String>().Utf8Value();
  const wp::SolverRow* row = wp::find_solver(method);
  if (!row) throw to_js_error(env, wp::Error(wp::Code::Argument, "unknown method '" + method + "'"));
  Napi::Object p = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  auto* w = new SummarySolveWorker(env);
  w->acc = *info[0].As<Napi::External<SummaryRef>>().Data();
  w->row = row;
  w->sp = solver_params_of(env, info[2], {"k"});
  w->sp.k = (int)num_of(p, "k", 16);
  return w->Queue();
}

Napi::Value Methods(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), wp::solver_names());
}

}  // namespace

void init_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("quantize", Napi::Function::New(env, Quantize));
  exports.Set("dequantize", Napi::Function::New(env, Dequantize));
  exports.Set("solve", Napi::Function::New(env, Solve));
  exports.Set("solveSync", Napi::Function::New(env, SolveSync));
  // quantizer(method, x, w, params) -> {levels, thresholds}: solveSync with the decision thresholds.
  static int tag = 1;
  exports.Set("quantizer", Napi::Function::New(env, SolveSync, "quantizer", &tag));
  exports.Set("methods", Napi::Function::New(env, Methods));
  exports.Set("convert", Napi::Function::New(env, Convert));
  exports.Set("summaryNew", Napi::Function::New(env, SummaryNew));
  exports.Set("summaryAdd", Napi::Function::New(env, SummaryAdd));
  exports.Set("summarySolve", Napi::Function::New(env, SummarySolve));
}

}  // namespace wpa
