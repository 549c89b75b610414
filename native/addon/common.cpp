#include "common.h"

#include <thread>

namespace wpa {

Napi::Error to_js_error(Napi::Env env, const wp::Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  Napi::Object o = err.Value();
  o.Set("code", Napi::String::New(env, wp::code_name(e.code())));
  if (!e.tensor().empty()) o.Set("tensor", Napi::String::New(env, e.tensor()));
  if (!e.file().empty()) o.Set("file", Napi::String::New(env, e.file()));
  o.Set("weightpress", Napi::Boolean::New(env, true));
  return err;
}

void throw_arg(Napi::Env env, const std::string& msg) {
  throw to_js_error(env, wp::Error(wp::Code::Argument, msg));
}

Bytes bytes_of(const Napi::Value& v, const char* what) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray()) throw_arg(env, std::string(what) + " must be a TypedArray");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  Bytes b;
  b.data = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
  b.size = ta.ByteLength();
  return b;
}

const float* importance_of(Napi::Env env, const Napi::Value& v, uint64_t numel, PromiseWorker& w) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_arg(env, "importance must be a Float32Array");
  Bytes ib = bytes_of(v, "importance");
  if (ib.size != numel * 4) throw_arg(env, "importance must have one value per element");
  w.Keep(v);
  return reinterpret_cast<const float*>(ib.data);
}

Bytes out_buffer_of(Napi::Env env, const Napi::Value& v, const char* what, uint64_t need, const char* sizes) {
  Bytes b = bytes_of(v, what);
  if (b.size < need) throw_arg(env, std::string(what) + " buffer is too small: " + std::to_string(b.size) + " < " + std::to_string(need) + " bytes (" + sizes + ")");
  return b;
}

std::string str_of(const Napi::Object& o, const char* key, const std::string& def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsString()) throw_arg(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

double num_of(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw_arg(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool bool_of(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsBoolean()) throw_arg(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

wp::Dtype dtype_of(Napi::Env env, const std::string& s) {
  wp::Dtype d = wp::dtype_from_name(s);
  if (d == wp::Dtype::Unknown) throw to_js_error(env, wp::Error(wp::Code::Dtype, "unknown dtype \"" + s + "\""));
  return d;
}

const int32_t* cancel_of(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(v.Env(), "cancel flag must be an Int32Array");
  Bytes b = bytes_of(v, "cancel flag");
  if (b.size < 4) throw_arg(v.Env(), "cancel flag must have at least one element");
  return reinterpret_cast<const int32_t*>(b.data);
}

DenseOut dense_out_of(const Napi::CallbackInfo& info, size_t i, uint64_t numel, wp::Context& ctx, PromiseWorker& w) {
  Napi::Env env = info.Env();
  if (!info[i].IsString()) throw_arg(env, "outDtype must be a string");
  DenseOut o;
  o.dtype = dtype_of(env, info[i].As<Napi::String>().Utf8Value());
  Bytes out = bytes_of(info[i + 1], "out");
  if (out.size != numel * wp::dtype_size(o.dtype)) throw_arg(env, "out buffer has the wrong size");
  o.data = out.data;
  ctx.threads = info[i + 2].IsNumber() ? info[i + 2].As<Napi::Number>().Int32Value() : 0;
  ctx.cancel = cancel_of(info[i + 3]);
  w.Keep(info[i + 1]);
  w.Keep(info[i + 3]);
  return o;
}

wp::SolverParams solver_params_of(Napi::Env env, const Napi::Value& v, std::initializer_list<const char*> also) {
  static const char* const kKeys[] = {"seed", "maxIter", "symmetric", "step", "lambda", "lambda2", "targetValues",
                                      "rate", "penalty", "l0Algorithm", "dpBound", "threads",
                                      "levels", "tStart", "tSlope", "epochs", "stepsPerEpoch", "learningRate", "learnBiases"};
  if (!v.IsUndefined() && !v.IsNull() && !v.IsObject()) throw_arg(env, "solver params must be an object");
  Napi::Object o = v.IsObject() ? v.As<Napi::Object>() : Napi::Object::New(env);
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    std::string k = names.Get(i).ToString().Utf8Value();
    bool known = false;
    for (const char* x : kKeys) known = known || k == x;
    for (const char* x : also) known = known || k == x;
    if (!known) {
      std::string list;
      for (const char* x : kKeys) list += (list.empty() ? "" : ", ") + std::string(x);
      for (const char* x : also) list += ", " + std::string(x);
      throw_arg(env, "unknown solver option '" + k + "' (known: " + list + ")");
    }
  }
  wp::SolverParams sp;
  sp.seed = (uint64_t)num_of(o, "seed", 0);
  sp.max_iter = (int)num_of(o, "maxIter", 1000);
  sp.symmetric = bool_of(o, "symmetric", false);
  sp.lambda = num_of(o, "lambda", 0);
  sp.lambda2 = num_of(o, "lambda2", 0);
  sp.target_values = (int)num_of(o, "targetValues", 0);
  sp.rate = num_of(o, "rate", 0);
  sp.threads = (int)num_of(o, "threads", 0);
  if (sp.threads <= 0) sp.threads = (int)std::thread::hardware_concurrency();
  std::string pen = str_of(o, "penalty", "standardized");
  if (pen == "standardized") sp.sparse_penalty = wp::SparsePenalty::Standardized;
  else if (pen == "uniform") sp.sparse_penalty = wp::SparsePenalty::Uniform;
  else throw_arg(env, "penalty must be standardized or uniform, got '" + pen + "'");
  std::string l0 = str_of(o, "l0Algorithm", "monge");
  if (l0 == "monge") sp.l0_algo = wp::SparseL0Algo::Monge;
  else if (l0 == "pelt") sp.l0_algo = wp::SparseL0Algo::Pelt;
  else if (l0 == "naive") sp.l0_algo = wp::SparseL0Algo::Naive;
  else throw_arg(env, "l0Algorithm must be monge, pelt or naive, got '" + l0 + "'");
  sp.dp_bound = bool_of(o, "dpBound", true);
  Napi::Value lv = o.Get("levels");
  if (lv.IsArray()) {
    Napi::Array a = lv.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsNumber()) throw_arg(env, "levels must be an array of numbers");
      sp.qn.levels.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
    }
  } else if (!lv.IsUndefined()) {
    throw_arg(env, "levels must be an array of numbers");
  }
  sp.qn.t_start = num_of(o, "tStart", sp.qn.t_start);
  sp.qn.t_slope = num_of(o, "tSlope", sp.qn.t_slope);
  sp.qn.epochs = (int)num_of(o, "epochs", sp.qn.epochs);
  sp.qn.steps = (int)num_of(o, "stepsPerEpoch", sp.qn.steps);
  sp.qn.lr = num_of(o, "learningRate", sp.qn.lr);
  sp.qn.learn_biases = bool_of(o, "learnBiases", false);
  std::string step = str_of(o, "step", "mse");
  if (step == "mse") sp.step = wp::UniformStep::Mse;
  else if (step == "minmax") sp.step = wp::UniformStep::MinMax;
  else throw_arg(env, "step must be mse or minmax, got '" + step + "'");
  return sp;
}

}  // namespace wpa

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wpa::init_io(env, exports);
  wpa::init_quant(env, exports);
  wpa::init_backends(env, exports);
  wpa::init_entropy(env, exports);
  wpa::init_block(env, exports);
  wpa::init_vq(env, exports);
  wpa::init_qn(env, exports);
  wpa::init_gguf(env, exports);
  wpa::init_intq(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(weightpress, Init)
