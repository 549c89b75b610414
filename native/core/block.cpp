#include "block.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "entropy/entropy.h"
#include "error.h"
#include "kernels.h"
#include "metrics.h"
#include "pack.h"
#include "summarize.h"

namespace wp {

namespace {

constexpr uint64_t kChunkBlocks = 256;   // blocks per work unit; a multiple of 8, so every chunk's codes start
                                         // on a byte boundary whatever B and the code width
constexpr size_t kExactMax = 1u << 17;   // a table group with at most this many values is solved exactly
constexpr uint64_t kHistSlabs = 16;      // histogram partial sums: a fixed count (determinism)
constexpr float kInf = std::numeric_limits<float>::infinity();

inline float f16r(float v) { return f16_to_f32(f32_to_f16(v)); }
constexpr double kF16MinNormal = 6.103515625e-05;  // 2^-14
std::string num_str(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}
inline uint64_t align8(uint64_t b) { return (b + 7) & ~(uint64_t)7; }

// A level table: K levels (ascending unless the solver's thresholds define the cells), K-1 thresholds in the
// normalized domain u (a value gets level t when th[t-1] < u <= th[t]); levels past `used` repeat the last one
// and their thresholds are +inf (never chosen).
struct Tab {
  std::vector<float> lv, th;
  int used = 0;
  bool solver_th = false;  // thresholds from the solver (ECSQ): kept through Lloyd steps
};

struct TView {
  const float* lv;
  const float* th;
  int k;
};

inline TView view(const Tab& t) { return {t.lv.data(), t.th.data(), (int)t.lv.size()}; }

// Number of thresholds below u: branch-free binary search (K is a power of two).
inline int assign(float u, const TView& t) { return assign_code(t.th, t.k, u); }

void midpoints(Tab& t) {
  const int k = (int)t.lv.size();
  for (int i = 0; i + 1 < k; ++i)
    t.th[i] = i + 1 < t.used ? (float)(0.5 * ((double)t.lv[i] + (double)t.lv[i + 1])) : kInf;
}

Tab make_tab(int k, const std::vector<double>& levels, const std::vector<double>& thresholds) {
  Tab t;
  t.lv.assign(k, 0.f);
  t.th.assign(k - 1, kInf);
  t.used = std::max<int>(1, (int)levels.size());
  for (int i = 0; i < k; ++i) t.lv[i] = levels.empty() ? 0.f : (float)levels[std::min<size_t>(i, levels.size() - 1)];
  if (!thresholds.empty()) {
    t.solver_th = true;
    for (int i = 0; i + 1 < t.used; ++i) t.th[i] = (float)thresholds[i];
  } else {
    midpoints(t);
  }
  return t;
}

// Weighted distortion of one block (x, w: B values) with scale s and table t: sum w (x - fl32(s*T[q]))^2,
// q = assign(x * fl32(1/s)). Optionally the least-squares sums (sum w x T, sum w T^2), the Lloyd sums in the
// normalized domain (sum s^2 w, sum s^2 w u per level), and the codes. Work in tiles of 64: the codes first
// (for K <= 32 by counting the thresholds below u, which vectorizes), then the sums in four interleaved
// accumulators (a fixed order: the result does not depend on the thread count).
template <bool kLS, bool kLloyd, bool kCodes>
double eval_block(const float* x, const float* w, int B, float s, const TView& t, double* sxt, double* stt,
                  double* LW, double* LU, uint8_t* codes) {
  if (s == 0) {
    double d = 0;
    const int q0 = assign(0.f, t);
    for (int i = 0; i < B; ++i) {
      d += (double)w[i] * (double)x[i] * (double)x[i];
      if (kCodes) codes[i] = (uint8_t)q0;
    }
    if (kLS) { *sxt = 0; *stt = 0; }
    return d;
  }
  if (!std::isfinite(s)) return std::numeric_limits<double>::infinity();
  constexpr int kT = 64;
  const float inv = 1.0f / s;
  const double s2 = (double)s * (double)s;
  double d0 = 0, d1 = 0, d2 = 0, d3 = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  alignas(16) float ub[kT];
  alignas(16) int32_t qb[kT];
  for (int i0 = 0; i0 < B; i0 += kT) {
    const int n = std::min(kT, B - i0);
    const float* xi = x + i0;
    const float* wi = w + i0;
    for (int i = 0; i < n; ++i) ub[i] = xi[i] * inv;
    if (t.k == 2) {
      for (int i = 0; i < n; ++i) qb[i] = ub[i] > t.th[0] ? 1 : 0;
    } else if (t.k <= 32) {
      const float th0 = t.th[0];
      for (int i = 0; i < n; ++i) qb[i] = ub[i] > th0 ? 1 : 0;
      for (int j = 1; j + 1 < t.k; ++j) {
        const float th = t.th[j];
        for (int i = 0; i < n; ++i) qb[i] += ub[i] > th ? 1 : 0;
      }
    } else {
      for (int i = 0; i < n; ++i) qb[i] = assign(ub[i], t);
    }
    auto acc = [&](int i, double& d, double& a, double& c) {
      const int q = qb[i];
      const float T = t.lv[q];
      const float r = s * T;
      const double e = (double)xi[i] - (double)r;
      d += (double)wi[i] * e * e;
      if (kLS) {
        a += (double)wi[i] * (double)xi[i] * (double)T;
        c += (double)wi[i] * (double)T * (double)T;
      }
      if (kLloyd) {
        const double ww = s2 * (double)wi[i];
        LW[q] += ww;
        LU[q] += ww * (double)ub[i];
      }
      if (kCodes) codes[i0 + i] = (uint8_t)q;
    };
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      acc(i, d0, a0, c0);
      acc(i + 1, d1, a1, c1);
      acc(i + 2, d2, a2, c2);
      acc(i + 3, d3, a3, c3);
    }
    for (; i < n; ++i) acc(i, d0, a0, c0);
  }
  if (kLS) { *sxt = (a0 + a1) + (a2 + a3); *stt = (c0 + c1) + (c2 + c3); }
  return (d0 + d1) + (d2 + d3);
}

inline double eval_d(const float* x, const float* w, int B, float s, const TView& t) {
  return eval_block<false, false, false>(x, w, B, s, t, nullptr, nullptr, nullptr, nullptr, nullptr);
}

// The signed largest-magnitude value (the first one when tied).
inline float signed_max(const float* x, size_t n) {
  float m = 0, a = 0;
  for (size_t i = 0; i < n; ++i) {
    float v = std::fabs(x[i]);
    if (v > a) { a = v; m = x[i]; }
  }
  return m;
}

class BlockQuantizer {
 public:
  BlockQuantizer(const BlockTensorIn& in, const BlockParams& p, const Context& ctx)
      : in_(in), p_(p), ctx_(ctx) {
    L_ = block_layout(in.numel, in.cols, p);
    B_ = (int)p.block_size;
    K_ = 1 << p.bits;
    nb_ = L_.blocks;
    bpr_ = in.cols / p.block_size;
    dq_ = p.dq_bits > 0;
    bps_ = dq_ ? p.super_block / p.block_size : 1;
    nsb_ = L_.super_blocks;
    half_ = dq_ ? 1 << (p.dq_bits - 1) : 0;
    ntab_ = L_.tables;
    learned_ = p.fixed_table.empty();
    if (learned_) {
      std::string name = p.solver == "hessian-kmeans" ? std::string("kmeans-optimal") : p.solver;
      solver_ = find_solver(name);
      WP_THROW_IF_NOT(solver_, Argument, "unknown table solver '" + p.solver + "' (known: " + solver_names() + ", hessian-kmeans)");
    } else {
      WP_THROW_IF_NOT((int)p.fixed_table.size() == K_, Argument,
                      "the fixed table must have 2^bits = " + std::to_string(K_) + " levels");
      for (size_t i = 0; i < p.fixed_table.size(); ++i) {
        WP_THROW_IF_NOT(std::isfinite(p.fixed_table[i]), Argument, "the fixed table must be finite");
        WP_THROW_IF_NOT(i == 0 || p.fixed_table[i] > p.fixed_table[i - 1], Argument, "the fixed table must be strictly ascending");
      }
    }
    inner_.threads = 1;
    inner_.cancel = ctx.cancel;
  }

