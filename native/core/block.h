// Block-scaled formats with a learned level table (docs/BLOCK.md).
//
// A tensor of `numel` elements, row-major with rows of `cols` elements, is cut into blocks of B consecutive
// weights along the row (cols % B == 0). Block b has a scale s_b and every weight a `bits`-bit code into a
// level table T of K = 2^bits F32 values, one table per tensor or per row. The decoded value is
//     x̂ = fl32(s_b × T[g][code])           (g = 0, or the row index with table = row)
// with s_b either an F16 value, or (double quantization) s_b = fl32(D_j × (c_b − 2^(q−1))) with a q-bit code
// c_b per block and one F16 (or F32) super-scale D_j per super-block of S weights (S/B consecutive blocks).
//
// The table is learned for the tensor (or row) on the normalized values u = x / s_b, weighted by
// s_b² × importance: a fine histogram (or the exact values when few) solved by a registry solver (the exact
// DP by default), then exact Lloyd steps over the raw values. With `optimal` scales the scales and the table
// are refined alternately; no step increases the weighted distortion sum importance × (x − x̂)², which is
// recorded after every half-step.
//
// Buffers (all little-endian; each padded with zeros to a multiple of 8 bytes):
//   codes:  numel codes of pack_bits bits (bits, or 8 = one byte per code), LSB first (pack.h)
//   scales: no double quantization: one F16 per block, block order.
//           double quantization: [nsb super-scales, F16 or F32] [pad to 8] [nb codes of q bits, LSB first]
//   table:  ntables × K F32 levels, ascending (ntables = 1, or rows with table = row)
// Plain C++ (no N-API).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "context.h"
#include "dtype.h"
#include "solvers/registry.h"

namespace wp {

enum class BlockScale { Absmax, Optimal };
enum class BlockTable { Tensor, Row };

struct BlockParams {
  int bits = 4;                          // K = 2^bits levels (1..8)
  uint32_t block_size = 0;               // B: weights per scale; no default (the block codec's options declare
                                         // it, lib/codecs/block.ts); 0 is refused
  BlockScale scale = BlockScale::Optimal;
  BlockTable table = BlockTable::Tensor;
  std::string solver = "kmeans-optimal";  // a registry solver for the table; "hessian-kmeans" = kmeans-optimal
  SolverParams solver_params;            // k is set from bits; seed is mixed with the table index
  int rounds = 4;                        // alternating rounds at most (0: initial solve only)
  double tol = 1e-6;                     // stop when a round lowers the distortion by less than this (relative)
  int scale_steps = 8;                   // optimal: grid points per sign in the per-block scale search (round 1)
  int scale_steps_later = 1;             // optimal: grid points per sign in later rounds (which also start
                                         // from the current scale)
  double scale_span = 0.2;               // optimal: the grid spans factors [1 - span, 1 + span] of the base scale
  int ls_iters = 2;                      // optimal: least-squares refinements after each grid candidate
  int dq_steps = 5;                      // double quantization: super-scale factors tried per sign
  int hist_bins = 65536;                 // histogram bins when a table's group has more values than this
  int lloyd_steps = 4;                   // exact Lloyd steps over the raw values after each solve
  int dq_bits = 0;                       // 0: F16 scales; 2..8: double-quantized scale codes of this many bits
  uint32_t super_block = 256;            // double quantization: weights per super-scale (a multiple of B)
  Dtype super_dtype = Dtype::F16;        // double quantization: F16 or F32 super-scales
  int pack_bits = 0;                     // bits per stored code: 0 = bits (packed); 8 = one byte per code
  std::vector<float> fixed_table;        // when set (K ascending values): every table is this one, not learned
                                         // (IQ4_NL's kvalues, or Q4_0's -8..7); scales then map the block's
                                         // largest-magnitude weight onto the table's largest-magnitude level
};

struct BlockLayout {
  uint64_t rows = 0, blocks = 0, super_blocks = 0, tables = 0;
  uint64_t codes_bytes = 0;    // packed_bytes(numel, pack_bits)
  uint64_t scales_bytes = 0;   // see the header comment
  uint64_t super_bytes = 0;    // double quantization: bytes of the super-scales, padded (the codes start here)
  uint64_t table_bytes = 0;    // tables × K × 4
  double bits = 0;             // exact bits stored, padding excluded: numel·bits + scale bits + table bits
};

// Checks the parameters against the shape (Code::Argument with a clear message) and returns the sizes.
BlockLayout block_layout(uint64_t numel, uint64_t cols, const BlockParams& p);

struct BlockTensorIn {
  const void* data = nullptr;
  Dtype dtype = Dtype::F32;
  uint64_t numel = 0;
  uint64_t cols = 0;                     // row length (numel % cols == 0)
  const float* importance = nullptr;     // optional, numel non-negative weights
};

struct BlockOut {
  uint8_t* codes = nullptr;
  size_t codes_bytes = 0;                // >= layout.codes_bytes
  uint8_t* scales = nullptr;
  size_t scales_bytes = 0;               // >= layout.scales_bytes
  uint8_t* table = nullptr;
  size_t table_bytes = 0;                // >= layout.table_bytes
};

struct BlockStats {
  uint64_t n = 0, blocks = 0, tables = 0;
  double sse = 0;                        // sum of squared errors of the decoded values
  double signal = 0;                     // sum of squares of the input
  double max_abs_err = 0;
  double weighted_distortion = 0;        // sum importance × err² (= sse without importance)
  int rounds = 0;                        // alternating rounds run
  std::vector<double> history;           // weighted distortion after the initial solve and every half-step
  std::vector<char> history_step;        // 'i' initial, 's' scale step, 't' table step
  double code_entropy = 0;               // empirical entropy of the codes, bits per code
  double levels_used = 0;                // mean distinct levels per table
  double bits = 0;                       // layout.bits
};

void block_quantize(const BlockTensorIn& in, const BlockParams& p, const BlockOut& out, const Context& ctx,
                    BlockStats* stats);

struct BlockSource {
  const uint8_t* codes = nullptr;
  size_t codes_bytes = 0;
  const uint8_t* scales = nullptr;
  size_t scales_bytes = 0;
  const uint8_t* table = nullptr;
  size_t table_bytes = 0;
  uint64_t numel = 0;
  uint64_t cols = 0;
  Overflow overflow = Overflow::Error;   // a value beyond out_dtype's range: Error(Range), or saturate and count
};

// Writes numel values of out_dtype (F32, F16, BF16 or F64) to out: x̂ = fl32(s_b × T[code]), then rounded to
// out_dtype (nearest even). Uses bits, block_size, table, dq_bits, super_block, super_dtype and pack_bits of p.
// Returns how many values were saturated (src.overflow = Saturate); with Overflow::Error a value beyond
// out_dtype's range throws Error(Range).
uint64_t block_dequantize(const BlockSource& src, const BlockParams& p, Dtype out_dtype, void* out, const Context& ctx);

}  // namespace wp
