// N-API face of entropy coding (core/entropy): encode symbols into a blob, decode a blob, inspect a blob.
//
//   entropyEncode(symbols: Uint8Array, {coder: 'huffman'|'ans', alphabet, chunk?, maxLen?, probBits?, threads?},
//                 cancel?: Int32Array)
//     -> Promise<{blob: Uint8Array, coder, n, alphabet, chunk, chunks, maxLen | probBits, entropy, avgCodeLength,
//                 tableBytes, payloadBytes, totalBytes}>
//   entropyDecode(blob: Uint8Array, out: Uint8Array, threads?: number, cancel?: Int32Array) -> Promise<void>
//   entropyInfo(blob: Uint8Array) -> {coder, n, alphabet, chunk, chunks, maxLen | probBits, codeLengths |
//                 frequencies, entropy, avgCodeLength, tableBytes, payloadBytes, totalBytes}   (synchronous)
//
// Type errors in the arguments throw synchronously (E_ARGUMENT); everything found while working (a symbol
// >= alphabet, a malformed blob: E_FORMAT, a size mismatch) rejects the Promise with a coded error.
#include <cmath>
#include <cstring>
#include <memory>

#include "../core/entropy/entropy.h"
#include "common.h"

namespace wpa {

namespace {

Bytes u8_of(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw_arg(v.Env(), std::string(what) + " must be a Uint8Array");
  napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
  if (t != napi_uint8_array && t != napi_uint8_clamped_array) throw_arg(v.Env(), std::string(what) + " must be a Uint8Array");
  return bytes_of(v, what);
}

// An integer option in [lo, hi], or def when absent.
int64_t int_of(const Napi::Object& o, const char* key, int64_t def, int64_t lo, int64_t hi) {
  double v = num_of(o, key, (double)def);
  if (!(v >= (double)lo && v <= (double)hi) || v != std::floor(v))
    throw_arg(o.Env(), std::string(key) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return (int64_t)v;
}

const char* coder_name(wp::Coder c) { return c == wp::Coder::Huffman ? "huffman" : "ans"; }

void set_stats(Napi::Env env, Napi::Object o, const wp::EntropyStats& s) {
  o.Set("entropy", Napi::Number::New(env, s.entropy_bits));
  o.Set("avgCodeLength", Napi::Number::New(env, s.avg_code_bits));
  o.Set("tableBytes", Napi::Number::New(env, (double)s.table_bytes));
  o.Set("payloadBytes", Napi::Number::New(env, (double)s.payload_bytes));
  o.Set("totalBytes", Napi::Number::New(env, (double)s.total_bytes));
}

// The vector's bytes as a Uint8Array without a copy where the runtime allows external buffers.
Napi::Uint8Array to_u8(Napi::Env env, wp::Blob&& v) {
  const size_t size = v.size();
  auto* holder = new wp::Blob(std::move(v));
  Napi::ArrayBuffer ab;
  try {
    ab = Napi::ArrayBuffer::New(env, holder->data(), size, [](Napi::Env, void*, wp::Blob* h) { delete h; }, holder);
  } catch (const Napi::Error&) {
    ab = Napi::ArrayBuffer::New(env, size);
    if (size) std::memcpy(ab.Data(), holder->data(), size);
    delete holder;
  }
  return Napi::Uint8Array::New(env, size, ab, 0);
}

class EncodeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  const uint8_t* sym = nullptr;
  size_t n = 0;
  wp::EntropyParams params;
  wp::Context ctx;
  wp::Blob blob;
  wp::EntropyStats stats;
  void Run() override { blob = wp::entropy_encode(sym, n, params, ctx, &stats); }
  Napi::Value Result(Napi::Env env) override {
    wp::EntropyInfo info = wp::entropy_info(blob.data(), blob.size());  // cheap; reads back what was written
    Napi::Object o = Napi::Object::New(env);
    o.Set("blob", to_u8(env, std::move(blob)));
    o.Set("coder", Napi::String::New(env, coder_name(info.coder)));
    o.Set("n", Napi::Number::New(env, (double)info.n));
    o.Set("alphabet", Napi::Number::New(env, info.alphabet));
    o.Set("chunk", Napi::Number::New(env, info.chunk));
    o.Set("chunks", Napi::Number::New(env, (double)info.chunks));
    o.Set(info.coder == wp::Coder::Huffman ? "maxLen" : "probBits", Napi::Number::New(env, info.param));
    set_stats(env, o, stats);
    return o;
  }
};

Napi::Value EntropyEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsObject()) throw_arg(env, "entropyEncode(symbols, {coder, alphabet, chunk?, maxLen?, probBits?, threads?}, cancel?)");
  Bytes s = u8_of(info[0], "symbols");
  Napi::Object o = info[1].As<Napi::Object>();
  auto* w = new EncodeWorker(env);
  std::unique_ptr<EncodeWorker> guard(w);
  w->sym = s.data;
  w->n = s.size;
  const std::string coder = str_of(o, "coder", "huffman");
  if (coder == "huffman") w->params.coder = wp::Coder::Huffman;
  else if (coder == "ans" || coder == "rans") w->params.coder = wp::Coder::Rans;
  else throw_arg(env, "coder must be 'huffman' or 'ans', got '" + coder + "'");
  w->params.alphabet = (int)int_of(o, "alphabet", 256, 1, 256);
  w->params.chunk = (uint32_t)int_of(o, "chunk", 1 << 16, 1, 1 << 28);
  w->params.max_len = (int)int_of(o, "maxLen", 16, 1, 16);
  w->params.prob_bits = (int)int_of(o, "probBits", 0, 0, 15);
  if (w->params.prob_bits != 0 && w->params.prob_bits < 8) throw_arg(env, "probBits must be 0 (automatic) or from 8 to 15");
  w->ctx.threads = (int)int_of(o, "threads", 0, 0, 4096);
  w->ctx.cancel = cancel_of(info[2]);
  w->Keep(info[0]);
  w->Keep(info[2]);
  guard.release();
  return w->Queue();
}

class DecodeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  const uint8_t* blob = nullptr;
  size_t size = 0;
  uint8_t* out = nullptr;
  size_t n = 0;
  wp::Context ctx;
  void Run() override { wp::entropy_decode(blob, size, out, n, ctx); }
};

Napi::Value EntropyDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = u8_of(info[0], "blob");
  Bytes out = u8_of(info[1], "out");
  auto* w = new DecodeWorker(env);
  std::unique_ptr<DecodeWorker> guard(w);
  w->blob = b.data;
  w->size = b.size;
  w->out = out.data;
  w->n = out.size;
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsNumber()) throw_arg(env, "threads must be a number");
    double t = info[2].As<Napi::Number>().DoubleValue();
    if (!(t >= 0 && t <= 4096) || t != std::floor(t)) throw_arg(env, "threads must be an integer from 0 to 4096");
    w->ctx.threads = (int)t;
  }
  w->ctx.cancel = cancel_of(info[3]);
  w->Keep(info[0]);
  w->Keep(info[1]);
  w->Keep(info[3]);
  guard.release();
  return w->Queue();
}

Napi::Value EntropyInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = u8_of(info[0], "blob");
  wp::EntropyInfo in;
  try {
    in = wp::entropy_info(b.data, b.size);
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("coder", Napi::String::New(env, coder_name(in.coder)));
  o.Set("n", Napi::Number::New(env, (double)in.n));
  o.Set("alphabet", Napi::Number::New(env, in.alphabet));
  o.Set("chunk", Napi::Number::New(env, in.chunk));
  o.Set("chunks", Napi::Number::New(env, (double)in.chunks));
  o.Set(in.coder == wp::Coder::Huffman ? "maxLen" : "probBits", Napi::Number::New(env, in.param));
  Napi::Array t = Napi::Array::New(env, in.table.size());
  for (size_t i = 0; i < in.table.size(); ++i) t.Set((uint32_t)i, Napi::Number::New(env, in.table[i]));
  o.Set(in.coder == wp::Coder::Huffman ? "codeLengths" : "frequencies", t);
  set_stats(env, o, in.stats);
  return o;
}

}  // namespace

void init_entropy(Napi::Env env, Napi::Object exports) {
  exports.Set("entropyEncode", Napi::Function::New(env, EntropyEncode, "entropyEncode"));
  exports.Set("entropyDecode", Napi::Function::New(env, EntropyDecode, "entropyDecode"));
  exports.Set("entropyInfo", Napi::Function::New(env, EntropyInfo, "entropyInfo"));
}

}  // namespace wpa
