// N-API face of integer group quantization (native/core/intq.h; docs/FORMAT.md "Integer group tensors"):
//   intQuantize(tensor, params, codes, scales, zeros, cancel?, onProgress?(done, total)) -> Promise<stats>
//   intDequantize(source, params, outDtype, out, threads?, cancel?) -> Promise<number saturated>
//   intSizes(numel, cols, params) -> {codesBytes, scalesBytes, zerosBytes, rows, groups, ...}   (sync)
#include <cmath>

#include "../core/intq.h"
#include "common.h"

namespace wpa {

namespace {

// params: {bits, groupSize, symmetric, step: 'mse'|'minmax', scaleDtype: 'F16'|'BF16'|'F32', f16Precision?, grid?, refits?,
//          packBits?, threads?}
wp::IntParams int_params_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw_arg(env, "int params must be an object");
  Napi::Object o = v.As<Napi::Object>();
  wp::IntParams p;
  auto integer = [&](const char* key, double def, double lo, double hi) {
    if (std::isnan(def) && o.Get(key).IsUndefined()) throw_arg(env, std::string(key) + " is required");
    double x = num_of(o, key, def);
    if (!(x >= lo && x <= hi) || x != std::floor(x))
      throw_arg(env, std::string(key) + " must be an integer from " + std::to_string((long long)lo) + " to " + std::to_string((long long)hi));
    return x;
  };
  // No defaults for what shapes the format: the int codec's option declarations hold them (lib/codecs/int.ts).
  p.bits = (int)integer("bits", NAN, 2, 8);
  p.group_size = (uint64_t)integer("groupSize", NAN, 1, 9007199254740991.0);
  if (o.Get("symmetric").IsUndefined()) throw_arg(env, "symmetric is required");
  p.symmetric = bool_of(o, "symmetric", true);
  std::string step = str_of(o, "step", "mse");
  if (step == "mse") p.mse = true;
  else if (step == "minmax") p.mse = false;
  else throw_arg(env, "step must be mse or minmax, got '" + step + "'");
  std::string sd = str_of(o, "scaleDtype", "");
  if (sd == "F16") p.scale_dtype = wp::Dtype::F16;
  else if (sd == "BF16") p.scale_dtype = wp::Dtype::BF16;
  else if (sd == "F32") p.scale_dtype = wp::Dtype::F32;
  else throw_arg(env, "scaleDtype must be F16, BF16 or F32, got '" + sd + "'");
  p.f16_precision = bool_of(o, "f16Precision", false);
  p.grid = (int)integer("grid", 32, 0, 10000);
  p.refits = (int)integer("refits", 2, 0, 100);
  p.pack_bits = (int)integer("packBits", 0, 0, 8);
  return p;
}

wp::IntLayout layout_or_throw(Napi::Env env, uint64_t numel, uint64_t cols, const wp::IntParams& p, const std::string& tensor) {
  try {
    return wp::int_layout(numel, cols, p);
  } catch (wp::Error& e) {
    e.with_tensor(tensor);
    throw to_js_error(env, e);
  }
}

class IntQuantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::IntTensorIn in;
  wp::IntParams params;
  wp::IntOut out;
  wp::Context ctx;
  wp::IntStats stats;
  void Run() override { wp::int_quantize(in, params, out, ctx, &stats); }
  Napi::Value Result(Napi::Env env) override {
    const wp::IntStats& s = stats;
    Napi::Object o = Napi::Object::New(env);
    o.Set("n", Napi::Number::New(env, (double)s.n));
    o.Set("groups", Napi::Number::New(env, (double)s.groups));
    o.Set("sse", Napi::Number::New(env, s.sse));
    o.Set("signal", Napi::Number::New(env, s.signal));
    o.Set("maxAbsErr", Napi::Number::New(env, s.max_abs_err));
    o.Set("weightedDistortion", Napi::Number::New(env, s.weighted_distortion));
    o.Set("zeroGroups", Napi::Number::New(env, (double)s.zero_groups));
    o.Set("bits", Napi::Number::New(env, s.bits));
    o.Set("bitsPerWeight", Napi::Number::New(env, s.n ? s.bits / (double)s.n : 0));
    return o;
  }
};

