#include "kmeans_dp.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "../error.h"
#include "../context.h"
#include "prefix.h"

namespace wp {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Segment costs in the form the inner loop wants: prefix sums interleaved (one cache line per lookup) and,
// when the weights are counts, a reciprocal table instead of a division.
// (An AVX2 version of the scan was tried: on this machine the division-free scalar loop was as fast.)
struct Costs {
  struct P { double w, s, q; };
  std::vector<P> p;
  std::vector<double> inv;  // inv[d] = 1/d when every prefix weight is an integer <= kMaxTable; else empty
  static constexpr double kMaxTable = 1 << 16;  // 512 KiB: stays in cache; past it a division is cheaper than a miss

  explicit Costs(const PrefixSums& ps) {
    const size_t m = ps.m();
    p.resize(m + 1);
    bool integral = ps.W[m] <= kMaxTable;
    for (size_t i = 0; i <= m; ++i) {
      p[i] = {ps.W[i], ps.S[i], ps.Q[i]};
      if (integral && ps.W[i] != std::floor(ps.W[i])) integral = false;
    }
    // Weights are counts unless importance is given: then segment weights W[j] - W[i] are small integers and
    // a reciprocal table turns the division into a multiplication.
    if (integral) {
      size_t top = (size_t)ps.W[m];
      inv.resize(top + 1);
      inv[0] = 0;
      for (size_t d = 1; d <= top; ++d) inv[d] = 1.0 / (double)d;
    }
  }
};

// Row minima of the matrix f(j, i) = prev[i] + cost(i, j), i < j, whose argmin is monotone in j (the cost is
// Monge): divide and conquer on the rows. O(m log m) evaluations per layer; measured 2.4x faster here than
// SMAWK's O(m), whose data-dependent branches cost more than the log factor.
class LayerSolver {
 public:
  LayerSolver(const Costs& c, int threads) : c_(c), threads_(threads) {}

  // Rows j in [jlo, jhi]; split points i in [ilo, ihi]. With several threads, the top levels of the recursion
  // run first and leave independent subproblems for the threads (each row's minimum does not depend on who
  // computes it, so the result is the same for any thread count).
  void run(const double* prev, double* cur, int* arg, const int* argprev, int jlo, int jhi, int ilo, int ihi) {
    prev_ = prev;
    cur_ = cur;
    arg_ = arg;
    argprev_ = argprev;
    if (threads_ <= 1 || jhi - jlo < (1 << 14)) {
      if (c_.inv.empty()) solve<false>(jlo, jhi, ilo, ihi);
      else solve<true>(jlo, jhi, ilo, ihi);
      return;
    }
    std::vector<Task> tasks;
    split(jlo, jhi, ilo, ihi, 5, tasks);
    Context ctx;
    ctx.threads = threads_;
    parallel_for(ctx, tasks.size(), [&](size_t t) {
      const Task& k = tasks[t];
      if (c_.inv.empty()) solve<false>(k.jlo, k.jhi, k.ilo, k.ihi);
      else solve<true>(k.jlo, k.jhi, k.ilo, k.ihi);
    });
  }

 private:
  const Costs& c_;
  int threads_;
  const double* prev_ = nullptr;
  double* cur_ = nullptr;
  int* arg_ = nullptr;
  const int* argprev_ = nullptr;  // the previous layer's argmins: a lower bound on this layer's (monotone in c)

  struct Task { int jlo, jhi, ilo, ihi; };

  // One row's minimum over [ilo, min(ihi, j-1)].
  template <bool kUnit>
  int row_min(int jm, int ilo, int ihi) {
    const Costs::P* p = c_.p.data();
    const double* inv = c_.inv.data();
    const int hi = std::min(ihi, jm - 1);
    if (argprev_ && argprev_[jm] > ilo) ilo = std::min(argprev_[jm], hi);
    const Costs::P pj = p[jm];
    double best = kInf;
    int bi = ilo;
    for (int i = ilo; i <= hi; ++i) {
      const Costs::P& pi = p[i];
      double ds = pj.s - pi.s;
      double c = kUnit ? (pj.q - pi.q) - ds * ds * inv[(size_t)(pj.w - pi.w)] : (pj.q - pi.q) - ds * ds / (pj.w - pi.w);
      double v = prev_[i] + (c > 0 ? c : 0);
      if (v < best) { best = v; bi = i; }
    }
    cur_[jm] = best;
    arg_[jm] = bi;
    return bi;
  }

