// N-API face of the block-scaled formats (native/core/block.h, docs/BLOCK.md):
//   blockQuantize(tensor, params, codes, scales, table, cancel?, onProgress?(done, total)) -> Promise<stats>
//     (progress: refinement rounds done)
//   blockDequantize(source, params, outDtype, out, threads?, cancel?) -> Promise<void>
//   blockSizes(numel, cols, params) -> {codesBytes, scalesBytes, tableBytes, ...}   (sync)
#include <cmath>

#include "../core/block.h"
#include "common.h"

namespace wpa {

namespace {

// params: {bits, blockSize, scale: 'absmax'|'optimal', table: 'tensor'|'row', solver, rounds, tol,
//          doubleQuant?: {bits, superBlock, dtype?: 'F16'|'F32'}, packBits?, solverParams? (the table solver's
//          options, as quantize takes them),
//          scaleSteps?, scaleSpan?, histBins?, lloydSteps?, fixedTable?: Float32Array | number[]}
wp::BlockParams block_params_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw_arg(env, "block params must be an object");
  Napi::Object o = v.As<Napi::Object>();
  wp::BlockParams p;
  auto integer = [&](const char* key, double def, double lo, double hi) {
    if (std::isnan(def) && o.Get(key).IsUndefined()) throw_arg(env, std::string(key) + " is required");
    double x = num_of(o, key, def);
    if (!(x >= lo && x <= hi) || x != std::floor(x))
      throw_arg(env, std::string(key) + " must be an integer from " + std::to_string((long long)lo) + " to " + std::to_string((long long)hi));
    return x;
  };
  // No defaults here for what shapes the format: the block codec's option declarations hold them (lib/codecs/block.ts).
  p.bits = (int)integer("bits", NAN, 1, 8);
  p.block_size = (uint32_t)integer("blockSize", NAN, 1, 65536);
  std::string scale = str_of(o, "scale", "optimal");
  if (scale == "absmax") p.scale = wp::BlockScale::Absmax;
  else if (scale == "optimal") p.scale = wp::BlockScale::Optimal;
  else throw_arg(env, "scale must be absmax or optimal, got '" + scale + "'");
  std::string table = str_of(o, "table", "tensor");
  if (table == "tensor") p.table = wp::BlockTable::Tensor;
  else if (table == "row") p.table = wp::BlockTable::Row;
  else throw_arg(env, "table must be tensor or row, got '" + table + "'");
  p.solver = str_of(o, "solver", "kmeans-optimal");
  p.rounds = (int)integer("rounds", 4, 0, 1000);
  p.tol = num_of(o, "tol", 1e-6);
  p.scale_steps = (int)integer("scaleSteps", 8, 1, 1000);
  p.scale_steps_later = (int)integer("scaleStepsLater", 1, 1, 1000);
  p.scale_span = num_of(o, "scaleSpan", 0.2);
  p.hist_bins = (int)integer("histBins", 65536, 2, 1 << 24);
  p.ls_iters = (int)integer("lsIters", 2, 0, 100);
  p.dq_steps = (int)integer("dqSteps", 5, 1, 1000);
  p.lloyd_steps = (int)integer("lloydSteps", 4, 0, 10000);
  p.pack_bits = (int)integer("packBits", 0, 0, 8);
  p.solver_params = solver_params_of(env, o.Get("solverParams"));
  p.solver_params.threads = 1;  // tables are solved in parallel; each solve takes one thread
  Napi::Value dq = o.Get("doubleQuant");
  if (!dq.IsUndefined() && !dq.IsNull() && !(dq.IsBoolean() && !dq.As<Napi::Boolean>().Value())) {
    if (!dq.IsObject()) throw_arg(env, "doubleQuant must be an object {bits, superBlock, dtype?}");
    Napi::Object d = dq.As<Napi::Object>();
    if (d.Get("bits").IsUndefined() || d.Get("superBlock").IsUndefined()) throw_arg(env, "doubleQuant needs bits and superBlock");
    double b = num_of(d, "bits", 0), sb = num_of(d, "superBlock", 0);
    if (!(b >= 2 && b <= 8) || b != std::floor(b)) throw_arg(env, "doubleQuant.bits must be an integer from 2 to 8");
    if (!(sb >= 1 && sb <= (1 << 30)) || sb != std::floor(sb)) throw_arg(env, "doubleQuant.superBlock must be a positive integer");
    p.dq_bits = (int)b;
    p.super_block = (uint32_t)sb;
    std::string dt = str_of(d, "dtype", "F16");
    if (dt == "F16") p.super_dtype = wp::Dtype::F16;
    else if (dt == "F32") p.super_dtype = wp::Dtype::F32;
    else throw_arg(env, "doubleQuant.dtype must be F16 or F32, got '" + dt + "'");
  }
  Napi::Value ft = o.Get("fixedTable");
  if (!ft.IsUndefined() && !ft.IsNull()) {
    if (ft.IsTypedArray() && ft.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
      Bytes b = bytes_of(ft, "fixedTable");
      const float* f = reinterpret_cast<const float*>(b.data);
      p.fixed_table.assign(f, f + b.size / 4);
    } else if (ft.IsArray()) {
      Napi::Array a = ft.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (!e.IsNumber()) throw_arg(env, "fixedTable must hold numbers");
        p.fixed_table.push_back((float)e.As<Napi::Number>().DoubleValue());
      }
    } else {
      throw_arg(env, "fixedTable must be a Float32Array or an array of numbers");
    }
  }
  return p;
}