// intQuantize({data, dtype, numel, cols, importance?, name?}, params, codes, scales, zeros, cancel?, onProgress?)
Napi::Value IntQuantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject()) throw_arg(env, "intQuantize(tensor, params, codes, scales, zeros, cancel?, onProgress?)");
  Napi::Object t = info[0].As<Napi::Object>();
  auto* w = new IntQuantizeWorker(env);
  std::unique_ptr<IntQuantizeWorker> guard(w);
  w->tensor = str_of(t, "name", "");
  Bytes data = bytes_of(t.Get("data"), "tensor data");
  w->in.data = data.data;
  w->in.dtype = dtype_of(env, str_of(t, "dtype"));
  if (!wp::dtype_is_quantizable(w->in.dtype))
    throw to_js_error(env, wp::Error(wp::Code::Dtype, std::string("cannot quantize dtype ") + wp::dtype_name(w->in.dtype) + " (F64, F32, F16 or BF16 only)", w->tensor));
  w->in.numel = (uint64_t)num_of(t, "numel", 0);
  w->in.cols = (uint64_t)num_of(t, "cols", (double)w->in.numel);
  if (data.size != w->in.numel * wp::dtype_size(w->in.dtype)) throw_arg(env, "tensor data size does not match numel x dtype size");
  w->in.importance = importance_of(env, t.Get("importance"), w->in.numel, *w);
  w->params = int_params_of(env, info[1]);
  wp::IntLayout L = layout_or_throw(env, w->in.numel, w->in.cols, w->params, w->tensor);
  w->ctx.threads = (int)num_of(info[1].As<Napi::Object>(), "threads", 0);
  w->ctx.cancel = cancel_of(info[5]);
  w->AttachProgress(env, info[6], w->ctx);
  Bytes codes = out_buffer_of(env, info[2], "codes", L.codes_bytes, "intSizes");
  Bytes scales = out_buffer_of(env, info[3], "scales", L.scales_bytes, "intSizes");
  Bytes zeros = out_buffer_of(env, info[4], "zeros", L.zeros_bytes, "intSizes");
  w->out = {codes.data, codes.size, scales.data, scales.size, zeros.data, zeros.size};
  w->Keep(t.Get("data"));
  w->Keep(info[2]);
  w->Keep(info[3]);
  w->Keep(info[4]);
  w->Keep(info[5]);
  guard.release();
  return w->Queue();
}

class IntDequantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::IntSource src;
  wp::IntParams params;
  wp::Dtype out_dtype = wp::Dtype::F32;
  void* out = nullptr;
  wp::Context ctx;
  uint64_t saturated = 0;
  void Run() override { saturated = wp::int_dequantize(src, params, out_dtype, out, ctx); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, (double)saturated); }
};

// intDequantize({codes, scales, zeros?, numel, cols, name?, allowOverflow?}, params, outDtype, out, threads?, cancel?)
Napi::Value IntDequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject() || !info[2].IsString()) throw_arg(env, "intDequantize(source, params, outDtype, out, threads?, cancel?)");
  Napi::Object s = info[0].As<Napi::Object>();
  auto* w = new IntDequantizeWorker(env);
  std::unique_ptr<IntDequantizeWorker> guard(w);
  w->tensor = str_of(s, "name", "");
  Bytes codes = bytes_of(s.Get("codes"), "codes");
  Bytes scales = bytes_of(s.Get("scales"), "scales");
  w->src.codes = codes.data;
  w->src.codes_bytes = codes.size;
  w->src.scales = scales.data;
  w->src.scales_bytes = scales.size;
  Napi::Value z = s.Get("zeros");
  if (!z.IsUndefined() && !z.IsNull()) {
    Bytes zb = bytes_of(z, "zeros");
    w->src.zeros = zb.data;
    w->src.zeros_bytes = zb.size;
    w->Keep(z);
  }
  w->src.numel = (uint64_t)num_of(s, "numel", 0);
  w->src.cols = (uint64_t)num_of(s, "cols", (double)w->src.numel);
  w->src.overflow = overflow_of(s);
  w->params = int_params_of(env, info[1]);
  layout_or_throw(env, w->src.numel, w->src.cols, w->params, w->tensor);
  DenseOut o = dense_out_of(info, 2, w->src.numel, w->ctx, *w);
  w->out_dtype = o.dtype;
  w->out = o.data;
  w->Keep(s.Get("codes"));
  w->Keep(s.Get("scales"));
  guard.release();
  return w->Queue();
}

// intSizes(numel, cols, params) -> {codesBytes, scalesBytes, zerosBytes, rows, cols, groupsPerRow, groups, bits, bitsPerWeight}
Napi::Value IntSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw_arg(env, "intSizes(numel, cols, params)");
  uint64_t numel = (uint64_t)info[0].As<Napi::Number>().DoubleValue();
  uint64_t cols = (uint64_t)info[1].As<Napi::Number>().DoubleValue();
  wp::IntParams p = int_params_of(env, info[2]);
  wp::IntLayout L = layout_or_throw(env, numel, cols, p, "");
  Napi::Object o = Napi::Object::New(env);
  o.Set("codesBytes", Napi::Number::New(env, (double)L.codes_bytes));
  o.Set("scalesBytes", Napi::Number::New(env, (double)L.scales_bytes));
  o.Set("zerosBytes", Napi::Number::New(env, (double)L.zeros_bytes));
  o.Set("rows", Napi::Number::New(env, (double)L.rows));
  o.Set("cols", Napi::Number::New(env, (double)L.cols));
  o.Set("groupsPerRow", Napi::Number::New(env, (double)L.groups_per_row));
  o.Set("groups", Napi::Number::New(env, (double)L.groups));
  o.Set("bits", Napi::Number::New(env, L.bits));
  o.Set("bitsPerWeight", Napi::Number::New(env, numel ? L.bits / (double)numel : 0));
  return o;
}

}  // namespace

void init_intq(Napi::Env env, Napi::Object exports) {
  exports.Set("intQuantize", Napi::Function::New(env, IntQuantize, "intQuantize"));
  exports.Set("intDequantize", Napi::Function::New(env, IntDequantize, "intDequantize"));
  exports.Set("intSizes", Napi::Function::New(env, IntSizes, "intSizes"));
}

}  // namespace wpa