  void run(const BlockOut& out, BlockStats* stats) {
    WP_THROW_IF_NOT(out.codes_bytes >= L_.codes_bytes, Argument, "codes buffer is too small (" + std::to_string(out.codes_bytes) + " < " + std::to_string(L_.codes_bytes) + " bytes)");
    WP_THROW_IF_NOT(out.scales_bytes >= L_.scales_bytes, Argument, "scales buffer is too small (" + std::to_string(out.scales_bytes) + " < " + std::to_string(L_.scales_bytes) + " bytes)");
    WP_THROW_IF_NOT(out.table_bytes >= L_.table_bytes, Argument, "table buffer is too small (" + std::to_string(out.table_bytes) + " < " + std::to_string(L_.table_bytes) + " bytes)");
    BlockStats st;
    st.n = in_.numel;
    st.blocks = nb_;
    st.tables = ntab_;
    st.bits = L_.bits;
    if (in_.numel > 0) {
      check_input();
      init();
      st.history.push_back(total());
      st.history_step.push_back('i');
      const bool scale_steps = p_.scale == BlockScale::Optimal;
      for (int r = 0; r < p_.rounds; ++r) {
        if (!scale_steps && !learned_) break;  // nothing can change
        const double before = st.history.back();
        if (scale_steps) {
          scale_step(r == 0);
          st.history.push_back(total());
          st.history_step.push_back('s');
        }
        if (learned_) {
          table_step_all(false);
          st.history.push_back(total());
          st.history_step.push_back('t');
        }
        st.rounds = r + 1;
        const double after = st.history.back();
        if (!(before > 0) || (before - after) < p_.tol * before) break;
        if (ctx_.progress && r + 1 < p_.rounds) ctx_.progress(r + 1, p_.rounds + 1);
      }
      finish(out, st);
      if (ctx_.progress) ctx_.progress(p_.rounds + 1, p_.rounds + 1);  // rounds (converged early or not), then the output
    } else {
      if (out.codes_bytes) std::memset(out.codes, 0, out.codes_bytes);
      if (out.scales_bytes) std::memset(out.scales, 0, out.scales_bytes);
      if (out.table_bytes) std::memset(out.table, 0, out.table_bytes);
    }
    if (stats) *stats = std::move(st);
  }

 private:
  const BlockTensorIn& in_;
  const BlockParams& p_;
  const Context& ctx_;
  Context inner_;
  BlockLayout L_;
  int B_ = 32, K_ = 16, half_ = 0;
  uint64_t nb_ = 0, bpr_ = 0, bps_ = 1, nsb_ = 0, ntab_ = 1;
  bool dq_ = false, learned_ = true;
  const SolverRow* solver_ = nullptr;
  float unit_ = 1.f;             // learned tables: a power of two; the initial table spans about [-unit, unit]
  std::vector<float> scale_;     // s_b as decoded
  std::vector<float> sup_;       // D_j
  std::vector<int16_t> m_;       // m_b = c_b - 2^(q-1)
  std::vector<double> bd_;       // current weighted distortion of each block
  std::vector<Tab> tabs_;

  uint64_t group_of(uint64_t b) const { return p_.table == BlockTable::Tensor ? 0 : b / bpr_; }
  std::pair<uint64_t, uint64_t> group_range(uint64_t g) const {
    if (p_.table == BlockTable::Tensor) return {0, nb_};
    return {g * bpr_, (g + 1) * bpr_};
  }