wp::BlockLayout layout_or_throw(Napi::Env env, uint64_t numel, uint64_t cols, const wp::BlockParams& p, const std::string& tensor) {
  try {
    return wp::block_layout(numel, cols, p);
  } catch (wp::Error& e) {
    e.with_tensor(tensor);
    throw to_js_error(env, e);
  }
}

Napi::Object layout_to_js(Napi::Env env, const wp::BlockLayout& L, uint64_t numel) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("codesBytes", Napi::Number::New(env, (double)L.codes_bytes));
  o.Set("scalesBytes", Napi::Number::New(env, (double)L.scales_bytes));
  o.Set("tableBytes", Napi::Number::New(env, (double)L.table_bytes));
  o.Set("superBytes", Napi::Number::New(env, (double)L.super_bytes));
  o.Set("rows", Napi::Number::New(env, (double)L.rows));
  o.Set("blocks", Napi::Number::New(env, (double)L.blocks));
  o.Set("superBlocks", Napi::Number::New(env, (double)L.super_blocks));
  o.Set("tables", Napi::Number::New(env, (double)L.tables));
  o.Set("bits", Napi::Number::New(env, L.bits));
  o.Set("bitsPerWeight", Napi::Number::New(env, numel ? L.bits / (double)numel : 0));
  return o;
}

class BlockQuantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::BlockTensorIn in;
  wp::BlockParams params;
  wp::BlockOut out;
  wp::Context ctx;
  wp::BlockStats stats;
  void Run() override { wp::block_quantize(in, params, out, ctx, &stats); }
  Napi::Value Result(Napi::Env env) override {
    const wp::BlockStats& s = stats;
    Napi::Object o = Napi::Object::New(env);
    o.Set("n", Napi::Number::New(env, (double)s.n));
    o.Set("blocks", Napi::Number::New(env, (double)s.blocks));
    o.Set("tables", Napi::Number::New(env, (double)s.tables));
    o.Set("sse", Napi::Number::New(env, s.sse));
    o.Set("signal", Napi::Number::New(env, s.signal));
    o.Set("maxAbsErr", Napi::Number::New(env, s.max_abs_err));
    o.Set("weightedDistortion", Napi::Number::New(env, s.weighted_distortion));
    o.Set("rounds", Napi::Number::New(env, s.rounds));
    Napi::Array h = Napi::Array::New(env, s.history.size());
    Napi::Array hs = Napi::Array::New(env, s.history.size());
    for (size_t i = 0; i < s.history.size(); ++i) {
      h.Set((uint32_t)i, Napi::Number::New(env, s.history[i]));
      const char* k = s.history_step[i] == 'i' ? "init" : s.history_step[i] == 's' ? "scale" : "table";
      hs.Set((uint32_t)i, Napi::String::New(env, k));
    }
    o.Set("history", h);
    o.Set("historySteps", hs);
    o.Set("codeEntropy", Napi::Number::New(env, s.code_entropy));
    o.Set("levelsUsed", Napi::Number::New(env, s.levels_used));
    o.Set("bits", Napi::Number::New(env, s.bits));
    o.Set("bitsPerWeight", Napi::Number::New(env, s.n ? s.bits / (double)s.n : 0));
    return o;
  }
};

