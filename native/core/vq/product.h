// Product quantization and LR²VQ of one weight matrix (the vector codec, lib/codecs/vector.ts; docs/FORMAT.md).
//
// A row of `cols` weights is cut into P = ceil(cols / m) subvectors of m consecutive weights (the last one padded
// with zeros that carry no weight and are never decoded). Optionally each row is first divided by its scale s_r
// (its RMS, rounded to the stored dtype). Rows are taken in groups of group_rows, each with its own codebook of k
// codewords. PQ clusters the subvectors themselves (codewords of m values); LR²VQ (Zhu, Zhou & Zhong 2022,
// arXiv 2211.11397) projects them onto the dk < m principal directions of the tensor's subvectors, P [dk, m],
// clusters the projections (codewords of dk values) and reconstructs through the projection. Decoding (the one
// definition, used by the encoder too):
//
//     B_g[c][i] = Σ_{j<dk} C_g[c][j] · P[j][i]      (F32, j ascending; PQ: B_g = C_g)
//     Ŵ[r][p·m + i] = B_{g(r)}[code[r][p]][i] · s_r  (F32; s_r = 1 without row scales)
//
// Objective: the weight error Σ w (W − Ŵ)² (w: importance, or 1), or with a Gram matrix H [cols, cols] of the
// layer's inputs, the layer-output error tr((W − Ŵ) H (W − Ŵ)ᵀ): assignments by exact coordinate descent, codebooks
// and projection refit by conjugate gradients on that quadratic (least squares), every step accepted only when the
// stored (rounded) result lowers the error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../context.h"

namespace wp::vq {

struct ProductParams {
  int m = 8;               // subvector length (1 ... 16)
  int k = 256;             // codewords per codebook (2 ... 65,536)
  int rank = 0;            // 0: PQ; 1 ... m: LR²VQ with this dk; -1: LR²VQ with dk estimated (rank_estimate)
  bool row_scale = false;  // divide rows by their RMS first
  size_t group_rows = 0;   // rows per codebook (0: the whole tensor)
  int max_iter = 20;       // Lloyd iterations
  uint64_t seed = 0;
  bool f16 = false;        // codebooks, projection and scales stored as F16 (scales F32 when out of F16's range)
  int refine_rounds = 4;   // with a Gram matrix: assignment + refit rounds at most
  // > 0: entropy-constrained VQ (kmeans.h) with λ searched per codebook so that the indices' empirical entropy is
  // at most `rate` bits per weight (entropy / m), as close as the search gets (for entropy-coded indices).
  double rate = 0;
};

struct RankTerm {
  int rank;
  double low_rank;    // Σ_{i>dk} λ_i: the subvectors' energy outside the projection (scaled units)
  double clustering;  // k-means error of the projections at this dk (estimated on a sample, scaled to all)
};

struct ProductStats {
  int rank = 0;                     // dk used (0: PQ)
  std::vector<RankTerm> estimate;   // rank -1: every candidate's terms
  bool scales_f32 = false;          // scales did not fit F16
  int iterations = 0;               // Lloyd iterations (largest over groups)
  size_t reseeded = 0;              // empty clusters re-seeded
  double output_error_initial = -1; // with a Gram matrix: tr(E H Eᵀ) after the weight-error clustering
  double output_error = -1;         //   and at the end
  int refine_rounds = 0;            //   rounds that lowered it
  double index_entropy = 0;         // bits per weight: the indices' empirical entropy / m (over all codebooks)
};

struct ProductIn {
  const float* w = nullptr;           // [rows, cols]
  size_t rows = 0, cols = 0;
  const float* importance = nullptr;  // [rows, cols] or null
  const float* gram = nullptr;        // [cols, cols] or null
};

// Sizes of the outputs for these params.
struct ProductShape {
  size_t positions;  // P = ceil(cols / m)
  size_t groups;     // ceil(rows / group_rows)
  int dk;            // codeword length: m for PQ, the rank for LR²VQ (known only after the estimate for rank -1)
};
ProductShape product_shape(size_t rows, size_t cols, const ProductParams& p);

struct ProductOut {
  float* scales = nullptr;       // [rows] when row_scale
  uint32_t* codes = nullptr;     // [rows, P]
  float* codebooks = nullptr;    // [groups, k, m] (room for m; the first dk of each codeword's slot are used: [groups, k, dk] packed)
  float* projection = nullptr;   // [m, m] room; [dk, m] used (LR²VQ)
};

// Throws Error(Argument) for bad params (m, k > subvectors of a group, rank), Error(NonFinite) for a non-finite
// weight, Error(Cancelled).
ProductStats product_quantize(const ProductIn& in, const ProductParams& p, ProductOut& out, const Context& ctx);

// The decoder (see above). codebooks [groups, k, dk], projection [dk, m] or null (dk = m), scales [rows] or null.
void product_reconstruct(size_t rows, size_t cols, int m, int k, int dk, size_t group_rows, const float* scales, const uint32_t* codes,
                         const float* codebooks, const float* projection, float* out, const Context& ctx);

}  // namespace wp::vq
