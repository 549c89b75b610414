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

// One least-squares refit of (zero, step) given the current nearest-level assignment (Lloyd's step for a
// uniform grid). With `symmetric`, zero is tied to -step*(k-1)/2 and only step is fitted.
void refit(const WeightedPoints& p, int k, bool symmetric, double& zero, double& step) {
  double sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    double q = std::round((p.x[i] - zero) / step);
    q = std::min(std::max(q, 0.0), (double)(k - 1));
    if (symmetric) q -= 0.5 * (k - 1);
    double w = p.w[i];
    sw += w; sq += w * q; sqq += w * q * q; sx += w * p.x[i]; sqx += w * q * p.x[i];
  }
  if (symmetric) {
    if (sqq > 0 && sqx > 0) { step = sqx / sqq; zero = -step * 0.5 * (k - 1); }
    return;
  }
  double det = sw * sqq - sq * sq;
  if (det <= 0) return;
  double s = (sw * sqx - sq * sx) / det;
  double z = (sx - s * sq) / sw;
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
  // MSE-optimal: try clipping ranges from the full range down to a fifth of it in nine steps, refine the best few by
  // alternating assignment and least-squares refits, keep the lowest weighted SSE.
  double best_sse = weighted_sse(p, grid(zero, step, k));
  double best_zero = zero, best_step = step;
  const double centre = params.symmetric ? 0.0 : 0.5 * (lo + hi);
  for (int t = 0; t <= 8; ++t) {
    double s = 1.0 - 0.1 * t;
    double st = step * s;
    double z = centre - st * 0.5 * (k - 1);
    for (int r = 0; r < 5; ++r) {
      double sse = weighted_sse(p, grid(z, st, k));
      if (sse < best_sse) { best_sse = sse; best_zero = z; best_step = st; }
      double z2 = z, st2 = st;
      refit(p, k, params.symmetric, z2, st2);
      if (z2 == z && st2 == st) break;
      z = z2; st = st2;
    }
  }
  return grid(best_zero, best_step, k);
}

}  // namespace wp
