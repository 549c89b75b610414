#include "prefix.h"

#include <algorithm>

namespace wp {

double segment_mean(const WeightedPoints& p, size_t i, size_t j) {
  double sw = 0, swx = 0;
  for (size_t t = i; t < j; ++t) {
    sw += p.w[t];
    swx += p.w[t] * p.x[t];  // terms of one sign unless the segment spans 0: no cancellation beyond the mean's own
  }
  double m = sw > 0 ? swx / sw : p.x[i];
  return std::min(std::max(m, p.x[i]), p.x[j - 1]);
}

PrefixSums::PrefixSums(const WeightedPoints& p) : pts(&p) {
  const size_t m = p.size();
  double tw = 0, tx = 0;
  for (size_t i = 0; i < m; ++i) { tw += p.w[i]; tx += p.w[i] * p.x[i]; }
  mu = tw > 0 ? tx / tw : 0;
  W.assign(m + 1, 0);
  S.assign(m + 1, 0);
  Q.assign(m + 1, 0);
  for (size_t i = 0; i < m; ++i) {
    double d = p.x[i] - mu;
    W[i + 1] = W[i] + p.w[i];
    S[i + 1] = S[i] + p.w[i] * d;
    Q[i + 1] = Q[i] + p.w[i] * d * d;
  }
}

double weighted_sse(const WeightedPoints& p, const std::vector<double>& levels) {
  double sse = 0;
  size_t c = 0;
  const size_t k = levels.size();
  for (size_t i = 0; i < p.size(); ++i) {
    double x = p.x[i];
    while (c + 1 < k && (levels[c] + levels[c + 1]) * 0.5 < x) ++c;  // points ascend, so c only moves up
    double e = x - levels[c];
    sse += p.w[i] * e * e;
  }
  return sse;
}

}  // namespace wp
