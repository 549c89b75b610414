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
// refit of (zero, step) cost O(k log m) instead of a pass over the points.
struct GridCells {
  std::vector<size_t> bound;  // cell t = points [bound[t], bound[t+1])
};

GridCells grid_cells(const WeightedPoints& p, int k, double zero, double step) {
  GridCells g;
  g.bound.resize((size_t)k + 1);
  g.bound[0] = 0;
  g.bound[(size_t)k] = p.size();
  for (int t = 1; t < k; ++t) {
    double thr = zero + step * (t - 0.5);
    g.bound[(size_t)t] = (size_t)(std::upper_bound(p.x.begin(), p.x.end(), thr) - p.x.begin());
  }
  return g;
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

std::vector<double> uniform_levels(const WeightedPoints& p, const UniformParams& params) {
  const int k = params.k;
  WP_THROW_IF_NOT(k >= 1, Argument, "k must be at least 1");
  if (p.size() == 0) return std::vector<double>((size_t)k, 0.0);
  double lo = p.x.front(), hi = p.x.back();
  double zero, step;
  if (params.symmetric) {
    double a = std::max(std::fabs(lo), std::fabs(hi));
    step = k > 1 ? 2 * a / (k - 1) : 0;
    zero = k > 1 ? -a : 0;
  } else {
    step = k > 1 ? (hi - lo) / (k - 1) : 0;
    zero = lo;
  }
  if (k == 1 || step <= 0) {  // one level: the weighted mean is optimal (or 0 when symmetric)
    PrefixSums ps(p);
    double v = params.symmetric ? 0.0 : ps.mean(0, p.size());
    return std::vector<double>((size_t)k, v);
  }
  if (params.step == UniformStep::MinMax) return grid(zero, step, k);
  // MSE-optimal: try clipping ranges from the full range down to a fifth of it in nine steps, refine each by
  // alternating assignment and least-squares refits, keep the lowest weighted SSE.
  PrefixSums ps(p);
  double best_sse = grid_sse(ps, grid_cells(p, k, zero, step), zero, step);
  double best_zero = zero, best_step = step;
  const double centre = params.symmetric ? 0.0 : 0.5 * (lo + hi);
  for (int t = 0; t <= 8; ++t) {
    double st = step * (1.0 - 0.1 * t);
    double z = centre - st * 0.5 * (k - 1);
    for (int r = 0; r < 8; ++r) {
      GridCells g = grid_cells(p, k, z, st);
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