  // Block data, loaded into thread-local buffers: x and the weights (1 without importance).
  struct Buf {
    std::vector<float> x, w;
  };
  static Buf& buf() {
    thread_local Buf b;
    return b;
  }
  void load(uint64_t b0, uint64_t nblocks, Buf& bf) const {
    const size_t n = (size_t)nblocks * B_;
    if (bf.x.size() < n) { bf.x.resize(n); bf.w.resize(n); }
    load_f32(in_.data, in_.dtype, (size_t)b0 * B_, n, bf.x.data());
    if (in_.importance) std::memcpy(bf.w.data(), in_.importance + (size_t)b0 * B_, n * 4);
    else std::fill(bf.w.begin(), bf.w.begin() + n, 1.f);
  }

  void check_input() {
    const uint64_t rows = L_.rows;
    parallel_for(ctx_, rows, [&](size_t r) {
      size_t b = r * in_.cols, e = b + in_.cols;
      size_t bad = first_non_finite(in_.data, in_.dtype, b, e);
      if (bad < e) throw Error(Code::NonFinite, "NaN or Inf at element " + std::to_string(bad));
      if (in_.importance)
        for (size_t i = b; i < e; ++i)
          if (!(in_.importance[i] >= 0) || !std::isfinite(in_.importance[i]))
            throw Error(Code::NonFinite, "importance at element " + std::to_string(i) + " must be finite and non-negative");
    });
  }

  float round_super(double v) const {
    return p_.super_dtype == Dtype::F16 ? f16r((float)v) : (float)v;
  }
  int16_t clamp_m(double v) const {
    double r = std::nearbyint(v);
    if (!(r >= -half_)) r = -half_;  // also NaN
    if (r > half_ - 1) r = half_ - 1;
    return (int16_t)r;
  }

  // ----- initial state -----
  void init() {
    scale_.assign(nb_, 0.f);
    bd_.assign(nb_, 0.0);
    if (dq_) { sup_.assign(nsb_, 0.f); m_.assign(nb_, 0); }
    // Learned tables: scales in units of a power of two that puts the largest block scale near 2^14 (F16 range).
    double amax = 0;
    if (learned_) {
      std::vector<double> cm((nb_ + kChunkBlocks - 1) / kChunkBlocks, 0.0);
      each_chunk([&](size_t c, uint64_t b0, uint64_t n, Buf& bf) {
        double m = 0;
        for (size_t i = 0; i < n * B_; ++i) m = std::max(m, (double)std::fabs(bf.x[i]));
        cm[c] = m;
      });
      for (double v : cm) amax = std::max(amax, v);
      int e = 0;
      if (amax > 0) { std::frexp(amax, &e); unit_ = (float)std::ldexp(1.0, e - 14); }
    }
    // The largest-magnitude level of a fixed table.
    float text = 0;
    if (!learned_) {
      for (float v : p_.fixed_table) if (std::fabs(v) > std::fabs(text)) text = v;
      WP_THROW_IF_NOT(text != 0, Argument, "the fixed table is all zeros");
      tabs_.assign(ntab_, make_tab(K_, std::vector<double>(p_.fixed_table.begin(), p_.fixed_table.end()), {}));
    }
    // Absmax scales: map each block's signed largest-magnitude weight onto +unit (learned) or onto the fixed
    // table's largest-magnitude level.
    std::vector<float> sstar(nb_);
    each_chunk([&](size_t c, uint64_t b0, uint64_t n, Buf& bf) {
      for (uint64_t j = 0; j < n; ++j) {
        float xe = signed_max(bf.x.data() + j * B_, B_);
        float s = learned_ ? xe / unit_ : xe / text;
        sstar[b0 + j] = s;
      }
    });
    if (!dq_) {
      for (uint64_t b = 0; b < nb_; ++b) {
        float s = f16r(sstar[b]);
        WP_THROW_IF_NOT(std::isfinite(s), Range, "block " + std::to_string(b) + ": the scale overflows F16 (weights too large for this table)");
        // A non-zero block whose scale is below F16's normal range would be stored with few bits or as 0.
        // (Learned tables only: a fixed table's scales are an external format's own, e.g. llama.cpp's Q4_0.)
        WP_THROW_IF_NOT(!learned_ || sstar[b] == 0 || std::fabs(sstar[b]) >= kF16MinNormal, Range,
                        "block " + std::to_string(b) + ": its weights are " + num_str(std::fabs(sstar[b]) / 16384.0) +
                            " of the tensor's largest, below what an F16 block scale holds (2^-28); double-quantized scales (--double-quant) hold it");
        scale_[b] = s;
      }
    } else {
      parallel_for(ctx_, nsb_, [&](size_t j) {
        uint64_t b0 = j * bps_, b1 = std::min(nb_, b0 + bps_);
        float se = signed_max(sstar.data() + b0, b1 - b0);
        float D = se == 0 ? 0.f : round_super(-(double)se / half_);
        if (!std::isfinite(D)) throw Error(Code::Range, "super-block " + std::to_string(j) + ": the super-scale overflows " + dtype_name(p_.super_dtype));
        // A non-zero super-block whose super-scale is below F16's normal range (a "dead" row beside ordinary ones)
        // would be stored with few bits or as 0: E_RANGE, which the block codec answers with F32 super-scales.
        if (learned_ && se != 0 && p_.super_dtype == Dtype::F16 && std::fabs((double)se / half_) < kF16MinNormal)
          throw Error(Code::Range, "super-block " + std::to_string(j) + ": its weights are " + num_str(std::fabs((double)se) / 16384.0) +
                                       " of the tensor's largest, below what an F16 super-scale holds");
        sup_[j] = D;
        for (uint64_t b = b0; b < b1; ++b) {
          m_[b] = D == 0 ? 0 : clamp_m((double)sstar[b] / D);
          scale_[b] = D * (float)m_[b];
        }
      });
    }
    if (learned_) {
      tabs_.resize(ntab_);
      table_step_all(true);
    } else {
      block_distortions();
    }
  }

