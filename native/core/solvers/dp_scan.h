// The inner loop of the exact k-means DP (kmeans_dp.cpp): one row minimum of a layer,
//   argmin over i in [lo, hi] of prev[i] + max(0, (Q[j] - Q[i]) - (S[j] - S[i])^2 / (W[j] - W[i]))
// over prefix sums W, S, Q (prefix.h). The division is a multiplication by inv[W[j] - W[i]] when `inv` is given
// (integer weights: counts). Ties go to the smallest i. The scalar version and the AVX2 one
// (kmeans_dp_avx2.cpp, chosen at run time) do the same IEEE operations in the same order (no FMA: the library
// builds with -ffp-contract=off), so they return the same index and value bit for bit.
#pragma once
#include <limits>

namespace wp {

struct DpScan {
  const double* W;
  const double* S;
  const double* Q;
  const double* prev;  // the previous layer's costs, indexed by i
  const double* inv;   // inv[d] = 1/d for integer segment weights d, or null (divide)
};

struct DpMin {
  double v;
  int i;
};

inline DpMin dp_scan_scalar(const DpScan& a, int j, int lo, int hi) {
  const double wj = a.W[j], sj = a.S[j], qj = a.Q[j];
  double best = std::numeric_limits<double>::infinity();
  int bi = lo;
  for (int i = lo; i <= hi; ++i) {
    const double ds = sj - a.S[i];
    const double t = a.inv ? ds * ds * a.inv[(long)(wj - a.W[i])] : ds * ds / (wj - a.W[i]);
    const double c = (qj - a.Q[i]) - t;
    const double v = a.prev[i] + (c > 0 ? c : 0);
    if (v < best) { best = v; bi = i; }
  }
  return {best, bi};
}

// Null where the CPU (or the build) has no AVX2. It vectorizes the division form (inv null); with a table it
// runs the scalar loop.
using DpScanFn = DpMin (*)(const DpScan&, int, int, int);
DpScanFn dp_scan_avx2_kernel();

}  // namespace wp