// blockQuantize({data, dtype, numel, cols, importance?, name?}, params, codes, scales, table, cancel?)
Napi::Value BlockQuantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject())
    throw_arg(env, "blockQuantize(tensor, params, codes, scales, table, cancel?)");
  Napi::Object t = info[0].As<Napi::Object>();
  auto* w = new BlockQuantizeWorker(env);
  std::unique_ptr<BlockQuantizeWorker> guard(w);
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
  w->params = block_params_of(env, info[1]);
  wp::BlockLayout L = layout_or_throw(env, w->in.numel, w->in.cols, w->params, w->tensor);
  Napi::Object p = info[1].As<Napi::Object>();
  w->ctx.threads = (int)num_of(p, "threads", 0);
  w->ctx.cancel = cancel_of(info[5]);
  w->AttachProgress(env, info[6], w->ctx);
  Bytes codes = out_buffer_of(env, info[2], "codes", L.codes_bytes, "blockSizes");
  Bytes scales = out_buffer_of(env, info[3], "scales", L.scales_bytes, "blockSizes");
  Bytes table = out_buffer_of(env, info[4], "table", L.table_bytes, "blockSizes");
  w->out = {codes.data, codes.size, scales.data, scales.size, table.data, table.size};
  w->Keep(t.Get("data"));
  w->Keep(info[2]);
  w->Keep(info[3]);
  w->Keep(info[4]);
  w->Keep(info[5]);
  guard.release();
  return w->Queue();
}

class BlockDequantizeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  wp::BlockSource src;
  wp::BlockParams params;
  wp::Dtype out_dtype = wp::Dtype::F32;
  void* out = nullptr;
  wp::Context ctx;
  uint64_t saturated = 0;
  void Run() override { saturated = wp::block_dequantize(src, params, out_dtype, out, ctx); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, (double)saturated); }
};

// blockDequantize({codes, scales, table, numel, cols, name?, allowOverflow?}, params, outDtype, out, threads?, cancel?)
//   -> Promise<number of values saturated (allowOverflow), else E_RANGE on overflow>
Napi::Value BlockDequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject() || !info[2].IsString())
    throw_arg(env, "blockDequantize(source, params, outDtype, out, threads?, cancel?)");
  Napi::Object s = info[0].As<Napi::Object>();
  auto* w = new BlockDequantizeWorker(env);
  std::unique_ptr<BlockDequantizeWorker> guard(w);
  w->tensor = str_of(s, "name", "");
  Bytes codes = bytes_of(s.Get("codes"), "codes");
  Bytes scales = bytes_of(s.Get("scales"), "scales");
  Bytes table = bytes_of(s.Get("table"), "table");
  w->src.codes = codes.data;
  w->src.codes_bytes = codes.size;
  w->src.scales = scales.data;
  w->src.scales_bytes = scales.size;
  w->src.table = table.data;
  w->src.table_bytes = table.size;
  w->src.numel = (uint64_t)num_of(s, "numel", 0);
  w->src.cols = (uint64_t)num_of(s, "cols", (double)w->src.numel);
  w->src.overflow = overflow_of(s);
  w->params = block_params_of(env, info[1]);
  layout_or_throw(env, w->src.numel, w->src.cols, w->params, w->tensor);
  DenseOut o = dense_out_of(info, 2, w->src.numel, w->ctx, *w);
  w->out_dtype = o.dtype;
  w->out = o.data;
  w->Keep(s.Get("codes"));
  w->Keep(s.Get("scales"));
  w->Keep(s.Get("table"));
  guard.release();
  return w->Queue();
}

// blockSizes(numel, cols, params) -> {codesBytes, scalesBytes, tableBytes, superBytes, rows, blocks, superBlocks,
//                                    tables, bits, bitsPerWeight}
Napi::Value BlockSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw_arg(env, "blockSizes(numel, cols, params)");
  uint64_t numel = (uint64_t)info[0].As<Napi::Number>().DoubleValue();
  uint64_t cols = (uint64_t)info[1].As<Napi::Number>().DoubleValue();
  wp::BlockParams p = block_params_of(env, info[2].IsUndefined() ? Napi::Object::New(env) : info[2]);
  return layout_to_js(env, layout_or_throw(env, numel, cols, p, ""), numel);
}

}  // namespace

void init_block(Napi::Env env, Napi::Object exports) {
  exports.Set("blockQuantize", Napi::Function::New(env, BlockQuantize, "blockQuantize"));
  exports.Set("blockDequantize", Napi::Function::New(env, BlockDequantize, "blockDequantize"));
  exports.Set("blockSizes", Napi::Function::New(env, BlockSizes, "blockSizes"));
}

}  // namespace wpa
