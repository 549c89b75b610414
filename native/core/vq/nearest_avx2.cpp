// The k-means distance kernel with AVX2 + FMA (nearest_kernel.h), used when the CPU has them (kmeans.cpp). Built
// with -mavx2 -mfma (CMakeLists.txt); Eigen's namespace is renamed here so that its template instances compiled for
// AVX2 never stand in for the baseline ones.
#if defined(__x86_64__) && defined(WP_AVX2_KERNELS)
#define Eigen EigenAvx2
#include "nearest_kernel.h"

namespace wp::vq {
void nearest_block_avx2(const float* x, const float* w, size_t m, int d, const float* c, const float* half_norm, const float* half_sq, int k,
                        uint32_t* idx, float* scratch) {
  nearest_block_impl(x, w, m, d, c, half_norm, half_sq, k, idx, scratch);
}
}  // namespace wp::vq
#endif
