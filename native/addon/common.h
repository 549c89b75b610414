// Shared pieces of the thin N-API layer: argument readers with one message shape, error conversion, and a
// Promise-resolving AsyncWorker base whose Execute() never touches N-API.
#pragma once
#include <napi.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <initializer_list>
#include <string>
#include <vector>

#include "../core/context.h"
#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/solvers/registry.h"

namespace wpa {

// Throws a JS Error carrying {code, tensor, file, weightpress: true}; lib/errors.ts turns it into a
// WeightpressError subclass.
Napi::Error to_js_error(Napi::Env env, const wp::Error& e);
[[noreturn]] void throw_arg(Napi::Env env, const std::string& msg);

struct Bytes {
  uint8_t* data = nullptr;
  size_t size = 0;
};
// A Uint8Array (or any TypedArray / Buffer) as raw bytes, without copying.
Bytes bytes_of(const Napi::Value& v, const char* what);
std::string str_of(const Napi::Object& o, const char* key, const std::string& def = "");
double num_of(const Napi::Object& o, const char* key, double def);
bool bool_of(const Napi::Object& o, const char* key, bool def);
wp::Dtype dtype_of(Napi::Env env, const std::string& s);
// A decode source's `allowOverflow` (true: saturate values beyond the output dtype's range; default: E_RANGE).
inline wp::Overflow overflow_of(const Napi::Object& o) { return bool_of(o, "allowOverflow", false) ? wp::Overflow::Saturate : wp::Overflow::Error; }
// The cancel flag: an Int32Array of length >= 1 (its element 0), or null/undefined.
const int32_t* cancel_of(const Napi::Value& v);
// The solver's options as one object (quantize's and blockQuantize's `solverParams`, or the params of solve and
// summarySolve): seed, maxIter, symmetric, step, lambda, lambda2, targetValues, rate, penalty, l0Algorithm,
// dpBound, threads (0 = all cores), and qn's levels, tStart, tSlope, epochs, stepsPerEpoch, learningRate, learnBiases; `also` names the other keys the call takes there (e.g. k). Undefined gives the
// defaults; an unknown key is an E_ARGUMENT that lists the known ones.
wp::SolverParams solver_params_of(Napi::Env env, const Napi::Value& v, std::initializer_list<const char*> also = {});

// An AsyncWorker that resolves a Promise. Subclasses implement Run() (worker thread, no N-API) and
// Result() (main thread). Values passed in are kept alive until the work is done.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  ~PromiseWorker() override {
    if (progress_) progress_.Release();
  }
  // When fn is a function: ctx.progress calls fn(done, total) on the main thread through a thread-safe function,
  // at most every 50 ms (and for the last unit); the core calls ctx.progress from worker threads.
  void AttachProgress(Napi::Env env, const Napi::Value& fn, wp::Context& ctx) {
    if (!fn.IsFunction()) return;
    progress_ = Napi::ThreadSafeFunction::New(env, fn.As<Napi::Function>(), "weightpress.progress", 0, 1);
    progress_.Unref(env);  // a pending progress call never keeps the process alive
    ctx.progress = [this](double done, double total) {
      const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
      int64_t last = last_ms_.load(std::memory_order_relaxed);
      if (done < total) {  // throttled; the last unit is always sent
        if (now - last < 50 || !last_ms_.compare_exchange_strong(last, now)) return;
      }
      progress_.NonBlockingCall([done, total](Napi::Env e, Napi::Function f) { f.Call({Napi::Number::New(e, done), Napi::Number::New(e, total)}); });
    };
  }
  Napi::Promise Queue() {
    Napi::AsyncWorker::Queue();
    return deferred_.Promise();
  }
  void Keep(const Napi::Value& v) {
    if (v.IsObject()) keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  // The tensor the work is about: named in any error it throws that does not name one already.
  std::string tensor;

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

 private:
  void Execute() override {
    try {
      Run();
    } catch (const wp::Error& e) {
      err_ = std::make_unique<wp::Error>(e);
      err_->with_tensor(tensor);
    } catch (const std::bad_alloc&) {
      err_ = std::make_unique<wp::Error>(wp::Code::Internal, "out of memory");
    } catch (const std::exception& e) {
      err_ = std::make_unique<wp::Error>(wp::Code::Internal, e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_) {
      deferred_.Reject(to_js_error(env, *err_).Value());
      return;
    }
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> keep_;
  std::unique_ptr<wp::Error> err_;
  Napi::ThreadSafeFunction progress_;
  std::atomic<int64_t> last_ms_{0};
};

// The (outDtype, out, threads?, cancel?) arguments of a decode call, from info[i] on: the output dtype, the
// checked out buffer (numel values of that dtype), threads and cancel flag into ctx; the worker keeps out and the
// flag alive.
struct DenseOut {
  wp::Dtype dtype = wp::Dtype::F32;
  void* data = nullptr;
};
// The optional per-element importance of a tensor argument (its "importance" field): null when absent, else a
// Float32Array of numel values, kept alive by the worker. Throws E_ARGUMENT otherwise.
const float* importance_of(Napi::Env env, const Napi::Value& v, uint64_t numel, PromiseWorker& w);

// An output buffer argument of at least `need` bytes (as the `sizes` function reported); E_ARGUMENT otherwise.
Bytes out_buffer_of(Napi::Env env, const Napi::Value& v, const char* what, uint64_t need, const char* sizes);

DenseOut dense_out_of(const Napi::CallbackInfo& info, size_t i, uint64_t numel, wp::Context& ctx, PromiseWorker& w);

void init_io(Napi::Env env, Napi::Object exports);
void init_quant(Napi::Env env, Napi::Object exports);
void init_backends(Napi::Env env, Napi::Object exports);
void init_entropy(Napi::Env env, Napi::Object exports);
void init_block(Napi::Env env, Napi::Object exports);
void init_vq(Napi::Env env, Napi::Object exports);
void init_qn(Napi::Env env, Napi::Object exports);
void init_gguf(Napi::Env env, Napi::Object exports);
void init_intq(Napi::Env env, Napi::Object exports);

}  // namespace wpa
