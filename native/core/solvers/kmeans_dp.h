// Exact, globally optimal weighted 1-D k-means by dynamic programming over the sorted distinct values.
// Optimal clusters are contiguous in sorted order, so D[c][j] = min_i D[c-1][i] + cost(i, j). The cost is
// Monge, so every layer's row minima are found by SMAWK in O(m): O(k*m) time and O(k*m) ints for the
// back-pointers (Wu 1991; Gronlund et al. 2017).
#pragma once
#include <vector>

#include "../summarize.h"

namespace wp {

struct KmeansDpStats {
  double sse = 0;  // optimal weighted SSE
};

// Returns the levels (weighted means of the optimal clusters), ascending; fewer than k when the points
// have fewer than k distinct values.
std::vector<double> kmeans_dp(const WeightedPoints& p, int k, KmeansDpStats* stats = nullptr);

}  // namespace wp