  // Runs f(c, b0, n, bf) for every chunk c of kChunkBlocks blocks (b0 its first block, n its count) in parallel,
  // with the chunk's values and importance loaded into the thread's buffer.
  template <typename F>
  void each_chunk(F&& f) {
    parallel_for(ctx_, (nb_ + kChunkBlocks - 1) / kChunkBlocks, [&](size_t c) {
      Buf& bf = buf();
      const uint64_t b0 = c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, nb_ - b0);
      load(b0, n, bf);
      f(c, b0, n, bf);
    });
  }

  void block_distortions() {
    each_chunk([&](size_t c, uint64_t b0, uint64_t n, Buf& bf) {
      for (uint64_t j = 0; j < n; ++j) {
        uint64_t b = b0 + j;
        bd_[b] = eval_d(bf.x.data() + j * B_, bf.w.data() + j * B_, B_, scale_[b], view(tabs_[group_of(b)]));
      }
    });
  }

  // ----- sums with a fixed order: blocks -> units (super-blocks with double quantization) -> groups -> total.
  // Every step compares sums formed the same way, and rounding is monotone, so an accepted step cannot raise
  // the total.
  double range_total(uint64_t b0, uint64_t b1, const double* d /* indexed from b0 */) const {
    if (!dq_) {
      double t = 0;
      for (uint64_t b = b0; b < b1; ++b) t += d[b - b0];
      return t;
    }
    double t = 0;
    for (uint64_t u0 = b0; u0 < b1;) {
      uint64_t u1 = std::min(b1, (u0 / bps_ + 1) * bps_);
      double u = 0;
      for (uint64_t b = u0; b < u1; ++b) u += d[b - b0];
      t += u;
      u0 = u1;
    }
    return t;
  }
  double total() const {
    double t = 0;
    for (uint64_t g = 0; g < ntab_; ++g) {
      auto r = group_range(g);
      t += range_total(r.first, r.second, bd_.data() + r.first);
    }
    return t;
  }

  // ----- scale step -----
  // The best scale of one block for table t, starting from (cur_s, cur_d): candidates are the absmax-based
  // scales for both signs times a grid of factors, each followed by two least-squares refinements for the
  // induced assignment; all F16-rounded.
  float search_scale(const float* x, const float* w, const Tab& tab, float cur_s, double& cur_d, bool full) const {
    const float xe = signed_max(x, B_);
    if (xe == 0) return cur_s;
    const TView t = view(tab);
    float best_s = cur_s;
    double best_d = cur_d;
    auto consider = [&](float s, double d) {
      if (d < best_d) { best_d = d; best_s = s; }
    };
    // From a start scale: its distortion, then least-squares refinements for the induced assignments.
    auto descend = [&](float s, bool eval_start) {
      double a = 0, c = 0;
      if (eval_start) consider(s, eval_block<true, false, false>(x, w, B_, s, t, &a, &c, nullptr, nullptr, nullptr));
      else eval_block<true, false, false>(x, w, B_, s, t, &a, &c, nullptr, nullptr, nullptr);
      for (int it = 0; it < p_.ls_iters && c > 0; ++it) {
        float s1 = f16r((float)(a / c));
        if (s1 == s || !std::isfinite(s1) || s1 == 0) break;
        s = s1;
        consider(s, eval_block<true, false, false>(x, w, B_, s, t, &a, &c, nullptr, nullptr, nullptr));
      }
    };
    if (cur_s != 0 && std::isfinite(cur_s)) descend(cur_s, false);
    float hi = -kInf, lo = kInf;
    for (int i = 0; i < tab.used; ++i) { hi = std::max(hi, tab.lv[i]); lo = std::min(lo, tab.lv[i]); }
    const int steps = full ? std::max(1, p_.scale_steps) : std::max(1, p_.scale_steps_later);
    for (int sign = 0; sign < 2; ++sign) {
      float ext = sign == 0 ? hi : lo;
      if (sign == 0 ? !(ext > 0) : !(ext < 0)) continue;
      const double base = (double)xe / (double)ext;
      for (int j = 0; j < steps; ++j) {
        double f = steps == 1 ? 1.0 : 1.0 - p_.scale_span + 2.0 * p_.scale_span * j / (steps - 1);
        float s = f16r((float)(base * f));
        if (!std::isfinite(s) || s == 0) continue;
        descend(s, true);
      }
    }
    cur_d = best_d;
    return best_s;
  }

