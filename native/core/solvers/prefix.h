// Prefix sums over WeightedPoints, centred on the weighted mean for accuracy: the cost of any contiguous
// segment (its weighted sum of squared deviations from its weighted mean) in O(1).
#pragma once
#include <vector>

#include "../summarize.h"

namespace wp {

struct PrefixSums {
  std::vector<double> W, S, Q;  // prefix of w, w*(x-mu), w*(x-mu)^2; size m+1
  double mu = 0;

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
  // Weighted mean of points [i, j) (requires positive weight).
  double mean(size_t i, size_t j) const { return mu + (S[j] - S[i]) / (W[j] - W[i]); }
};

// Weighted SSE of representing each point by its nearest level (levels ascending).
double weighted_sse(const WeightedPoints& p, const std::vector<double>& levels);

}  // namespace wp
