// summarize: a slice of a float tensor -> WeightedPoints, its distinct values sorted ascending, each with a
// weight (count, or the sum of importance). Every scalar solver works on this summary only.
#pragma once
#include <cstdint>
#include <vector>

#include "dtype.h"

namespace wp {

struct WeightedPoints {
  std::vector<double> x;  // distinct values, strictly ascending
  std::vector<double> w;  // weight of each value (> 0)
  size_t size() const { return x.size(); }
  double total_weight() const;
  void clear() { x.clear(); w.clear(); }
};

// Summarize elements [begin, end) of `data` (dtype d). `importance`, when non-null, holds one F32 weight per
// element of the same tensor (same indexing); otherwise every element weighs 1. Zero-weight values are kept
// with weight 0 dropped: a value whose total weight is 0 does not appear.
// 16-bit dtypes: an exact histogram for large slices, a radix sort of the raw codes for small ones.
// F32/F64: radix sort and run-length merge. Throws Error(NonFinite) on NaN/Inf, naming the element index.
void summarize_slice(const void* data, Dtype d, size_t begin, size_t end, const float* importance,
                     WeightedPoints& out);

// From an exact histogram of 16-bit codes (hist[raw code] = count): the points of the slice (+0 and -0 merged).
void points_from_hist16(const uint64_t* hist, Dtype d, WeightedPoints& out);
// The first raw code with a non-zero count that is NaN or Inf, or 65536.
size_t hist16_first_non_finite(const uint64_t* hist, Dtype d);
// Throws Error(NonFinite) naming the first NaN/Inf element of [begin, end).
[[noreturn]] void throw_non_finite_at(const void* data, Dtype d, size_t begin, size_t end);

// Merge `add` into `acc` (both sorted, distinct): equal values add their weights.
void merge_points(WeightedPoints& acc, const WeightedPoints& add);

// Find the first non-finite element in [begin, end); returns end if none.
size_t first_non_finite(const void* data, Dtype d, size_t begin, size_t end);

// Monotone keys: unsigned integers that sort like the floats they encode (for radix sorting).
inline uint16_t key16(uint16_t h) { return (h & 0x8000u) ? (uint16_t)~h : (uint16_t)(h | 0x8000u); }
inline uint16_t unkey16(uint16_t k) { return (k & 0x8000u) ? (uint16_t)(k & 0x7fffu) : (uint16_t)~k; }
inline uint32_t key32(uint32_t f) { return (f & 0x80000000u) ? ~f : (f | 0x80000000u); }
inline uint32_t unkey32(uint32_t k) { return (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k; }
inline uint64_t key64(uint64_t f) { return (f >> 63) ? ~f : (f | (1ull << 63)); }
inline uint64_t unkey64(uint64_t k) { return (k >> 63) ? (k & ~(1ull << 63)) : ~k; }

// LSD radix sort of unsigned keys with an optional payload permuted alongside (payload may be null).
template <typename K>
void radix_sort(std::vector<K>& keys, std::vector<float>* payload);

}  // namespace wp