  void scale_step(bool full) {
    if (!dq_) {
      each_chunk([&](size_t c, uint64_t b0, uint64_t n, Buf& bf) {
        for (uint64_t j = 0; j < n; ++j) {
          uint64_t b = b0 + j;
          double d = bd_[b];
          float s = search_scale(bf.x.data() + j * B_, bf.w.data() + j * B_, tabs_[group_of(b)], scale_[b], d, full);
          if (d < bd_[b]) { scale_[b] = s; bd_[b] = d; }
        }
      });
      return;
    }
    // Double quantization: per block the best F16 scale s*, then per super-block the super-scale D (absmax-based
    // for both signs times a few factors) with each block's code m among round(s*/D) and its two neighbours.
    // The current (D, m) stays a candidate: the super-block's distortion cannot rise.
    parallel_for(ctx_, nsb_, [&](size_t j) {
      Buf& bf = buf();
      const uint64_t b0 = j * bps_, b1 = std::min(nb_, b0 + bps_), n = b1 - b0;
      load(b0, n, bf);
      thread_local std::vector<float> sstar;
      thread_local std::vector<double> dcur, dbest, dtry;
      thread_local std::vector<int16_t> mbest, mtry;
      sstar.resize(n); dcur.resize(n); dbest.resize(n); dtry.resize(n); mbest.resize(n); mtry.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        double d = bd_[b0 + i];
        dcur[i] = d;
        sstar[i] = search_scale(bf.x.data() + i * B_, bf.w.data() + i * B_, tabs_[group_of(b0 + i)], scale_[b0 + i], d, full);
      }
      double cur_total = range_total(b0, b1, dcur.data());
      double best_total = cur_total;
      float bestD = sup_[j];
      bool changed = false;
      const float se = signed_max(sstar.data(), n);
      if (se == 0) return;
      const int nf = std::max(1, p_.dq_steps);
      for (int sign = 0; sign < 2; ++sign) {
        const double base = sign == 0 ? -(double)se / half_ : (double)se / (half_ - 1);
        if (half_ - 1 == 0 && sign == 1) continue;
        for (int fi = 0; fi < nf; ++fi) {
          const float D = round_super(base * (nf == 1 ? 1.0 : 1.0 - 0.08 + 0.16 * fi / (nf - 1)));
          if (!std::isfinite(D) || D == 0) continue;
          for (uint64_t i = 0; i < n; ++i) {
            const float* x = bf.x.data() + i * B_;
            const float* w = bf.w.data() + i * B_;
            const TView t = view(tabs_[group_of(b0 + i)]);
            // The two codes around s*/D.
            const double r = (double)sstar[i] / D;
            int16_t mlo = clamp_m(std::floor(r)), mhi = clamp_m(std::ceil(r));
            double bd = eval_d(x, w, B_, D * (float)mlo, t);
            int16_t bm = mlo;
            if (mhi != mlo) {
              double d = eval_d(x, w, B_, D * (float)mhi, t);
              if (d < bd) { bd = d; bm = mhi; }
            }
            dtry[i] = bd;
            mtry[i] = bm;
          }
          double tot = range_total(b0, b1, dtry.data());
          if (tot < best_total) {
            best_total = tot;
            bestD = D;
            mbest = mtry;
            dbest = dtry;
            changed = true;
          }
        }
      }
      if (changed) {
        sup_[j] = bestD;
        for (uint64_t i = 0; i < n; ++i) {
          m_[b0 + i] = mbest[i];
          scale_[b0 + i] = bestD * (float)mbest[i];
          bd_[b0 + i] = dbest[i];
        }
      }
    });
  }

  // ----- table step -----
  // Per-block distortion (into d, indexed from b0) and, optionally, Lloyd sums of blocks [b0, b1) under table
  // t, in chunks of kChunkBlocks merged in order.
  void range_pass(uint64_t b0, uint64_t b1, const Tab& tab, double* d, std::vector<double>* LW,
                  std::vector<double>* LU, const Context& ctx) const {
    const uint64_t nch = (b1 - b0 + kChunkBlocks - 1) / kChunkBlocks;
    std::vector<double> cw, cu;
    if (LW) { cw.assign(nch * K_, 0.0); cu.assign(nch * K_, 0.0); }
    const TView t = view(tab);
    parallel_for(ctx, nch, [&](size_t c) {
      Buf& bf = buf();
      uint64_t c0 = b0 + c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, b1 - c0);
      load(c0, n, bf);
      for (uint64_t j = 0; j < n; ++j) {
        const float* x = bf.x.data() + j * B_;
        const float* w = bf.w.data() + j * B_;
        double v;
        if (LW) v = eval_block<false, true, false>(x, w, B_, scale_[c0 + j], t, nullptr, nullptr, cw.data() + c * K_, cu.data() + c * K_, nullptr);
        else v = eval_d(x, w, B_, scale_[c0 + j], t);
        d[c0 + j - b0] = v;
      }
    });
    if (LW && LU) {
      LW->assign(K_, 0.0);
      LU->assign(K_, 0.0);
      for (uint64_t c = 0; c < nch; ++c)
        for (int q = 0; q < K_; ++q) { (*LW)[q] += cw[c * K_ + q]; (*LU)[q] += cu[c * K_ + q]; }
    }
  }

  // One Lloyd update of the levels from the sums (cells fixed); empty cells keep their level.
  Tab lloyd_update(const Tab& t, const std::vector<double>& LW, const std::vector<double>& LU) const {
    Tab n = t;
    for (int q = 0; q < t.used; ++q)
      if (LW[q] > 0) n.lv[q] = (float)(LU[q] / LW[q]);
    if (!t.solver_th) {
      std::sort(n.lv.begin(), n.lv.begin() + n.used);
      for (int q = n.used; q < K_; ++q) n.lv[q] = n.lv[n.used - 1];
      midpoints(n);
    } else {
      for (int q = n.used; q < K_; ++q) n.lv[q] = n.lv[n.used - 1];
    }
    return n;
  }

  // The normalized values of blocks [b0, b1) with their weights, as WeightedPoints: exact (sorted, merged)
  // when few, else a histogram of hist_bins bins over [-max|u|, max|u|] carrying each bin's weight and
  // weighted sum (so each bin's point is its exact weighted mean; the DP over the bins is exact for
  // partitions that do not split a bin).
  // Calls f(u, w) for every value of blocks [c0, c0 + n) (loaded into bf), in order: u = x / s_b normalized by
  // its block's scale, w = s_b^2 x importance (1 with `unit`). Blocks whose scale is 0 hold no information.
  template <typename F>
  void each_value(uint64_t c0, uint64_t n, const Buf& bf, bool unit, F&& f) const {
    for (uint64_t j = 0; j < n; ++j) {
      const float s = scale_[c0 + j];
      if (s == 0) continue;
      const float inv = 1.0f / s;
      const double s2 = (double)s * s;
      for (int i = 0; i < B_; ++i) f((double)(bf.x[j * B_ + i] * inv), s2 * (unit ? 1.0f : bf.w[j * B_ + i]));
    }
  }

  void range_points(uint64_t b0, uint64_t b1, const Context& ctx, WeightedPoints& pts, bool unit = false) const {
    pts.clear();
    const uint64_t nvals = (b1 - b0) * B_;
    const uint64_t nch = (b1 - b0 + kChunkBlocks - 1) / kChunkBlocks;
    if (nvals <= std::max<uint64_t>(kExactMax, (uint64_t)p_.hist_bins)) {
      std::vector<std::pair<double, double>> v;
      v.reserve(nvals);
      Buf& bf = buf();
      for (uint64_t c = 0; c < nch; ++c) {
        uint64_t c0 = b0 + c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, b1 - c0);
        load(c0, n, bf);
        each_value(c0, n, bf, unit, [&](double u, double w) { if (w > 0) v.emplace_back(u, w); });
      }
      std::sort(v.begin(), v.end());
      for (auto& e : v) {
        if (!pts.x.empty() && pts.x.back() == e.first) pts.w.back() += e.second;
        else { pts.x.push_back(e.first); pts.w.push_back(e.second); }
      }
      return;
    }
    // Histogram: the range, then partial histograms over a fixed number of slabs, merged in order.
    std::vector<double> cmax(nch, 0.0);
    parallel_for(ctx, nch, [&](size_t c) {
      Buf& bf = buf();
      uint64_t c0 = b0 + c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, b1 - c0);
      load(c0, n, bf);
      double m = 0;
      each_value(c0, n, bf, unit, [&](double u, double w) { if (w > 0) m = std::max(m, std::fabs(u)); });
      cmax[c] = m;
    });
    double U = 0;
    for (double v : cmax) U = std::max(U, v);
    if (!(U > 0) || !std::isfinite(U)) {
      // Everything maps to 0 (or no weight at all).
      double W = 0;
      std::vector<double> cw(nch, 0.0);
      parallel_for(ctx, nch, [&](size_t c) {
        Buf& bf = buf();
        uint64_t c0 = b0 + c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, b1 - c0);
        load(c0, n, bf);
        double s = 0;
        each_value(c0, n, bf, unit, [&](double, double w) { s += w; });
        cw[c] = s;
      });
      for (double v : cw) W += v;
      if (W > 0) { pts.x.push_back(0.0); pts.w.push_back(W); }
      return;
    }
    const int nbins = std::max(2, p_.hist_bins);
    const uint64_t nsl = std::min<uint64_t>(kHistSlabs, nch);
    std::vector<double> hw(nsl * nbins, 0.0), hu(nsl * nbins, 0.0);
    const double scale = nbins / (2 * U);
    parallel_for(ctx, nsl, [&](size_t sl) {
      Buf& bf = buf();
      double* W = hw.data() + sl * nbins;
      double* S = hu.data() + sl * nbins;
      uint64_t cb = sl * nch / nsl, ce = (sl + 1) * nch / nsl;
      for (uint64_t c = cb; c < ce; ++c) {
        ctx.check_cancel();
        uint64_t c0 = b0 + c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, b1 - c0);
        load(c0, n, bf);
        each_value(c0, n, bf, unit, [&](double u, double w) {
          if (!(w > 0)) return;
          long k = (long)std::floor((u + U) * scale);
          k = std::min<long>(std::max<long>(k, 0), nbins - 1);
          W[k] += w;
          S[k] += w * u;
        });
      }
    });
    for (int k = 0; k < nbins; ++k) {
      double W = 0, S = 0;
      for (uint64_t sl = 0; sl < nsl; ++sl) { W += hw[sl * nbins + k]; S += hu[sl * nbins + k]; }
      if (!(W > 0)) continue;
      double m = S / W;
      if (!pts.x.empty() && m <= pts.x.back()) {  // bin means ascend; merge if rounding made two equal
        pts.w.back() += W;
        continue;
      }
      pts.x.push_back(m);
      pts.w.push_back(W);
    }
  }

  Tab solve(const WeightedPoints& pts, uint64_t g) const {
    SolverParams sp = p_.solver_params;
    sp.k = K_;
    Quantizer q = solve_one(*solver_, pts, sp, g);
    return make_tab(K_, q.levels, q.thresholds);
  }

  // Re-solve group g's table for the current scales (solver + exact Lloyd steps), and one exact Lloyd step
  // from the current table; keep whichever has the lowest exact distortion, the current table included.
  void table_step(uint64_t g, bool initial, const Context& ctx) {
    auto [b0, b1] = group_range(g);
    const uint64_t n = b1 - b0;
    WeightedPoints pts;
    range_points(b0, b1, ctx, pts);
    // A table whose importance is zero everywhere carries no preference: weigh its values equally.
    if (pts.size() == 0 && in_.importance) range_points(b0, b1, ctx, pts, true);
    Tab A = solve(pts, g);
    pts = WeightedPoints{};
    std::vector<double> dA(n), LW, LU;
    for (int it = 0;; ++it) {
      const bool more = it < p_.lloyd_steps;
      range_pass(b0, b1, A, dA.data(), more ? &LW : nullptr, more ? &LU : nullptr, ctx);
      if (!more) break;
      Tab A2 = lloyd_update(A, LW, LU);
      if (A2.lv == A.lv) break;
      A = std::move(A2);
    }
    double tA = range_total(b0, b1, dA.data());
    if (initial) {
      tabs_[g] = std::move(A);
      std::copy(dA.begin(), dA.end(), bd_.begin() + b0);
      return;
    }
    const double tcur = range_total(b0, b1, bd_.data() + b0);
    std::vector<double> dB(n);
    range_pass(b0, b1, tabs_[g], dB.data(), &LW, &LU, ctx);
    Tab Bt = lloyd_update(tabs_[g], LW, LU);
    range_pass(b0, b1, Bt, dB.data(), nullptr, nullptr, ctx);
    double tB = range_total(b0, b1, dB.data());
    if (tA < tcur && tA <= tB) {
      tabs_[g] = std::move(A);
      std::copy(dA.begin(), dA.end(), bd_.begin() + b0);
    } else if (tB < tcur) {
      tabs_[g] = std::move(Bt);
      std::copy(dB.begin(), dB.end(), bd_.begin() + b0);
    }
  }

  void table_step_all(bool initial) {
    if (p_.table == BlockTable::Tensor) {
      table_step(0, initial, ctx_);
    } else {
      parallel_for(ctx_, ntab_, [&](size_t g) { table_step(g, initial, inner_); });
    }
  }

  // ----- output -----
  void finish(const BlockOut& out, BlockStats& st) {
    const int pb = p_.pack_bits ? p_.pack_bits : p_.bits;
    const uint64_t nch = (nb_ + kChunkBlocks - 1) / kChunkBlocks;
    std::vector<ErrorSums> c_err(nch);
    std::vector<double> c_wd(nch);
    std::vector<uint64_t> hist(nch * K_, 0);
    each_chunk([&](size_t c, uint64_t b0, uint64_t n, Buf& bf) {
      thread_local std::vector<uint8_t> codes;
      codes.resize(n * B_);
      ErrorSums err;
      double wd = 0;
      uint64_t* h = hist.data() + c * K_;
      for (uint64_t j = 0; j < n; ++j) {
        const uint64_t b = b0 + j;
        const Tab& tab = tabs_[group_of(b)];
        const float* x = bf.x.data() + j * B_;
        uint8_t* q = codes.data() + j * B_;
        wd += eval_block<false, false, true>(x, bf.w.data() + j * B_, B_, scale_[b], view(tab), nullptr, nullptr, nullptr, nullptr, q);
        const float s = scale_[b];
        for (int i = 0; i < B_; ++i) {
          const double xi = in_.dtype == Dtype::F64 ? ((const double*)in_.data)[b * B_ + i] : (double)x[i];
          const float r = s * tab.lv[q[i]];
          err.add(xi, (double)r);
          ++h[q[i]];
        }
      }
      const uint64_t e0 = b0 * B_;
      pack_bits(codes.data(), n * B_, pb, out.codes + (e0 / 8) * pb);
      c_err[c] = err; c_wd[c] = wd;
    });
    const size_t used_bytes = (size_t)((in_.numel * pb + 7) / 8);
    if (out.codes_bytes > used_bytes) std::memset(out.codes + used_bytes, 0, out.codes_bytes - used_bytes);
    // Scales.
    std::memset(out.scales, 0, out.scales_bytes);
    if (!dq_) {
      uint16_t* o = (uint16_t*)out.scales;
      for (uint64_t b = 0; b < nb_; ++b) {
        uint16_t h = f32_to_f16(scale_[b]);
        std::memcpy(o + b, &h, 2);
      }
    } else {
      for (uint64_t j = 0; j < nsb_; ++j) {
        if (p_.super_dtype == Dtype::F16) { uint16_t h = f32_to_f16(sup_[j]); std::memcpy(out.scales + j * 2, &h, 2); }
        else std::memcpy(out.scales + j * 4, &sup_[j], 4);
      }
      std::vector<uint8_t> c(nb_);
      for (uint64_t b = 0; b < nb_; ++b) c[b] = (uint8_t)(m_[b] + half_);
      pack_bits(c.data(), nb_, p_.dq_bits, out.scales + L_.super_bytes);
    }
    // Tables.
    std::memset(out.table, 0, out.table_bytes);
    double used = 0;
    for (uint64_t g = 0; g < ntab_; ++g) {
      std::memcpy(out.table + g * K_ * 4, tabs_[g].lv.data(), (size_t)K_ * 4);
      used += tabs_[g].used;
    }
    st.levels_used = ntab_ ? used / ntab_ : 0;
    std::vector<uint64_t> H(K_, 0);
    ErrorSums total;
    for (uint64_t c = 0; c < nch; ++c) {
      total.merge(c_err[c]);
      st.weighted_distortion += c_wd[c];
      for (int q = 0; q < K_; ++q) H[q] += hist[c * K_ + q];
    }
    st.sse = total.sse;
    st.signal = total.signal;
    st.max_abs_err = total.max_abs;
    st.code_entropy = histogram_entropy(H.data(), K_);
  }
};

}  // namespace

