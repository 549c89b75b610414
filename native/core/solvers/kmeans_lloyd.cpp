#include "kmeans_lloyd.h"

#include <algorithm>
#include <cmath>

#include "../error.h"
#include "prefix.h"

namespace wp {

namespace {

// Weighted k-means++: first centre with probability proportional to weight, each next one proportional
// to weight x squared distance to the nearest chosen centre.
std::vector<double> seed_plus_plus(const WeightedPoints& p, int k, uint64_t seed) {
  const size_t m = p.size();
  SplitMix64 rng(seed);
  std::vector<double> d2(m, 0.0), centres;
  auto pick = [&](const std::vector<double>& mass) {
    double total = 0;
    for (size_t i = 0; i < m; ++i) total += mass[i];
    double r = rng.uniform() * total, acc = 0;
    for (size_t i = 0; i < m; ++i) {
      acc += mass[i];
      if (acc > r && mass[i] > 0) return i;
    }
    for (size_t i = m; i-- > 0;) if (mass[i] > 0) return i;
    return (size_t)0;
  };
  size_t first = pick(p.w);
  centres.push_back(p.x[first]);
  std::vector<double> mass(m);
  for (size_t i = 0; i < m; ++i) {
    double e = p.x[i] - p.x[first];
    d2[i] = e * e;
  }
  while ((int)centres.size() < k) {
    for (size_t i = 0; i < m; ++i) mass[i] = p.w[i] * d2[i];
    size_t c = pick(mass);
    centres.push_back(p.x[c]);
    for (size_t i = 0; i < m; ++i) {
      double e = p.x[i] - p.x[c];
      d2[i] = std::min(d2[i], e * e);
    }
  }
  std::sort(centres.begin(), centres.end());
  return centres;
}

}  // namespace

std::vector<double> kmeans_lloyd(const WeightedPoints& p, const LloydParams& params, LloydStats* stats) {
  WP_THROW_IF_NOT(params.k >= 1, Argument, "k must be at least 1");
  const size_t m = p.size();
  const size_t k = (size_t)params.k;
  if (m == 0) return {};
  if (k >= m) {
    if (stats) { stats->iterations = 0; stats->sse = 0; }
    return p.x;
  }
  PrefixSums ps(p);
  std::vector<double> c = params.init && !params.init->empty() ? *params.init : seed_plus_plus(p, (int)k, params.seed);
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  std::vector<size_t> bound(c.size() + 1), prev_bound;
  int it = 0;
  for (; it < params.max_iter; ++it) {
    // Assign: cluster t is the contiguous range [bound[t], bound[t+1]) of points nearest to c[t].
    const size_t kc = c.size();
    bound.assign(kc + 1, 0);
    bound[kc] = m;
    for (size_t t = 1; t < kc; ++t) {
      double mid = 0.5 * (c[t - 1] + c[t]);
      bound[t] = (size_t)(std::upper_bound(p.x.begin(), p.x.end(), mid) - p.x.begin());
    }
    if (bound == prev_bound) break;
    prev_bound = bound;
    // Update: each non-empty cluster moves to its weighted mean; empty ones are dropped, then re-seeded at
    // the point that currently costs the most.
    std::vector<double> next;
    next.reserve(kc);
    for (size_t t = 0; t < kc; ++t)
      if (bound[t + 1] > bound[t]) next.push_back(ps.fast_mean(bound[t], bound[t + 1]));
    while (next.size() < kc) {
      double worst = -1;
      size_t wi = 0, ci = 0;
      for (size_t i = 0; i < m; ++i) {
        while (ci + 1 < next.size() && 0.5 * (next[ci] + next[ci + 1]) < p.x[i]) ++ci;
        double e = p.x[i] - next[ci];
        double v = p.w[i] * e * e;
        if (v > worst) { worst = v; wi = i; }
      }
      if (worst <= 0) break;  // every point sits on a centre
      next.push_back(p.x[wi]);
      std::sort(next.begin(), next.end());
      prev_bound.clear();
    }
    c.swap(next);
  }
  // The final centres are the clusters' means summed directly (fast_mean is only as accurate as the prefix sums).
  if (!prev_bound.empty()) {
    std::vector<double> fin;
    for (size_t t = 0; t + 1 < prev_bound.size(); ++t)
      if (prev_bound[t + 1] > prev_bound[t]) fin.push_back(ps.mean(prev_bound[t], prev_bound[t + 1]));
    if (fin.size() == c.size()) c.swap(fin);
  }
  if (stats) {
    stats->iterations = it;
    stats->sse = weighted_sse(p, c);
  }
  return c;
}

}  // namespace wp
