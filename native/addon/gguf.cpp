// N-API face of llama.cpp's block formats for the GGUF export (native/core/kquants.h):
//   ggufQuantize(tensor {data, dtype, numel, cols, importance?, name?}, type, out, threads?, cancel?, onProgress?)
//     -> Promise<{sse, signal, maxAbsErr}>   (type: a ggml_type id: Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14)
//   ggufDequantize(type, data, numel, out Float32Array, threads?, cancel?) -> Promise<void>
//   ggufBlock(type) -> {weights, bytes}   (sync)
#include "../core/kquants.h"
#include "common.h"

namespace wpa {

namespace {

wp::GgmlBlock block_or_throw(Napi::Env env, const Napi::Value& v) {
  if (!v.IsNumber()) throw_arg(env, "type must be a ggml_type id");
  try {
    return wp::ggml_block((int)v.As<Napi::Number>().DoubleValue());
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

class GgufQuantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  int type = 0;
  wp::GgmlQuantIn in;
  uint8_t* out = nullptr;
  size_t out_bytes = 0;
  wp::Context ctx;
  wp::GgmlQuantStats stats;
  void Run() override { wp::ggml_quantize(type, in, out, out_bytes, ctx, &stats); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("sse", Napi::Number::New(env, stats.sse));
    o.Set("signal", Napi::Number::New(env, stats.signal));
    o.Set("maxAbsErr", Napi::Number::New(env, stats.max_abs_err));
    return o;
  }
};

Napi::Value GgufQuantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_arg(env, "ggufQuantize(tensor, type, out, threads?, cancel?, onProgress?)");
  Napi::Object t = info[0].As<Napi::Object>();
  const wp::GgmlBlock blk = block_or_throw(env, info[1]);
  auto* w = new GgufQuantizeWorker(env);
  std::unique_ptr<GgufQuantizeWorker> guard(w);
  w->type = (int)info[1].As<Napi::Number>().DoubleValue();
  w->tensor = str_of(t, "name", "");
  Bytes data = bytes_of(t.Get("data"), "tensor data");
  w->in.data = data.data;
  w->in.dtype = dtype_of(env, str_of(t, "dtype"));
  if (!wp::dtype_is_quantizable(w->in.dtype))
    throw to_js_error(env, wp::Error(wp::Code::Dtype, std::string("cannot quantize dtype ") + wp::dtype_name(w->in.dtype) + " (F64, F32, F16 or BF16 only)", w->tensor));
  w->in.numel = (uint64_t)num_of(t, "numel", 0);
  w->in.cols = (uint64_t)num_of(t, "cols", (double)w->in.numel);
  if (data.size != w->in.numel * wp::dtype_size(w->in.dtype)) throw_arg(env, "tensor data size does not match numel x dtype size");
  if (w->in.cols == 0 || w->in.numel % w->in.cols != 0 || w->in.cols % blk.weights != 0)
    throw to_js_error(env, wp::Error(wp::Code::Argument, "rows of " + std::to_string(w->in.cols) + " weights are not a multiple of the block (" + std::to_string(blk.weights) + ")", w->tensor));
  w->in.importance = importance_of(env, t.Get("importance"), w->in.numel, *w);
  Bytes out = bytes_of(info[2], "out");
  const uint64_t need = w->in.numel / blk.weights * blk.bytes;
  if (out.size < need) throw_arg(env, "out is too small: " + std::to_string(out.size) + " < " + std::to_string(need) + " bytes");
  w->out = out.data;
  w->out_bytes = out.size;
  w->ctx.threads = info[3].IsNumber() ? (int)info[3].As<Napi::Number>().DoubleValue() : 0;
  w->ctx.cancel = cancel_of(info[4]);
  w->AttachProgress(env, info[5], w->ctx);
  w->Keep(t.Get("data"));
  w->Keep(info[2]);
  w->Keep(info[4]);
  guard.release();
  return w->Queue();
}

class GgufDequantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  int type = 0;
  const uint8_t* src = nullptr;
  size_t src_bytes = 0;
  uint64_t numel = 0;
  float* out = nullptr;
  wp::Context ctx;
  void Run() override { wp::ggml_dequantize(type, src, src_bytes, numel, out, ctx); }
};

Napi::Value GgufDequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const wp::GgmlBlock blk = block_or_throw(env, info[0]);
  auto* w = new GgufDequantizeWorker(env);
  std::unique_ptr<GgufDequantizeWorker> guard(w);
  w->type = (int)info[0].As<Napi::Number>().DoubleValue();
  Bytes src = bytes_of(info[1], "data");
  if (!info[2].IsNumber()) throw_arg(env, "ggufDequantize(type, data, numel, out, threads?, cancel?)");
  w->numel = (uint64_t)info[2].As<Napi::Number>().DoubleValue();
  if (w->numel % blk.weights != 0) throw_arg(env, "numel must be a multiple of the block (" + std::to_string(blk.weights) + ")");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_arg(env, "out must be a Float32Array");
  Bytes out = bytes_of(info[3], "out");
  if (out.size < w->numel * 4) throw_arg(env, "out is too small");
  if (src.size < w->numel / blk.weights * blk.bytes)
    throw to_js_error(env, wp::Error(wp::Code::Format, "the data holds " + std::to_string(src.size) + " bytes, " + std::to_string(w->numel / blk.weights * blk.bytes) + " needed"));
  w->src = src.data;
  w->src_bytes = src.size;
  w->out = reinterpret_cast<float*>(out.data);
  w->ctx.threads = info[4].IsNumber() ? (int)info[4].As<Napi::Number>().DoubleValue() : 0;
  w->ctx.cancel = cancel_of(info[5]);
  w->Keep(info[1]);
  w->Keep(info[3]);
  w->Keep(info[5]);
  guard.release();
  return w->Queue();
}

Napi::Value GgufBlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const wp::GgmlBlock blk = block_or_throw(env, info[0]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("weights", Napi::Number::New(env, blk.weights));
  o.Set("bytes", Napi::Number::New(env, blk.bytes));
  return o;
}

}  // namespace

void init_gguf(Napi::Env env, Napi::Object exports) {
  exports.Set("ggufQuantize", Napi::Function::New(env, GgufQuantize, "ggufQuantize"));
  exports.Set("ggufDequantize", Napi::Function::New(env, GgufDequantize, "ggufDequantize"));
  exports.Set("ggufBlock", Napi::Function::New(env, GgufBlock, "ggufBlock"));
}

}  // namespace wpa