BlockLayout block_layout(uint64_t numel, uint64_t cols, const BlockParams& p) {
  WP_THROW_IF_NOT(p.bits >= 1 && p.bits <= 8, Argument, "bits must be an integer from 1 to 8, got " + std::to_string(p.bits));
  WP_THROW_IF_NOT(p.block_size >= 1 && p.block_size <= 65536, Argument, "block size must be from 1 to 65536, got " + std::to_string(p.block_size));
  WP_THROW_IF_NOT(cols >= 1, Argument, "row length must be at least 1");
  WP_THROW_IF_NOT(numel % cols == 0, Argument,
                  "numel " + std::to_string(numel) + " is not a multiple of the row length " + std::to_string(cols));
  WP_THROW_IF_NOT(cols % p.block_size == 0, Argument,
                  "row length " + std::to_string(cols) + " is not a multiple of the block size " + std::to_string(p.block_size) +
                      ": block-scaled formats need whole blocks per row (use another granularity for this tensor)");
  const int pb = p.pack_bits ? p.pack_bits : p.bits;
  WP_THROW_IF_NOT(pb == p.bits || pb == 8, Argument, "pack_bits must be bits or 8");
  WP_THROW_IF_NOT(p.rounds >= 0, Argument, "rounds must be non-negative");
  WP_THROW_IF_NOT(p.hist_bins >= 2 && p.hist_bins <= (1 << 24), Argument, "histogram bins must be from 2 to 2^24");
  WP_THROW_IF_NOT(p.scale_steps >= 1 && p.scale_steps <= 1000, Argument, "scale steps must be from 1 to 1000");
  WP_THROW_IF_NOT(p.scale_span >= 0 && p.scale_span < 1, Argument, "scale span must be in [0, 1)");
  BlockLayout L;
  L.rows = numel / cols;
  L.blocks = numel / p.block_size;
  L.tables = p.table == BlockTable::Tensor ? 1 : L.rows;
  const uint64_t K = 1ull << p.bits;
  L.codes_bytes = packed_bytes((size_t)numel, pb);
  L.table_bytes = L.tables * K * 4;
  double scale_bits;
  if (p.dq_bits) {
    WP_THROW_IF_NOT(p.dq_bits >= 2 && p.dq_bits <= 8, Argument, "double-quantized scales take 2 to 8 bits, got " + std::to_string(p.dq_bits));
    WP_THROW_IF_NOT(p.super_block >= p.block_size && p.super_block % p.block_size == 0, Argument,
                    "super-block size " + std::to_string(p.super_block) + " must be a multiple of the block size " + std::to_string(p.block_size));
    WP_THROW_IF_NOT(p.super_dtype == Dtype::F16 || p.super_dtype == Dtype::F32, Argument, "super-scales must be F16 or F32");
    WP_THROW_IF_NOT(p.table == BlockTable::Tensor || cols % p.super_block == 0, Argument,
                    "with a table per row, the row length " + std::to_string(cols) + " must be a multiple of the super-block size " + std::to_string(p.super_block));
    const uint64_t bps = p.super_block / p.block_size;
    L.super_blocks = (L.blocks + bps - 1) / bps;
    const uint64_t dsz = dtype_size(p.super_dtype);
    L.super_bytes = align8(L.super_blocks * dsz);
    L.scales_bytes = L.super_bytes + packed_bytes((size_t)L.blocks, p.dq_bits);
    scale_bits = (double)L.super_blocks * dsz * 8 + (double)L.blocks * p.dq_bits;
  } else {
    L.scales_bytes = align8(L.blocks * 2);
    scale_bits = (double)L.blocks * 16;
  }
  L.bits = (double)numel * p.bits + scale_bits + (double)L.table_bytes * 8;
  return L;
}

