// N-API face of Quantization Networks (native/core/qn): the function's forward and backward on F32 arrays
// (synchronous, zero-copy), and the post-training fit against the layer-output error (a Promise).
#include <cmath>

#include "../core/qn/fit.h"
#include "../core/qn/qn.h"
#include "common.h"

namespace wpa {

namespace {

std::vector<double> doubles_of(Napi::Env env, const Napi::Value& v, const char* what) {
  std::vector<double> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw_arg(env, std::string(what) + " must hold numbers");
      out.push_back(e.As<Napi::Number>().DoubleValue());
    }
  } else {
    throw_arg(env, std::string(what) + " must be an array of numbers or a Float64Array");
  }
  return out;
}

Napi::Float32Array f32_of(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, std::string(what) + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

// {levels, alpha, beta, biases, offset?} -> QnFunction (offset default: ½ (max − min level), zero-centred).
wp::QnFunction function_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw_arg(env, "the quantization function must be an object {levels, alpha, beta, biases, offset?}");
  Napi::Object o = v.As<Napi::Object>();
  try {
    wp::QnFunction f = wp::qn_function(doubles_of(env, o.Get("levels"), "levels"), num_of(o, "alpha", NAN), num_of(o, "beta", NAN),
                                       doubles_of(env, o.Get("biases"), "biases"), true);
    Napi::Value off = o.Get("offset");
    if (!off.IsUndefined() && !off.IsNull()) {
      if (!off.IsNumber()) throw_arg(env, "offset must be a number");
      f.offset = off.As<Napi::Number>().DoubleValue();
    }
    wp::qn_check(f);
    return f;
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

Napi::Object function_to_js(Napi::Env env, const wp::QnFunction& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("alpha", f.alpha);
  o.Set("beta", f.beta);
  o.Set("offset", f.offset);
  Napi::Float64Array b = Napi::Float64Array::New(env, f.b.size());
  for (size_t i = 0; i < f.b.size(); ++i) b[i] = f.b[i];
  o.Set("biases", b);
  wp::Quantizer q = wp::qn_quantizer(f);
  Napi::Float64Array lv = Napi::Float64Array::New(env, q.levels.size()), th = Napi::Float64Array::New(env, q.thresholds.size());
  for (size_t i = 0; i < q.levels.size(); ++i) lv[i] = q.levels[i];
  for (size_t i = 0; i < q.thresholds.size(); ++i) th[i] = q.thresholds[i];
  o.Set("quantizerLevels", lv);
  o.Set("quantizerThresholds", th);
  return o;
}

double temperature_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsNumber()) throw_arg(env, "temperature must be a number (Infinity for the hard function)");
  return v.As<Napi::Number>().DoubleValue();
}

// qnForward(x: Float32Array, fn, temperature, y: Float32Array, threads?) -> undefined (synchronous).
Napi::Value QnForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = f32_of(env, info[0], "x"), y = f32_of(env, info[3], "y");
  if (x.ElementLength() != y.ElementLength()) throw_arg(env, "y must have as many elements as x");
  wp::QnFunction f = function_of(env, info[1]);
  wp::Context ctx;
  ctx.threads = info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : 0;
  try {
    wp::qn_forward(x.Data(), x.ElementLength(), f, temperature_of(env, info[2]), y.Data(), ctx);
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
  return env.Undefined();
}

// qnBackward(x, gy, fn, temperature, gx: Float32Array | null, threads?) -> {alpha, beta, biases} (synchronous).
Napi::Value QnBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = f32_of(env, info[0], "x"), gy = f32_of(env, info[1], "gy");
  if (x.ElementLength() != gy.ElementLength()) throw_arg(env, "gy must have as many elements as x");
  wp::QnFunction f = function_of(env, info[2]);
  float* gx = nullptr;
  if (!info[4].IsUndefined() && !info[4].IsNull()) {
    Napi::Float32Array g = f32_of(env, info[4], "gx");
    if (g.ElementLength() != x.ElementLength()) throw_arg(env, "gx must have as many elements as x");
    gx = g.Data();
  }
  wp::Context ctx;
  ctx.threads = info[5].IsNumber() ? info[5].As<Napi::Number>().Int32Value() : 0;
  wp::QnGrad g;
  try {
    wp::qn_backward(x.Data(), gy.Data(), x.ElementLength(), f, temperature_of(env, info[3]), gx, &g, ctx);
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("alpha", g.alpha);
  o.Set("beta", g.beta);
  Napi::Float64Array b = Napi::Float64Array::New(env, g.b.size());
  for (size_t i = 0; i < g.b.size(); ++i) b[i] = g.b[i];
  o.Set("biases", b);
  return o;
}

// qnQuantizer(fn) -> the function with its hard quantizer (levels, thresholds), as the scalar codec stores it.
Napi::Value QnQuantizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return function_to_js(env, function_of(env, info[0]));
}

