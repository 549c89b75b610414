// Integer group quantization: INTb codes with a scale (and a zero point) per group (docs/FORMAT.md, "Integer
// group tensors"; the layout compressed-tensors' pack-quantized format and GPTQ/AWQ-style W4A16 kernels read).
//
// A tensor of `numel` elements, row-major with rows of `cols` elements, is cut into groups of G consecutive
// weights along each row (the last group of a row is shorter when G does not divide cols; G = cols is one
// scale per row, "channel"). Group g = (row r, j) has a scale s_g and every weight a code u in [0, 2^b):
//     x̂ = fl32(s_g × (u − z_g))
// with z_g = 2^(b−1) (symmetric: the levels are s × {−2^(b−1) … 2^(b−1) − 1}) or a per-group zero point
// z_g in [0, 2^b − 1] (asymmetric). The signed code of compressed-tensors is q = u − 2^(b−1), its zero point
// zp = z − 2^(b−1); its dequantization (q − zp) × s is the same value.
//
// Encoding (round to nearest, RTN, as GPTQ's baseline and llm-compressor's observers): per group the range
// [min(x, 0), max(x, 0)] gives the min-max scale (symmetric: the signed largest magnitude onto the end level of
// its sign; asymmetric: (max − min) / (2^b − 1), z = round(−min / s)); the MSE search also tries the range shrunk
// by factors 1 − k / (2·grid), k = 1 … grid, and least-squares refits of s (and z) to the codes, keeping the
// candidate with the least importance-weighted squared error. Scales are rounded to their stored dtype before
// the codes are assigned, so the error measured is the error stored.
//
// Buffers (little-endian, each padded with zeros to a multiple of 8 bytes):
//   codes:  numel codes of pack_bits bits (bits, or 8 = one byte per code), LSB first (pack.h)
//   scales: groups values of scale_dtype (F16, BF16 or F32), [rows, ceil(cols / G)] row-major
//   zeros:  asymmetric only: groups zero points of `bits` bits, LSB first, same order
// Plain C++ (no N-API).
#pragma once
#include <cstdint>
#include <vector>

#include "context.h"
#include "dtype.h"

namespace wp {

struct IntParams {
  int bits = 4;                   // 2..8
  uint64_t group_size = 0;        // G, weights per group along a row; no default (the int codec's options hold
                                  // it, lib/codecs/int.ts); 0 is refused
  bool symmetric = true;
  bool mse = true;                // MSE-optimal scale search; false: min-max
  int grid = 32;                  // MSE: shrink factors tried per group
  int refits = 2;                 // MSE: least-squares refits of the scale (and zero point) after the grid
  Dtype scale_dtype = Dtype::F16; // F16, BF16 or F32
  bool f16_precision = false;     // F32 scales rounded to F16's 11 significant bits (the fallback of F16 scales
                                  // out of F16's range: the same values F16 would hold, scaled by a power of two)
  int pack_bits = 0;              // bits per stored code: 0 = bits (packed); 8 = one byte per code
};

struct IntLayout {
  uint64_t rows = 0, cols = 0, groups_per_row = 0, groups = 0;
  uint64_t codes_bytes = 0;   // packed_bytes(numel, pack_bits or bits)
  uint64_t scales_bytes = 0;  // groups × scale size, padded to 8
  uint64_t zeros_bytes = 0;   // asymmetric: packed_bytes(groups, bits); symmetric: 0
  double bits = 0;            // exact bits stored, padding excluded
};

// Checks the parameters against the shape (Code::Argument) and returns the sizes.
IntLayout int_layout(uint64_t numel, uint64_t cols, const IntParams& p);

struct IntTensorIn {
  const void* data = nullptr;
  Dtype dtype = Dtype::F32;
  uint64_t numel = 0;
  uint64_t cols = 0;                  // row length (numel % cols == 0)
  const float* importance = nullptr;  // optional, numel finite non-negative weights
};

struct IntOut {
  uint8_t* codes = nullptr;
  size_t codes_bytes = 0;
  uint8_t* scales = nullptr;
  size_t scales_bytes = 0;
  uint8_t* zeros = nullptr;           // asymmetric only
  size_t zeros_bytes = 0;
};

struct IntStats {
  uint64_t n = 0, groups = 0;
  double sse = 0, signal = 0, max_abs_err = 0;
  double weighted_distortion = 0;     // sum importance × err² (= sse without importance)
  uint64_t zero_groups = 0;           // groups whose range is {0}: scale 0, every weight decodes to 0
  double bits = 0;                    // layout.bits
};

// Quantizes the tensor. Throws Code::NonFinite for NaN/Inf weights or importance, Code::Range when a scale does
// not fit scale_dtype's normal range (F16: [2^-14, 65504]; the caller may retry with F32 scales).
void int_quantize(const IntTensorIn& in, const IntParams& p, const IntOut& out, const Context& ctx, IntStats* stats);

struct IntSource {
  const uint8_t* codes = nullptr;
  size_t codes_bytes = 0;
  const uint8_t* scales = nullptr;
  size_t scales_bytes = 0;
  const uint8_t* zeros = nullptr;
  size_t zeros_bytes = 0;
  uint64_t numel = 0;
  uint64_t cols = 0;
  Overflow overflow = Overflow::Error;
};

// Writes numel values of out_dtype: fl32(s × (u − z)), rounded to out_dtype (nearest even). Returns the count of
// saturated values (Overflow::Saturate); Overflow::Error throws Code::Range on overflow. A non-finite stored
// scale is a Code::Format error.
uint64_t int_dequantize(const IntSource& src, const IntParams& p, Dtype out_dtype, void* out, const Context& ctx);

}  // namespace wp
