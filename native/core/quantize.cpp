#include "quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <limits>
#include <string>
#include <vector>

#include "error.h"
#include "kernels.h"
#include "metrics.h"
#include "pack.h"
#include "summarize.h"
#include "solvers/uniform.h"

namespace wp {

namespace {

constexpr size_t kChunk = 1 << 16;  // elements per assign/pack chunk; a multiple of 8 keeps chunks byte-aligned

double codebook_at(const void* cb, Dtype d, size_t i) {
  return d == Dtype::F16 ? (double)f16_to_f32(((const uint16_t*)cb)[i]) : (double)((const float*)cb)[i];
}

void codebook_put(void* cb, Dtype d, size_t i, double v) {
  if (d == Dtype::F16) ((uint16_t*)cb)[i] = f32_to_f16((float)v);
  else ((float*)cb)[i] = (float)v;
}

// An F16 codebook holds a slice when its largest |level| is within F16's normal range [2^-14, 65504] (or every
// level is 0): then no level overflows, and rounding costs each level at most 2^-11 of the slice's largest.
// Otherwise Error(Range), naming the slice (the scalar codec then stores F32 codebooks, with a warning).
void check_f16_levels(const std::vector<double>& lv, size_t slice) {
  double amax = 0;
  for (double v : lv) amax = std::max(amax, std::fabs(v));
  if (amax == 0 || (amax >= 6.103515625e-05 && amax <= 65504.0)) return;
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", amax);
  throw Error(Code::Range, "slice " + std::to_string(slice) + ": levels up to " + b + " in magnitude are outside F16's normal range [6.1e-05, 65504]");
}

}  // namespace

namespace {

void cpu_histogram16(const uint16_t* raw, uint64_t n, uint64_t S, uint64_t* hist, const Context& ctx) {
  constexpr uint64_t kHistChunk = 1 << 22;
  const uint64_t ns = slice_count(n, S);
  const uint64_t per_slice = (S + kHistChunk - 1) / kHistChunk;
  parallel_for(ctx, (size_t)(ns * per_slice), [&](size_t c) {
    uint64_t s = c / per_slice, b = s * S + (c % per_slice) * kHistChunk;
    uint64_t e = std::min({n, (s + 1) * S, b + kHistChunk});
    if (b >= e) return;
    std::vector<uint32_t> h(65536, 0);
    for (uint64_t i = b; i < e; ++i) ++h[raw[i]];
    uint64_t* H = hist + s * 65536;
    for (size_t v = 0; v < 65536; ++v)
      if (h[v]) __atomic_fetch_add(&H[v], (uint64_t)h[v], __ATOMIC_RELAXED);  // integer sums: order-free
  });
}

void cpu_assign16(const uint16_t* raw, uint64_t n, uint64_t S, const uint8_t* luts, int pb, uint8_t* out, const Context& ctx) {
  const size_t nchunks = (size_t)((n + kChunk - 1) / kChunk);
  parallel_for(ctx, nchunks, [&](size_t c) {
    uint64_t b = c * kChunk, e = std::min<uint64_t>(n, b + kChunk);
    for (uint64_t g = b; g < e; g += 8) {  // S % 8 == 0: a group of 8 never straddles two slices
      int len = (int)std::min<uint64_t>(8, e - g);
      lut_pack8(raw + g, len, luts + (g / S) * 65536, pb, out + (g / 8) * pb);
    }
  });
}

const Backend16 kCpuBackend16{"cpu", cpu_histogram16, cpu_assign16};

}  // namespace

const Backend16& cpu_backend16() { return kCpuBackend16; }

uint64_t slice_count(uint64_t numel, uint64_t slice_size) {
  if (numel == 0) return 0;
  return (numel + slice_size - 1) / slice_size;
}

void quantize_tensor(const TensorIn& in, const QuantizeParams& params, const QuantizeOut& out, const Context& ctx,
                     QuantizeStats* stats) {
  WP_THROW_IF_NOT(params.bits >= 1 && params.bits <= 8, Argument,
                  "bits must be an integer from 1 to 8, got " + std::to_string(params.bits));
  WP_THROW_IF_NOT(dtype_is_quantizable(in.dtype), Dtype,
                  std::string("cannot quantize dtype ") + dtype_name(in.dtype) + " (F64, F32, F16 or BF16 only)");
  WP_THROW_IF_NOT(params.codebook_dtype == Dtype::F32 || params.codebook_dtype == Dtype::F16, Argument,
                  "codebook dtype must be F32 or F16");
  WP_THROW_IF_NOT(params.slice_size >= 1, Argument, "slice size must be at least 1");
  const SolverRow* solver = find_solver(params.method);
  WP_THROW_IF_NOT(solver, Argument, "unknown method '" + params.method + "' (known: " + solver_names() + ")");
  const uint64_t n = in.numel, S = params.slice_size;
  const uint64_t ns = slice_count(n, S);
  const int k = 1 << params.bits;
  const Dtype cbd = params.codebook_dtype;
  const int pb = params.pack_bits ? params.pack_bits : params.bits;
  WP_THROW_IF_NOT(pb == params.bits || pb == 8, Argument, "pack_bits must be bits or 8");
  WP_THROW_IF_NOT(out.codes_bytes >= (n * (uint64_t)pb + 7) / 8, Argument, "codes buffer is too small");

  // Stage 0: large 16-bit slices get an exact histogram of their raw codes, built chunk-parallel. It summarizes
  // the slice (without importance), measures the error exactly (sum over codes of count x error^2), and leaves
  // the assign pass nothing but a table lookup and packing.
  const bool is16 = in.dtype == Dtype::F16 || in.dtype == Dtype::BF16;
  const bool big16 = is16 && S >= (1u << 18) && !in.assign_from;
  std::vector<uint64_t> hist(big16 ? ns * 65536 : 0);
  const Backend16& be = params.backend16 ? *params.backend16 : cpu_backend16();
  if (big16) be.histogram((const uint16_t*)in.data, n, S, hist.data(), ctx);
  ctx.check_cancel();

  // Stages 1-2: summarize and solve every slice (one batch of problems); write its codebook row (padded with its
  // last level) and its decision thresholds (the solver's, or the midpoints of the stored, rounded levels).
  auto check_finite = [&](size_t s) {
    uint64_t b = s * S, e = std::min(n, b + S);
    if (big16) {
      if (hist16_first_non_finite(hist.data() + s * 65536, in.dtype) < 65536) throw_non_finite_at(in.data, in.dtype, b, e);
    } else if ((params.fixed || params.fixed_slices) && first_non_finite(in.data, in.dtype, b, e) < e) {
      throw_non_finite_at(in.data, in.dtype, b, e);
    }
  };
  // Slices of at most a chunk that tile it (groups of 128, most rows): each chunk solves its own slices and assigns
  // them at once, while their values are in cache, with the slices' thresholds and levels in the thread's scratch.
  // One pass over the tensor instead of two, no tensor-sized threshold tables, and one work item per chunk
  // instead of one per slice. The output is the same: every slice is solved and assigned exactly as below.
  const bool fused = !big16 && !params.fixed && !params.fixed_slices && ns > 1 && S <= kChunk && kChunk % S == 0;
  std::vector<uint32_t> used(ns, 0);
  std::vector<double> thr(fused ? 0 : ns * (size_t)(k - 1) + 1), lvl(fused ? 0 : ns * (size_t)k);
  // Writes slice s's codebook row (padded with its last level) and, into L (k entries) and T (k - 1), its stored
  // levels and its decision thresholds (the solver's, or the midpoints of the stored, rounded levels).
  auto write_row_to = [&](size_t s, const Quantizer& q, double* L, double* T) {
    const std::vector<double>& lv = q.levels;
    used[s] = (uint32_t)lv.size();
    if (cbd == Dtype::F16) check_f16_levels(lv, s);
    for (int t = 0; t < k; ++t) {
      size_t src = std::min<size_t>((size_t)t, lv.size() - 1);
      codebook_put(out.codebook, cbd, s * (size_t)k + t, lv[src]);
      L[t] = codebook_at(out.codebook, cbd, s * (size_t)k + t);
    }
    for (int t = 0; t + 1 < k; ++t) {
      if ((size_t)t + 1 < lv.size()) T[t] = q.thresholds.empty() ? 0.5 * (L[t] + L[t + 1]) : q.thresholds[(size_t)t];
      else T[t] = std::numeric_limits<double>::infinity();  // padding entries are never chosen
    }
  };
  auto write_row = [&](size_t s, const Quantizer& q) { write_row_to(s, q, lvl.data() + s * (size_t)k, thr.data() + s * (size_t)(k - 1)); };
  SolverParams sp = params.solver;
  sp.k = k;
  auto problem = [&](size_t s, WeightedPoints& pts) {
    uint64_t b = s * S, e = std::min(n, b + S);
    check_finite(s);
    if (big16 && !in.importance) points_from_hist16(hist.data() + s * 65536, in.dtype, pts);
    else summarize_slice(in.data, in.dtype, b, e, in.importance, pts);
    // A slice whose importance is zero everywhere carries no preference: weigh its values equally.
    if (pts.size() == 0 && e > b && in.importance) summarize_slice(in.data, in.dtype, b, e, nullptr, pts);
  };
  if (params.fixed || params.fixed_slices) {
    // No solve, but every slice is still checked for NaN/Inf.
    WP_THROW_IF_NOT(!params.fixed_slices || params.fixed_slices->size() == ns, Argument, "fixed quantizers must be one per slice");
    for (size_t s = 0; s < (params.fixed_slices ? ns : 1); ++s) {
      const Quantizer& q = params.fixed_slices ? (*params.fixed_slices)[s] : *params.fixed;
      WP_THROW_IF_NOT(!q.levels.empty() && (int)q.levels.size() <= k, Argument, "fixed quantizer must have 1 to 2^bits levels");
      WP_THROW_IF_NOT(q.thresholds.empty() || q.thresholds.size() + 1 == q.levels.size(), Argument, "fixed quantizer must have one threshold fewer than levels");
    }
    parallel_for(ctx, ns, [&](size_t s) {
      check_finite(s);
      write_row(s, params.fixed_slices ? (*params.fixed_slices)[s] : *params.fixed);
      if (ctx.progress) ctx.progress((double)(s + 1), (double)ns);
    });
  } else if (!fused) {
    SolveBatch batch;
    batch.count = ns;
    batch.problem = problem;
    batch.result = [&](size_t s, Quantizer& q, const SolveStats&) { write_row(s, q); };
    solve_batch(*solver, sp, batch, ctx);
  }

  // Stage 3: assign by the thresholds, pack, and measure, chunk by chunk. Large 16-bit slices use a
  // 65,536-entry lookup table (raw code -> level index) and are measured from their histogram instead.
  std::vector<uint8_t> luts(big16 ? ns * 65536 : 0);
  std::vector<ErrorSums> s_err(ns);
  if (big16) {
    parallel_for(ctx, ns, [&](size_t s) {
      const double* th = thr.data() + s * (k - 1);
      const double* lv = lvl.data() + s * k;
      const uint64_t* H = hist.data() + s * 65536;
      ErrorSums err;
      for (uint32_t h = 0; h < 65536; ++h) {
        double x = in.dtype == Dtype::F16 ? f16_to_f32((uint16_t)h) : bf16_to_f32((uint16_t)h);
        uint8_t q = std::isfinite(x) ? (uint8_t)assign_code(th, k, x) : 0;
        luts[s * 65536 + h] = q;
        if (H[h]) err.add(x, lv[q], (double)H[h]);
      }
      s_err[s] = err;
    });
  }
  const size_t nchunks = (size_t)((n + kChunk - 1) / kChunk);
  std::vector<ErrorSums> c_err(nchunks);
  if (big16 && S % 8 == 0) {
    be.assign((const uint16_t*)in.data, n, S, luts.data(), pb, out.codes, ctx);
  } else {
    // Min-max uniform grids depend on a slice's smallest and largest values only: without importance (which can
    // drop values) they are placed from one scan of the slice, with no summary and no solve. The levels are those
    // the solver gives (uniform_levels): it solves at unit scale (solve_checked divides by a power of two and
    // multiplies back), which for the grid's few operations on values of F32, F16 or BF16 range is exact, so the
    // same doubles. Slices that are constant, or hold a NaN or Inf, go the general way (its error, its mean).
    const bool minmax = fused && params.method == "uniform" && sp.step == UniformStep::MinMax && !in.importance &&
                        !in.assign_from && (in.dtype == Dtype::F32 || is16);
    auto slice_range = [&](size_t s, double& lo, double& hi) {
      const uint64_t b = s * S, e = std::min(n, b + S);
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      bool finite = true;
      auto scan = [&](auto load) {
        for (uint64_t i = b; i < e; ++i) {
          const float v = load(i);
          finite &= std::isfinite(v);
          mn = std::min(mn, v);
          mx = std::max(mx, v);
        }
      };
      const uint8_t* d = (const uint8_t*)in.data;
      switch (in.dtype) {
        case Dtype::F32: scan([d](uint64_t j) { float v; std::memcpy(&v, d + j * 4, 4); return v; }); break;
        case Dtype::F16: scan([d](uint64_t j) { uint16_t v; std::memcpy(&v, d + j * 2, 2); return f16_to_f32(v); }); break;
        default: scan([d](uint64_t j) { uint16_t v; std::memcpy(&v, d + j * 2, 2); return bf16_to_f32(v); }); break;
      }
      lo = mn;
      hi = mx;
      return finite && e > b;
    };
    // Fused: as solve_batch does for a batch of several problems, each solve runs on one thread (sp.threads = 1)
    // with the slice's index mixed into the seed (solve_one).
    SolverParams sp1 = sp;
    sp1.threads = 1;
    sp1.ctx = nullptr;
    std::atomic<size_t> solved{0};
    parallel_for(ctx, nchunks, [&](size_t c) {
      uint64_t b = c * kChunk, e = std::min<uint64_t>(n, b + kChunk);
      thread_local std::vector<uint8_t> codes_buf;
      thread_local std::vector<double> f_thr, f_lvl;
      thread_local WeightedPoints pts;
      if (codes_buf.size() < e - b) codes_buf.resize(e - b);
      uint8_t* codes = codes_buf.data();
      const uint64_t s0 = b / S;  // fused: the chunk holds slices [s0, s0 + ceil((e - b) / S)) whole
      if (fused) {
        const uint64_t s1 = slice_count(e, S);
        f_thr.resize((size_t)(s1 - s0) * (k - 1) + 1);
        f_lvl.resize((size_t)(s1 - s0) * k);
        thread_local Quantizer mq;
        for (uint64_t s = s0; s < s1; ++s) {
          double* L = f_lvl.data() + (s - s0) * k;
          double* T = f_thr.data() + (s - s0) * (k - 1);
          double lo, hi;
          if (minmax && slice_range(s, lo, hi) && uniform_minmax_grid(lo, hi, k, sp.symmetric, mq.levels)) {
            write_row_to(s, mq, L, T);
            continue;
          }
          problem(s, pts);
          Quantizer q = solve_one(*solver, pts, sp1, s);
          write_row_to(s, q, L, T);
        }
        size_t d = solved.fetch_add(s1 - s0, std::memory_order_relaxed) + (s1 - s0);
        if (ctx.progress) ctx.progress((double)d, (double)ns);
      }
      ErrorSums err;
      for (uint64_t i = b; i < e;) {
        uint64_t s = i / S;
        uint64_t se = std::min(e, (s + 1) * S);
        if (big16) {
          const uint8_t* L = luts.data() + s * 65536;
          const uint16_t* raw = (const uint16_t*)in.data;
          for (; i < se; ++i) codes[i - b] = L[raw[i]];
        } else {
          const double* th = fused ? f_thr.data() + (s - s0) * (k - 1) : thr.data() + s * (k - 1);
          const double* lv = fused ? f_lvl.data() + (s - s0) * k : lvl.data() + s * k;
          if (k <= 32 && !in.assign_from && in.dtype != Dtype::F64 && std::is_sorted(th, th + (k - 1))) {
            // Values of F32, F16 or BF16 are floats: x > t for a double threshold t exactly when x > t_f, t_f the
            // largest float not above t. So the code, the number of thresholds below x (what assign_code's
            // search finds over ascending thresholds), is counted with float compares over tiles of 64 values,
            // which vectorize; the error sums then run in element order as below. The same codes and sums.
            float tf[31];
            for (int t = 0; t + 1 < k; ++t) {
              float f = (float)th[t];
              if ((double)f > th[t]) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
              tf[t] = f;
            }
            constexpr int kT = 64;
            alignas(32) float xb[kT];
            alignas(32) int32_t qb[kT];
            const uint8_t* d = (const uint8_t*)in.data;
            while (i < se) {
              const int nt = (int)std::min<uint64_t>(kT, se - i);
              switch (in.dtype) {
                case Dtype::F32: std::memcpy(xb, d + i * 4, (size_t)nt * 4); break;
                case Dtype::F16: for (int j = 0; j < nt; ++j) { uint16_t v; std::memcpy(&v, d + (i + j) * 2, 2); xb[j] = f16_to_f32(v); } break;
                default: for (int j = 0; j < nt; ++j) { uint16_t v; std::memcpy(&v, d + (i + j) * 2, 2); xb[j] = bf16_to_f32(v); } break;
              }
              for (int j = 0; j < nt; ++j) qb[j] = 0;
              for (int t = 0; t + 1 < k; ++t) {
                const float f = tf[t];
                for (int j = 0; j < nt; ++j) qb[j] += xb[j] > f ? 1 : 0;
              }
              for (int j = 0; j < nt; ++j) {
                const int q = qb[j];
                codes[i + j - b] = (uint8_t)q;
                err.add((double)xb[j], lv[q]);
              }
              i += (uint64_t)nt;
            }
            continue;
          }
          auto run = [&](auto load) {
            for (; i < se; ++i) {
              double x = load(i);
              uint8_t q = (uint8_t)assign_code(th, k, in.assign_from ? (double)in.assign_from[i] : x);
              codes[i - b] = q;
              err.add(x, lv[q]);
            }
          };
          const uint8_t* d = (const uint8_t*)in.data;
          switch (in.dtype) {
            case Dtype::F32: run([d](uint64_t j) { float v; std::memcpy(&v, d + j * 4, 4); return (double)v; }); break;
            case Dtype::F64: run([d](uint64_t j) { double v; std::memcpy(&v, d + j * 8, 8); return v; }); break;
            case Dtype::F16: run([d](uint64_t j) { uint16_t v; std::memcpy(&v, d + j * 2, 2); return (double)f16_to_f32(v); }); break;
            default: run([d](uint64_t j) { uint16_t v; std::memcpy(&v, d + j * 2, 2); return (double)bf16_to_f32(v); }); break;
          }
        }
      }
      pack_bits(codes, e - b, pb, out.codes + (b / 8) * pb);
      c_err[c] = err;
    });
  }
  // Zero the padding after the last code byte so the output is deterministic.
  size_t used_bytes = (size_t)((n * pb + 7) / 8);
  if (out.codes_bytes > used_bytes) std::fill(out.codes + used_bytes, out.codes + out.codes_bytes, 0);
  if (stats) {
    *stats = QuantizeStats{};
    stats->n = n;
    stats->slices = ns;
    ErrorSums total;
    for (size_t c = 0; c < nchunks; ++c) total.merge(c_err[c]);
    for (size_t sl = 0; sl < ns && big16; ++sl) total.merge(s_err[sl]);
    stats->sse = total.sse;
    stats->signal = total.signal;
    stats->max_abs_err = total.max_abs;
    double u = 0;
    for (auto v : used) u += v;
    stats->levels_used = ns ? u / ns : 0;
    stats->backend = big16 ? be.name : "cpu";
  }
}

uint64_t dequantize_tensor(const DequantizeIn& in, Dtype out_dtype, void* out, const Context& ctx) {
  WP_THROW_IF_NOT(in.bits >= 1 && in.bits <= 8, Format, "bits must be from 1 to 8");
  WP_THROW_IF_NOT(in.slice_size >= 1, Format, "slice size must be at least 1");
  WP_THROW_IF_NOT(out_dtype == Dtype::F32 || out_dtype == Dtype::F16 || out_dtype == Dtype::BF16 ||
                      out_dtype == Dtype::F64, Argument, "decode dtype must be F32, F16, BF16 or F64");
  const uint64_t n = in.numel, S = in.slice_size;
  const int k = 1 << in.bits;
  const int pb = in.pack_bits ? in.pack_bits : in.bits;
  WP_THROW_IF_NOT(pb == in.bits || pb == 8, Argument, "pack_bits must be bits or 8");
  const size_t osz = dtype_size(out_dtype);
  const size_t nchunks = (size_t)((n + kChunk - 1) / kChunk);
  std::atomic<uint64_t> saturated{0};
  parallel_for(ctx, nchunks, [&](size_t c) {
    thread_local std::vector<uint8_t> codes;
    thread_local std::vector<float> vals;
    uint64_t b = c * kChunk, e = std::min<uint64_t>(n, b + kChunk);
    codes.resize(e - b);
    vals.resize(e - b);
    unpack_bits(in.codes + (b / 8) * pb, e - b, pb, codes.data());
    if (pb != in.bits)  // one byte per code: a code past the level table is corrupt input
      for (uint64_t i = 0; i < e - b; ++i)
        if (codes[i] >= k) throw Error(Code::Format, "code " + std::to_string(codes[i]) + " out of range for " + std::to_string(in.bits) + " bits");
    for (uint64_t i = b; i < e;) {
      uint64_t s = i / S, se = std::min(e, (s + 1) * S);
      float lv[256];
      for (int t = 0; t < k; ++t) lv[t] = (float)codebook_at(in.codebook, in.codebook_dtype, s * (size_t)k + t);
      for (; i < se; ++i) vals[i - b] = lv[codes[i - b]];
    }
    if (out_dtype == Dtype::F64) {
      // F64 output keeps the F32 value exactly.
      double* o = (double*)out + b;
      for (uint64_t i = 0; i < e - b; ++i) o[i] = vals[i];
    } else {
      saturated.fetch_add(store_from_float(vals.data(), e - b, out_dtype, (char*)out + b * osz, in.overflow), std::memory_order_relaxed);
    }
  });
  return saturated.load();
}

}  // namespace wp
