// Small element kernels shared verbatim by the CPU pipeline and the CUDA kernels (one algorithm, one place):
// compiled as inline host code by g++, and as __host__ __device__ code by nvcc.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define WP_HD __host__ __device__ __forceinline__
#else
#define WP_HD inline
#endif

namespace wp {

// Codes of n <= 8 consecutive elements of 16-bit raw values through a lookup table (raw -> code), packed
// LSB first into ceil(n*bits/8) bytes at out. With n = 8 that is exactly `bits` bytes: groups of 8 elements
// start on byte boundaries, so threads never share an output byte.
WP_HD void lut_pack8(const uint16_t* raw, int n, const uint8_t* lut, int bits, uint8_t* out) {
  uint64_t acc = 0;
  for (int t = 0; t < n; ++t) acc |= (uint64_t)lut[raw[t]] << (t * bits);
  const int bytes = (n * bits + 7) / 8;
  for (int b = 0; b < bytes; ++b) out[b] = (uint8_t)(acc >> (8 * b));
}

// The code of x under k - 1 ascending decision thresholds (k a power of two; padding thresholds are +inf): the
// number of thresholds below x, i.e. level t when th[t-1] < x <= th[t]. A branch-free binary search; the one
// assign step of every codec (the scalar pipeline in double, the block format in float, on normalized values).
template <typename T>
WP_HD int assign_code(const T* th, int k, T x) {
  int q = 0;
  for (int step = k >> 1; step >= 1; step >>= 1)
    if (th[q + step - 1] < x) q += step;
  return q;
}

}  // namespace wp
