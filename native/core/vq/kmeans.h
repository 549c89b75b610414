// Weighted k-means in d dimensions (the codebooks of product quantization and LR²VQ): k-means++ seeding and
// Lloyd's iterations, with a diagonal weight per coordinate of every point (importance: a Hessian or Fisher
// diagonal, Adam's v), so that the objective is
//
//     E = Σ_t Σ_i w_ti (x_ti − c_{a(t), i})²
//
// Distances are computed by blocked matrix products (Eigen): ‖x − c‖²_w = Σ w x² − 2 (w∘x)·c + w·(c∘c), two GEMMs
// of a block of points against the codebook (one when unweighted). Deterministic for any thread count: points are
// cut into blocks of a fixed size, centroid sums are taken cluster by cluster in point order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../context.h"

namespace wp::vq {

struct KmeansParams {
  int k = 256;             // centroids (2 ... 65,536); at most the number of points
  int max_iter = 20;       // Lloyd iterations at most (0: seeding only); stops early when no assignment changes
  uint64_t seed = 0;
  // k-means++ runs on a seeded sample of at most this many points (0: max(32 k, 16,384)); above
  // plus_plus_max_k centroids the seeds are distinct sample points drawn uniformly (k-means++ costs n·k·d).
  size_t seed_sample = 0;
  int plus_plus_max_k = 4096;
  // Entropy-constrained VQ (Chou, Lookabaugh & Gray 1989) when > 0: the objective becomes E + λ Σ_t ℓ(a(t)), with
  // ℓ(c) = −log2 p(c) the ideal code length of codeword c from its share of the points; codewords that lose all
  // their points drop out (not re-seeded).
  double lambda = 0;
  // Start from these centroids [k, d] instead of k-means++ (may be null).
  const float* init = nullptr;
};

struct KmeansStats {
  int iterations = 0;           // Lloyd iterations run
  double sse = 0;               // E after the last assignment and update
  std::vector<double> history;  // E after each iteration's update (the objective; never increases)
  size_t reseeded = 0;          // empty clusters re-seeded (with the farthest points)
  double entropy = 0;           // bits per point: the empirical entropy of the final assignment
  std::vector<float> penalty;   // λ ℓ(c) per codeword after the last update (entropy-constrained runs; else empty)
};

// Points x [n, d] row-major, optional weights w [n, d] (null: all 1; non-negative, finite). Writes centroids
// [k, d] and assign [n]. Throws Error(Argument) for k < 1, k > n, d < 1; Error(Cancelled) on ctx's flag.
// Progress: one unit per iteration (plus one for seeding).
KmeansStats kmeans(const float* x, const float* w, size_t n, int d, const KmeansParams& p, float* centroids, uint32_t* assign,
                   const Context& ctx);

// The nearest centroid of every point under the weighted distance plus penalty[c] (may be null; +inf-like values
// exclude a codeword; ties: the lower index). Returns the weighted squared error E (without penalties), summed in
// double in a fixed order. `dist` [n] (may be null) receives each point's distance.
double assign_nearest(const float* x, const float* w, size_t n, int d, const float* centroids, int k, uint32_t* assign, double* dist,
                      const Context& ctx, const float* penalty = nullptr);

// The entropy-constrained penalties λ·(−log2 p(c)) of an assignment's codeword shares (a codeword without points
// gets a penalty that excludes it), and the assignment's empirical entropy in bits per point.
std::vector<float> code_penalties(const uint32_t* assign, size_t n, int k, double lambda, double* entropy);

// The weighted mean of every cluster's points (coordinate-wise: Σ w x / Σ w; a coordinate whose weights are all
// zero keeps its previous value). Clusters with no points keep their centroid. Returns the number of points per
// cluster.
std::vector<size_t> update_centroids(const float* x, const float* w, size_t n, int d, const uint32_t* assign, int k, float* centroids,
                                     const Context& ctx);

// The distance kernel's instruction set on this CPU: "avx2+fma" or "baseline" (benches report it).
const char* kmeans_kernel_isa();

// E of an assignment, in double, in a fixed order (the reference the tests compare against).
double weighted_sse(const float* x, const float* w, size_t n, int d, const float* centroids, const uint32_t* assign);

}  // namespace wp::vq