wp::QnFitParams fit_params_of(Napi::Env env, const Napi::Object& p) {
  wp::QnFitParams fp;
  fp.levels = doubles_of(env, p.Get("levels"), "levels");
  fp.t_start = num_of(p, "tStart", fp.t_start);
  fp.t_slope = num_of(p, "tSlope", fp.t_slope);
  fp.epochs = (int)num_of(p, "epochs", fp.epochs);
  fp.steps = (int)num_of(p, "stepsPerEpoch", fp.steps);
  fp.lr = num_of(p, "learningRate", fp.lr);
  fp.learn_biases = bool_of(p, "learnBiases", false);
  return fp;
}

// qnInit(x: Float64Array, levels) -> the paper's initial function for these values (synchronous).
Napi::Value QnInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<double> x = doubles_of(env, info[0], "x");
  wp::WeightedPoints p;
  try {
    wp::summarize_slice(x.data(), wp::Dtype::F64, 0, x.size(), nullptr, p);
    return function_to_js(env, wp::qn_init(p, doubles_of(env, info[1], "levels")));
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

class QnFitWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  const float* W = nullptr;
  const float* H = nullptr;
  float* V = nullptr;
  size_t rows = 0, m = 0, rows_per_slice = 0;
  wp::QnFitParams fp;
  wp::Context ctx;
  wp::QnCalibratedResult res;
  void Run() override { wp::qn_fit_calibrated(W, rows, m, H, rows_per_slice, fp, V, &res, ctx); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array fs = Napi::Array::New(env, res.functions.size());
    for (size_t i = 0; i < res.functions.size(); ++i) fs.Set((uint32_t)i, function_to_js(env, res.functions[i]));
    o.Set("functions", fs);
    Napi::Array h = Napi::Array::New(env, res.history.size());
    for (size_t i = 0; i < res.history.size(); ++i) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("epoch", res.history[i].epoch);
      e.Set("temperature", res.history[i].temperature);
      e.Set("loss", res.history[i].loss);
      e.Set("objective", res.history[i].objective);
      h.Set((uint32_t)i, e);
    }
    o.Set("history", h);
    o.Set("initObjective", res.init_objective);
    o.Set("objective", res.objective);
    return o;
  }
};

// qnFitCalibrated(w: Float32Array [rows·m], gram: Float32Array [m·m], params: {rows, inFeatures, rowsPerSlice,
//   levels, tStart, tSlope, epochs, stepsPerEpoch, learningRate, learnBiases, threads, name?}, latent: Float32Array
//   [rows·m], cancel?, onProgress?) -> Promise<{functions, history, initObjective, objective}>
Napi::Value QnFitCalibrated(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[2].IsObject()) throw_arg(env, "qnFitCalibrated(w, gram, params, latent, cancel?, onProgress?)");
  Napi::Object p = info[2].As<Napi::Object>();
  auto* w = new QnFitWorker(env);
  std::unique_ptr<QnFitWorker> guard(w);
  Napi::Float32Array W = f32_of(env, info[0], "w"), H = f32_of(env, info[1], "gram"), V = f32_of(env, info[3], "latent");
  w->rows = (size_t)num_of(p, "rows", 0);
  w->m = (size_t)num_of(p, "inFeatures", 0);
  w->rows_per_slice = (size_t)num_of(p, "rowsPerSlice", (double)w->rows);
  w->tensor = str_of(p, "name", "");
  if (W.ElementLength() != w->rows * w->m || V.ElementLength() != W.ElementLength()) throw_arg(env, "w and latent must hold rows x inFeatures values");
  if (H.ElementLength() != w->m * w->m) throw_arg(env, "gram must hold inFeatures x inFeatures values");
  w->fp = fit_params_of(env, p);
  w->W = W.Data();
  w->H = H.Data();
  w->V = V.Data();
  w->ctx.threads = (int)num_of(p, "threads", 0);
  w->ctx.cancel = cancel_of(info[4]);
  w->AttachProgress(env, info[5], w->ctx);
  w->Keep(info[0]);
  w->Keep(info[1]);
  w->Keep(info[3]);
  w->Keep(info[4]);
  guard.release();
  return w->Queue();
}

}  // namespace

void init_qn(Napi::Env env, Napi::Object exports) {
  exports.Set("qnForward", Napi::Function::New(env, QnForward));
  exports.Set("qnBackward", Napi::Function::New(env, QnBackward));
  exports.Set("qnQuantizer", Napi::Function::New(env, QnQuantizer));
  exports.Set("qnInit", Napi::Function::New(env, QnInit));
  exports.Set("qnFitCalibrated", Napi::Function::New(env, QnFitCalibrated));
}

}  // namespace wpa
