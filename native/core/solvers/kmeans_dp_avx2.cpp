// The k-means DP's row-minimum scan (dp_scan.h) with AVX2, four candidate splits at a time. Built with -mavx2
// only (no FMA: the same roundings as the scalar loop; CMakeLists.txt) and chosen at run time.
#include "dp_scan.h"

#if defined(WP_AVX2_KERNELS)
#include <immintrin.h>

namespace wp {

namespace {

// Division only: with the reciprocal table (small integer-weighted problems, in cache) a gather measured
// slower than the scalar loop, so those stay scalar.
DpMin scan(const DpScan& a, int j, int lo, int hi) {
  if (a.inv) return dp_scan_scalar(a, j, lo, hi);
  const double inf = std::numeric_limits<double>::infinity();
  const __m256d wj = _mm256_set1_pd(a.W[j]), sj = _mm256_set1_pd(a.S[j]), qj = _mm256_set1_pd(a.Q[j]);
  const __m256d zero = _mm256_setzero_pd(), four = _mm256_set1_pd(4);
  __m256d best = _mm256_set1_pd(inf), bidx = _mm256_set1_pd(-1);
  __m256d idx = _mm256_setr_pd(lo, lo + 1, lo + 2, lo + 3);
  int i = lo;
  for (; i + 3 <= hi; i += 4) {
    const __m256d dw = _mm256_sub_pd(wj, _mm256_loadu_pd(a.W + i));
    const __m256d ds = _mm256_sub_pd(sj, _mm256_loadu_pd(a.S + i));
    const __m256d dq = _mm256_sub_pd(qj, _mm256_loadu_pd(a.Q + i));
    const __m256d t = _mm256_div_pd(_mm256_mul_pd(ds, ds), dw);
    const __m256d c = _mm256_max_pd(_mm256_sub_pd(dq, t), zero);  // c > 0 ? c : 0
    const __m256d v = _mm256_add_pd(_mm256_loadu_pd(a.prev + i), c);
    const __m256d lt = _mm256_cmp_pd(v, best, _CMP_LT_OQ);
    best = _mm256_blendv_pd(best, v, lt);
    bidx = _mm256_blendv_pd(bidx, idx, lt);
    idx = _mm256_add_pd(idx, four);
  }
  alignas(32) double bv[4], bx[4];
  _mm256_store_pd(bv, best);
  _mm256_store_pd(bx, bidx);
  // Each lane holds its first minimum; the overall first minimum is the smallest index among equal values.
  double rv = inf;
  int ri = -1;
  for (int l = 0; l < 4; ++l) {
    if (bx[l] < 0) continue;
    if (bv[l] < rv || (bv[l] == rv && (int)bx[l] < ri)) { rv = bv[l]; ri = (int)bx[l]; }
  }
  if (i <= hi) {
    DpMin t = dp_scan_scalar(a, j, i, hi);
    if (t.v < rv) { rv = t.v; ri = t.i; }
  }
  if (ri < 0) ri = lo;
  return {rv, ri};
}

}  // namespace

DpScanFn dp_scan_avx2_kernel() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok ? scan : nullptr;
}

}  // namespace wp

#else

namespace wp {
DpScanFn dp_scan_avx2_kernel() { return nullptr; }
}  // namespace wp

#endif
