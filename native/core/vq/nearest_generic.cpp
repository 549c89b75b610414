// The k-means distance kernel for the baseline ISA (nearest_kernel.h).
#include "nearest_kernel.h"

namespace wp::vq {
void nearest_block_generic(const float* x, const float* w, size_t m, int d, const float* c, const float* half_norm, const float* half_sq, int k,
                           uint32_t* idx, float* scratch) {
  nearest_block_impl(x, w, m, d, c, half_norm, half_sq, k, idx, scratch);
}
}  // namespace wp::vq
