// The error measures every codec reports, in one place: the sum of squared errors, the signal (sum of squares of
// the input; SQNR = 10 log10(signal / sse)) and the largest absolute error. Codecs accumulate one ErrorSums per
// chunk and merge them in chunk order, so the totals do not depend on the thread count. The rate of a set of
// codes (its Shannon entropy, bits per code) is histogram_entropy (entropy/entropy.h).
#pragma once
#include <algorithm>
#include <cmath>

namespace wp {

struct ErrorSums {
  double sse = 0;
  double signal = 0;
  double max_abs = 0;

  // One element x represented by xhat.
  void add(double x, double xhat) {
    const double e = x - xhat;
    sse += e * e;
    signal += x * x;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  // `count` elements of value x, each represented by xhat (a histogram bin).
  void add(double x, double xhat, double count) {
    const double e = x - xhat;
    sse += count * e * e;
    signal += count * x * x;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  void merge(const ErrorSums& o) {
    sse += o.sse;
    signal += o.signal;
    max_abs = std::max(max_abs, o.max_abs);
  }
};

}  // namespace wp
