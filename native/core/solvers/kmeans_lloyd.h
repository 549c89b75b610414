// Lloyd's weighted 1-D k-means with k-means++ seeding. On sorted points a cluster is a contiguous range, so
// an iteration costs O(k log m) with prefix sums, and we can afford to run it to convergence.
#pragma once
#include <cstdint>
#include <vector>

#include "../summarize.h"

namespace wp {

struct LloydParams {
  int k = 16;
  uint64_t seed = 0;       // k-means++ seed; the same seed gives the same result
  int max_iter = 1000;     // Lloyd iterations at most
  const std::vector<double>* init = nullptr;  // start from these levels instead of k-means++
};

struct LloydStats {
  int iterations = 0;
  double sse = 0;
};

std::vector<double> kmeans_lloyd(const WeightedPoints& p, const LloydParams& params, LloydStats* stats = nullptr);

// A small deterministic generator (splitmix64), shared by every seeded solver.
struct SplitMix64 {
  uint64_t s;
  explicit SplitMix64(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

}  // namespace wp
