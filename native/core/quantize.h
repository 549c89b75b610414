// quantize_tensor: the scalar pipeline for one tensor. Slice -> summarize -> solve (a registry solver) ->
// codebook rows; then assign + pack + metrics in chunk-parallel passes. dequantize_tensor is its inverse.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "context.h"
#include "dtype.h"
#include "backend.h"
#include "solvers/registry.h"

namespace wp {

enum class Granularity { Tensor, Row, Group };

struct QuantizeParams {
  std::string method = "kmeans-optimal";
  int bits = 4;                         // 1..8; k = 2^bits levels per slice
  Granularity granularity = Granularity::Tensor;
  uint64_t slice_size = 0;              // elements per slice: numel (tensor), row length (row), G (group)
  Dtype codebook_dtype = Dtype::F32;    // F32 or F16
  SolverParams solver;                  // k is set from bits; seed is mixed with the slice index
  int pack_bits = 0;                    // bits per stored code: 0 = bits (packed); 8 = one byte per code, the
                                        // layout entropy coders take
  const Quantizer* fixed = nullptr;     // when set: every slice uses this quantizer (no solve), e.g. one
                                        // codebook for the whole network
  const std::vector<Quantizer>* fixed_slices = nullptr;  // when set: slice s uses entry s (no solve), e.g. a fit
                                        // that needed more than the slice's values (qn with calibration)
  const Backend16* backend16 = nullptr; // the histogram and assign passes of large 16-bit slices (null: CPU)
};

struct TensorIn {
  const void* data = nullptr;
  Dtype dtype = Dtype::F32;
  uint64_t numel = 0;
  const float* importance = nullptr;    // optional, numel entries
  const float* assign_from = nullptr;   // optional, numel F32 values: codes are assigned from these (e.g. learned
                                        // latent weights), the error is still measured against data
};

struct QuantizeOut {
  uint8_t* codes = nullptr;             // at least ceil(numel*pack_bits/8) bytes; written in full (padding zeroed)
  size_t codes_bytes = 0;
  void* codebook = nullptr;             // slices * k entries of codebook_dtype
};

struct QuantizeStats {
  uint64_t n = 0;
  uint64_t slices = 0;
  double sse = 0;          // sum of squared errors
  double signal = 0;       // sum of squares of the input
  double max_abs_err = 0;
  double levels_used = 0;  // mean number of distinct levels per slice
  const char* backend = "cpu";  // where the bandwidth-bound passes ran
};

uint64_t slice_count(uint64_t numel, uint64_t slice_size);
void quantize_tensor(const TensorIn& in, const QuantizeParams& params, const QuantizeOut& out, const Context& ctx,
                     QuantizeStats* stats);

struct DequantizeIn {
  const uint8_t* codes = nullptr;
  const void* codebook = nullptr;
  Dtype codebook_dtype = Dtype::F32;
  uint64_t numel = 0;
  int bits = 4;
  uint64_t slice_size = 0;
  int pack_bits = 0;  // bits per stored code (0 = bits)
  Overflow overflow = Overflow::Error;  // a value beyond out_dtype's range: Error(Range), or saturate and count
};

// Writes numel values of out_dtype (F32, F16, BF16 or F64) to out. Returns how many values were saturated
// (in.overflow = Saturate); with Overflow::Error a value beyond out_dtype's range throws Error(Range).
uint64_t dequantize_tensor(const DequantizeIn& in, Dtype out_dtype, void* out, const Context& ctx);

}  // namespace wp
