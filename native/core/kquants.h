// llama.cpp's block formats for the GGUF export (lib/gguf.ts, docs/BLOCK.md "GGUF export"): the K-quants Q4_K,
// Q5_K and Q6_K (super-blocks of 256 weights) and the 32-weight formats Q8_0, Q5_0 and Q5_1 (the fallbacks of the
// K-quants for rows that are not a multiple of 256, as llama.cpp's llama_tensor_get_type chooses them).
//
// The quantizers follow ggml-quants.c's published algorithms (quantize_row_*_ref without an importance matrix,
// quantize_row_*_impl with one): per-sub-block (scale, min) searches make_qkx2_quants / make_qkx3_quants, the
// weighted symmetric search make_qx_quants, and make_qp_quants for the 6-bit sub-block scales under the F16
// super-scales. With importance, each weight's error is weighted as llama.cpp weights it: importance ×
// sqrt(σ² + x²) (Q4_K, Q5_K, Q5_0, Q5_1; σ² from the super-block or the row), importance alone (Q6_K); Q8_0
// ignores it, as llama.cpp does.
//
// Block layouts (little-endian, ggml-common.h), bytes per block:
//   Q4_K  144: d F16, dmin F16, scales[12] (8 pairs of 6-bit scale/min codes), qs[128] (4-bit codes)
//   Q5_K  176: d, dmin, scales[12], qh[32] (5th bits), qs[128]
//   Q6_K  210: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d F16
//   Q8_0   34: d F16, qs[32] int8
//   Q5_0   22: d F16, qh[4] (5th bits), qs[16]
//   Q5_1   24: d F16, m F16, qh[4], qs[16]
// Plain C++ (no N-API).
#pragma once
#include <cstddef>
#include <cstdint>

#include "context.h"
#include "dtype.h"

namespace wp {

// ggml_type ids (ggml.h) of the formats here.
enum GgmlTypeId : int { GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14 };

struct GgmlBlock {
  uint32_t weights = 0;  // weights per block
  uint32_t bytes = 0;    // bytes per block
};

// The block of a type above; Code::Argument for any other id.
GgmlBlock ggml_block(int type);

struct GgmlQuantIn {
  const void* data = nullptr;
  Dtype dtype = Dtype::F32;              // F64, F32, F16 or BF16
  uint64_t numel = 0;
  uint64_t cols = 0;                     // row length, a multiple of the type's block
  const float* importance = nullptr;     // optional: numel non-negative weights (an imatrix broadcast over rows)
};

struct GgmlQuantStats {
  double sse = 0;          // sum of squared errors of the decoded values against the input (as F32)
  double signal = 0;       // sum of squares of the input
  double max_abs_err = 0;
};

// Quantizes the tensor row by row into out (numel / block.weights blocks, out_bytes at least that many bytes),
// rows in parallel on ctx's threads. Errors: Argument (bad type or shape), NonFinite (a NaN/Inf weight or a
// negative/non-finite importance), Range (a scale beyond F16's range), Cancelled.
void ggml_quantize(int type, const GgmlQuantIn& in, uint8_t* out, size_t out_bytes, const Context& ctx, GgmlQuantStats* stats);

// Decodes numel values (a multiple of the block) of `type` from src into out, as ggml's dequantize_row_* do
// (F32 arithmetic, one rounding per operation).
void ggml_dequantize(int type, const uint8_t* src, size_t src_bytes, uint64_t numel, float* out, const Context& ctx);

}  // namespace wp
