// Prefix sums over WeightedPoints, centred on the weighted mean for accuracy: the cost of any contiguous
// segment (its weighted sum of squared deviations from its weighted mean) in O(1).
//
// Numerical range: a cost is a difference of prefix sums, so its absolute error is about 1e-16 times the whole
// problem's sum of squares about its mean. On a slice whose values span many decades (a row of 1e-33 weights
// beside a 1.8e-12 outlier) the costs of segments of tiny values are below that and read as 0: the partitions
// among them are then only optimal up to that absolute tolerance. A segment's mean is never taken from prefix
// sums (its error would be as large, and could fall outside the segment, leaving levels out of order): mean()
// sums the segment directly, O(j - i), and is clamped into the segment's range.
#pragma once
#include <algorithm>
#include <vector>

#include "../summarize.h"

namespace wp {

// Weighted mean of points [i, j) (j > i), summed directly and clamped into [x[i], x[j-1]]: adjacent
// segments' means are strictly ordered whatever the rounding. O(j - i).
double segment_mean(const WeightedPoints& p, size_t i, size_t j);

struct PrefixSums {
  std::vector<double> W, S, Q;  // prefix of w, w*(x-mu), w*(x-mu)^2; size m+1
  double mu = 0;
  const WeightedPoints* pts;    // the points (they outlive the sums)

  explicit PrefixSums(const WeightedPoints& p);
  size_t m() const { return W.size() - 1; }
  // Weighted SSE of points [i, j) about their weighted mean (0 for an empty or one-point segment).
  double cost(size_t i, size_t j) const {
    double w = W[j] - W[i];
    if (w <= 0) return 0;
    double s = S[j] - S[i];
    double c = (Q[j] - Q[i]) - s * s / w;
    return c > 0 ? c : 0;
  }
  // Weighted mean of points [i, j) (requires j > i), by segment_mean: O(j - i).
  double mean(size_t i, size_t j) const { return segment_mean(*pts, i, j); }
  // The same from the prefix sums in O(1), for the inner loops of iterative solvers (their final levels come
  // from mean()): clamped into [x[i], x[j-1]], so still ordered across segments, but only as accurate as cost().
  double fast_mean(size_t i, size_t j) const {
    double m = mu + (S[j] - S[i]) / (W[j] - W[i]);
    return std::min(std::max(m, pts->x[i]), pts->x[j - 1]);
  }
};

// Weighted SSE of representing each point by its nearest level (levels ascending).
double weighted_sse(const WeightedPoints& p, const std::vector<double>& levels);

}  // namespace wp
