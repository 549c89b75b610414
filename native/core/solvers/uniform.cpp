#include "uniform.h"

#include <algorithm>
#include <cmath>

#include "../error.h"
#include "prefix.h"

namespace wp {

namespace {

std::vector<double> grid(double zero, double step, int k) {
  std::vector<double> l((size_t)k);
  for (int i = 0; i < k; ++i) l[(size_t)i] = zero + step * i;
  return l;
}

// A uniform grid's cells over the sorted points: cell t holds the points nearest to level zero + t*step
// (points past either end go to the end cells). With prefix sums, its weighted SSE and the least-squares
// refit of (zero, step) cost O(k) instead of a pass over the points. bound[t] is the number of points at or below
// the threshold zero + step*(t - 1/2) (std::upper_bound's answer), found by k - 1 branch-free binary searches run
// in lockstep: their steps depend only on the point count, so each round is k - 1 independent compare-and-selects
// instead of a chain of mispredicted branches. The MSE search below places up to 72 grids per slice, and on the
// slices of a few hundred points that groups of 128 give, placing them was most of the cost.
struct GridCells {
  std::vector<size_t> bound;  // cell t = points [bound[t], bound[t+1]); k + 1 entries
  std::vector<double> thr;    // scratch: the k - 1 thresholds
};

void grid_cells(const WeightedPoints& p, int k, double zero, double step, GridCells& g) {
  g.bound.assign((size_t)k + 1, 0);
  g.thr.resize((size_t)std::max(k - 1, 0));
  const size_t m = p.size();
  g.bound[(size_t)k] = m;
  if (m == 0 || k < 2) return;
  const double* x = p.x.data();
  size_t* b = g.bound.data() + 1;  // b[t - 1] = bound[t]
  double* thr = g.thr.data();
  const int nt = k - 1;
  for (int t = 0; t < nt; ++t) thr[t] = zero + step * (t + 1 - 0.5);
  // Invariant: the answer for threshold t lies in [b[t], b[t] + len], and x[b[t]] <= thr[t] unless b[t] is 0.
  size_t len = m;
  while (len > 1) {
    const size_t half = len / 2;
    for (int t = 0; t < nt; ++t) b[t] = x[b[t] + half] <= thr[t] ? b[t] + half : b[t];
    len -= half;
  }
  for (int t = 0; t < nt; ++t) b[t] += x[b[t]] <= thr[t] ? 1 : 0;
}

// Weighted SSE of the grid, from the centred prefix sums: sum w((x-mu) - d)^2 = Q - 2dS + d^2 W, d = level - mu.
double grid_sse(const PrefixSums& ps, const GridCells& g, double zero, double step) {
  double sse = 0;
  for (size_t t = 0; t + 1 < g.bound.size(); ++t) {
    size_t a = g.bound[t], b = g.bound[t + 1];
    if (b <= a) continue;
    double d = zero + step * (double)t - ps.mu;
    double W = ps.W[b] - ps.W[a], S = ps.S[b] - ps.S[a], Q = ps.Q[b] - ps.Q[a];
    sse += std::max(0.0, Q - 2 * d * S + d * d * W);
  }
  return sse;
}

// One least-squares refit of (zero, step) given the grid's assignment (Lloyd's step for a uniform grid). With
// `symmetric`, zero is tied to -step*(k-1)/2 and only step is fitted. Sums are taken about mu.
void refit(const PrefixSums& ps, const GridCells& g, int k, bool symmetric, double& zero, double& step) {
  double sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;  // x measured from mu
  for (size_t t = 0; t + 1 < g.bound.size(); ++t) {
    size_t a = g.bound[t], b = g.bound[t + 1];
    if (b <= a) continue;
    double q = symmetric ? (double)t - 0.5 * (k - 1) : (double)t;
    double W = ps.W[b] - ps.W[a], S = ps.S[b] - ps.S[a];
    sw += W; sq += W * q; sqq += W * q * q; sx += S; sqx += q * S;
  }
  if (symmetric) {
    // x = mu + xc ~ step*q  =>  step = sum w q (xc + mu) / sum w q^2
    double num = sqx + ps.mu * sq;
    if (sqq > 0 && num > 0) { step = num / sqq; zero = -step * 0.5 * (k - 1); }
    return;
  }
  double det = sw * sqq - sq * sq;
  if (det <= 0) return;
  double s = (sw * sqx - sq * sx) / det;  // slope is shift-invariant
  double z = (sx - s * sq) / sw + ps.mu;
  if (s > 0) { step = s; zero = z; }
}

}  // namespace

namespace {

void minmax_span(double lo, double hi, int k, bool symmetric, double& zero, double& step) {
  if (symmetric) {
    double a = std::max(std::fabs(lo), std::fabs(hi));
    step = k > 1 ? 2 * a / (k - 1) : 0;
    zero = k > 1 ? -a : 0;
  } else {
    step = k > 1 ? (hi - lo) / (k - 1) : 0;
    zero = lo;
  }
}

}  // namespace

bool uniform_minmax_grid(double lo, double hi, int k, bool symmetric, std::vector<double>& levels) {
  double zero, step;
  minmax_span(lo, hi, k, symmetric, zero, step);
  if (k == 1 || !(step > 0)) return false;
  levels = grid(zero, step, k);
  return true;
}

std::vector<double> uniform_levels(const WeightedPoints& p, const UniformParams& params) {
  const int k = params.k;
  WP_THROW_IF_NOT(k >= 1, Argument, "k must be at least 1");
  if (p.size() == 0) return std::vector<double>((size_t)k, 0.0);
  double lo = p.x.front(), hi = p.x.back();
  double zero, step;
  minmax_span(lo, hi, k, params.symmetric, zero, step);
  if (k == 1 || step <= 0) {  // one level: the weighted mean is optimal (or 0 when symmetric)
    PrefixSums ps(p);
    double v = params.symmetric ? 0.0 : ps.mean(0, p.size());
    return std::vector<double>((size_t)k, v);
  }
  if (params.step == UniformStep::MinMax) {
    std::vector<double> l;
    uniform_minmax_grid(lo, hi, k, params.symmetric, l);
    return l;
  }
  // MSE-optimal: try clipping ranges from the full range down to a fifth of it in nine steps, refine each by
  // alternating assignment and least-squares refits, keep the lowest weighted SSE.
  PrefixSums ps(p);
  GridCells g;
  g.bound.reserve((size_t)k + 1);
  grid_cells(p, k, zero, step, g);
  double best_sse = grid_sse(ps, g, zero, step);
  double best_zero = zero, best_step = step;
  const double centre = params.symmetric ? 0.0 : 0.5 * (lo + hi);
  for (int t = 0; t <= 8; ++t) {
    double st = step * (1.0 - 0.1 * t);
    double z = centre - st * 0.5 * (k - 1);
    for (int r = 0; r < 8; ++r) {
      grid_cells(p, k, z, st, g);
      double sse = grid_sse(ps, g, z, st);
      if (sse < best_sse) { best_sse = sse; best_zero = z; best_step = st; }
      double z2 = z, st2 = st;
      refit(ps, g, k, params.symmetric, z2, st2);
      if (z2 == z && st2 == st) break;
      z = z2; st = st2;
    }
  }
  return grid(best_zero, best_step, k);
}

}  // namespace wp