  // The top `depth` levels of the recursion, serially; what is left below them becomes tasks.
  void split(int jlo, int jhi, int ilo, int ihi, int depth, std::vector<Task>& tasks) {
    if (jlo > jhi) return;
    if (depth == 0) { tasks.push_back({jlo, jhi, ilo, ihi}); return; }
    const int jm = jlo + ((jhi - jlo) >> 1);
    int bi = c_.inv.empty() ? row_min<false>(jm, ilo, ihi) : row_min<true>(jm, ilo, ihi);
    split(jlo, jm - 1, ilo, bi, depth - 1, tasks);
    split(jm + 1, jhi, bi, ihi, depth - 1, tasks);
  }

  template <bool kUnit>
  void solve(int jlo, int jhi, int ilo, int ihi) {
    while (jlo <= jhi) {
      const int jm = jlo + ((jhi - jlo) >> 1);
      const int bi = row_min<kUnit>(jm, ilo, ihi);
      // Recurse into the smaller half, loop on the larger: the stack stays O(log m) deep.
      if (jm - jlo < jhi - jm) {
        solve<kUnit>(jlo, jm - 1, ilo, bi);
        jlo = jm + 1;
        ilo = bi;
      } else {
        solve<kUnit>(jm + 1, jhi, bi, ihi);
        jhi = jm - 1;
        ihi = bi;
      }
    }
  }
};

}  // namespace

std::vector<double> kmeans_dp(const WeightedPoints& p, int k, KmeansDpStats* stats, int threads, bool bound) {
  WP_THROW_IF_NOT(k >= 1, Argument, "k must be at least 1");
  const size_t m = p.size();
  if (m == 0) { if (stats) stats->sse = 0; return {}; }
  if ((size_t)k >= m) {
    if (stats) stats->sse = 0;
    return p.x;
  }
  PrefixSums ps(p);
  if (k == 1) {
    if (stats) stats->sse = ps.cost(0, m);
    return {ps.mean(0, m)};
  }
  // D[c][j]: best cost of splitting the first j points into c+1 clusters. Only two layers are kept; the
  // back-pointers of every layer are kept for the traceback.
  std::vector<double> prev(m + 1, kInf), cur(m + 1, kInf);
  std::vector<int> arg((size_t)k * (m + 1), 0);
  for (size_t j = 1; j <= m; ++j) prev[j] = ps.cost(0, j);
  Costs costs(ps);
  LayerSolver ls(costs, threads);
  for (int c = 1; c < k - 1; ++c) {
    // c+1 clusters over j points: j in [c+1, m-(k-1-c)], split i in [c, j-1].
    int jlo = c + 1, jhi = (int)m - (k - 1 - c);
    std::fill(cur.begin(), cur.end(), kInf);
    // Knuth-Yao style bound: with a Monge cost the leftmost optimal split of j points into c+1 clusters is no
    // earlier than into c clusters, so each scan starts there (about a fifth fewer evaluations).
    const int* argprev = bound && c > 1 ? arg.data() + (size_t)(c - 1) * (m + 1) : nullptr;
    ls.run(prev.data(), cur.data(), arg.data() + (size_t)c * (m + 1), argprev, jlo, jhi, c, jhi - 1);
    prev.swap(cur);
  }
  // Last layer: only j = m is needed.
  {
    int* a = arg.data() + (size_t)(k - 1) * (m + 1);
    double best = kInf;
    int bi = k - 1;
    for (size_t i = (size_t)k - 1; i < m; ++i) {
      double v = prev[i] + ps.cost(i, m);
      if (v < best) { best = v; bi = (int)i; }
    }
    a[m] = bi;
    if (stats) stats->sse = best;
  }
  // Traceback.
  std::vector<double> levels((size_t)k);
  size_t j = m;
  for (int c = k - 1; c >= 0; --c) {
    size_t i = c == 0 ? 0 : (size_t)arg[(size_t)c * (m + 1) + j];
    levels[(size_t)c] = ps.mean(i, j);
    j = i;
  }
  return levels;
}

}  // namespace wp
