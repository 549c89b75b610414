// Exact, globally optimal weighted 1-D k-means by dynamic programming over the sorted distinct values.
// Optimal clusters are contiguous in sorted order, so D[c][j] = min_i D[c-1][i] + cost(i, j). The cost is
// Monge, so each layer's argmin is monotone in j and a divide-and-conquer pass finds every row minimum in
// O(m log m): O(k*m*log m) time and O(k*m) ints for the back-pointers. (SMAWK gives O(k*m) in theory; on
// the sizes that matter here it measured 2.4x slower than this, its branches being data-dependent.)
#pragma once
#include <vector>

#include "../summarize.h"

namespace wp {

struct KmeansDpStats {
  double sse = 0;  // optimal weighted SSE
};

// Returns the levels (weighted means of the optimal clusters), ascending; fewer than k when the points
// have fewer than k distinct values.
// threads > 1 splits each layer's work across threads (for one large problem; the result does not depend on it).
// bound = false scans every split (the Knuth-Yao bound off: a check for tests; same result, slower).
std::vector<double> kmeans_dp(const WeightedPoints& p, int k, KmeansDpStats* stats = nullptr, int threads = 1, bool bound = true);

}  // namespace wp