void block_quantize(const BlockTensorIn& in, const BlockParams& p, const BlockOut& out, const Context& ctx,
                    BlockStats* stats) {
  WP_THROW_IF_NOT(dtype_is_quantizable(in.dtype), Dtype,
                  std::string("cannot quantize dtype ") + dtype_name(in.dtype) + " (F64, F32, F16 or BF16 only)");
  BlockQuantizer q(in, p, ctx);
  q.run(out, stats);
}

uint64_t block_dequantize(const BlockSource& src, const BlockParams& p, Dtype out_dtype, void* out, const Context& ctx) {
  WP_THROW_IF_NOT(out_dtype == Dtype::F32 || out_dtype == Dtype::F16 || out_dtype == Dtype::BF16 || out_dtype == Dtype::F64,
                  Argument, "decode dtype must be F32, F16, BF16 or F64");
  const BlockLayout L = block_layout(src.numel, src.cols, p);
  WP_THROW_IF_NOT(src.codes_bytes >= (src.numel * (uint64_t)(p.pack_bits ? p.pack_bits : p.bits) + 7) / 8, Format,
                  "codes hold " + std::to_string(src.codes_bytes) + " bytes, too few for " + std::to_string(src.numel) + " codes");
  const uint64_t scales_need = p.dq_bits ? L.super_bytes + (L.blocks * p.dq_bits + 7) / 8 : L.blocks * 2;
  WP_THROW_IF_NOT(src.scales_bytes >= scales_need, Format,
                  "scales hold " + std::to_string(src.scales_bytes) + " bytes, too few (" + std::to_string(scales_need) + " needed)");
  WP_THROW_IF_NOT(src.table_bytes >= L.table_bytes, Format,
                  "table holds " + std::to_string(src.table_bytes) + " bytes, expected " + std::to_string(L.table_bytes));
  if (src.numel == 0) return 0;
  const int K = 1 << p.bits;
  const int pb = p.pack_bits ? p.pack_bits : p.bits;
  const uint64_t B = p.block_size, nb = L.blocks, bpr = src.cols / B;
  // Scales as decoded.
  std::vector<float> s(nb);
  if (!p.dq_bits) {
    for (uint64_t b = 0; b < nb; ++b) { uint16_t h; std::memcpy(&h, src.scales + b * 2, 2); s[b] = f16_to_f32(h); }
  } else {
    const uint64_t bps = p.super_block / B;
    const int half = 1 << (p.dq_bits - 1);
    std::vector<uint8_t> c(nb);
    unpack_bits(src.scales + L.super_bytes, nb, p.dq_bits, c.data());
    for (uint64_t b = 0; b < nb; ++b) {
      uint64_t j = b / bps;
      float D;
      if (p.super_dtype == Dtype::F16) { uint16_t h; std::memcpy(&h, src.scales + j * 2, 2); D = f16_to_f32(h); }
      else std::memcpy(&D, src.scales + j * 4, 4);
      s[b] = D * (float)((int)c[b] - half);
    }
  }
  const uint64_t nch = (nb + kChunkBlocks - 1) / kChunkBlocks;
  const size_t osz = dtype_size(out_dtype);
  std::atomic<uint64_t> saturated{0};
  parallel_for(ctx, nch, [&](size_t c) {
    thread_local std::vector<uint8_t> codes;
    thread_local std::vector<float> vals;
    uint64_t b0 = c * kChunkBlocks, n = std::min<uint64_t>(kChunkBlocks, nb - b0);
    const uint64_t e0 = b0 * B, ne = n * B;
    codes.resize(ne);
    vals.resize(ne);
    unpack_bits(src.codes + (e0 / 8) * pb, ne, pb, codes.data());
    for (uint64_t j = 0; j < n; ++j) {
      const uint64_t b = b0 + j;
      const uint64_t g = p.table == BlockTable::Tensor ? 0 : b / bpr;
      const float* T = (const float*)(src.table + g * K * 4);  // F32 little-endian
      float lv[256];
      std::memcpy(lv, T, (size_t)K * 4);
      for (uint64_t i = 0; i < B; ++i) {
        uint8_t q = codes[j * B + i];
        if (q >= K) throw Error(Code::Format, "code " + std::to_string(q) + " out of range for " + std::to_string(p.bits) + " bits");
        vals[j * B + i] = s[b] * lv[q];
      }
    }
    if (out_dtype == Dtype::F64) {
      double* o = (double*)out + e0;
      for (uint64_t i = 0; i < ne; ++i) o[i] = vals[i];
    } else {
      saturated.fetch_add(store_from_float(vals.data(), ne, out_dtype, (char*)out + e0 * osz, src.overflow), std::memory_order_relaxed);
    }
  });
  return saturated.load();
}

}  // namespace wp
