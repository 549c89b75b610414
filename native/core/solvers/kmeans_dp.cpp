#include "kmeans_dp.h"

#include <limits>

#include "../error.h"
#include "prefix.h"

namespace wp {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Row minima of the matrix f(j, i) = prev[i] + cost(i, j) for i < j (+inf otherwise), by SMAWK.
class LayerSolver {
 public:
  LayerSolver(const PrefixSums& ps, const double* prev, double* cur, int* arg, size_t m)
      : ps_(ps), prev_(prev), cur_(cur), arg_(arg) {
    pool_.reserve(8 * (m + 2));
  }

  void run(const std::vector<int>& rows, const std::vector<int>& cols) {
    pool_.clear();
    pool_.insert(pool_.end(), rows.begin(), rows.end());
    pool_.insert(pool_.end(), cols.begin(), cols.end());
    solve(0, rows.size(), rows.size(), cols.size());
  }

 private:
  const PrefixSums& ps_;
  const double* prev_;
  double* cur_;
  int* arg_;
  std::vector<int> pool_;  // stack-allocated scratch: row and column index lists of every recursion level

  double f(int j, int i) const { return i < j ? prev_[i] + ps_.cost((size_t)i, (size_t)j) : kInf; }

  // rows at pool_[ro, ro+nr), cols at pool_[co, co+nc)
  void solve(size_t ro, size_t nr, size_t co, size_t nc) {
    if (nr == 0) return;
    const size_t mark = pool_.size();
    if (pool_.capacity() < mark + nr + nr / 2 + 1) throw Error(Code::Internal, "SMAWK scratch overflow");
    // REDUCE: keep at most nr candidate columns.
    const size_t so = pool_.size();
    pool_.resize(so + nr);
    size_t top = 0;
    for (size_t ci = 0; ci < nc; ++ci) {
      int c = pool_[co + ci];
      while (top > 0) {
        int r = pool_[ro + top - 1];
        if (f(r, pool_[so + top - 1]) <= f(r, c)) break;
        --top;
      }
      if (top < nr) pool_[so + top++] = c;
    }
    // Recurse on the odd rows.
    const size_t oo = pool_.size();
    const size_t nodd = nr / 2;
    pool_.resize(oo + nodd);
    for (size_t t = 0; t < nodd; ++t) pool_[oo + t] = pool_[ro + 2 * t + 1];
    solve(oo, nodd, so, top);
    // Fill the even rows between their odd neighbours' minima.
    size_t ci = 0;
    for (size_t r = 0; r < nr; r += 2) {
      int row = pool_[ro + r];
      int last = (r + 1 < nr) ? arg_[pool_[ro + r + 1]] : pool_[so + top - 1];
      int best_i = pool_[so + ci];
      double best = f(row, best_i);
      while (pool_[so + ci] != last) {
        ++ci;
        double v = f(row, pool_[so + ci]);
        if (v < best) { best = v; best_i = pool_[so + ci]; }
      }
      arg_[row] = best_i;
      cur_[row] = best;
    }
    pool_.resize(mark);
  }
};

}  // namespace

std::vector<double> kmeans_dp(const WeightedPoints& p, int k, KmeansDpStats* stats) {
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
  std::vector<int> rows, cols;
  for (int c = 1; c < k - 1; ++c) {
    // c+1 clusters over j points: j in [c+1, m-(k-1-c)], split i in [c, j-1].
    size_t jlo = (size_t)c + 1, jhi = m - (size_t)(k - 1 - c);
    rows.clear(); cols.clear();
    for (size_t j = jlo; j <= jhi; ++j) rows.push_back((int)j);
    for (size_t i = (size_t)c; i < jhi; ++i) cols.push_back((int)i);
    std::fill(cur.begin(), cur.end(), kInf);
    LayerSolver ls(ps, prev.data(), cur.data(), arg.data() + (size_t)c * (m + 1), m);
    ls.run(rows, cols);
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
