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
};

struct KmeansStats {
  int iterations = 0;           // Lloyd iterations run
  double sse = 0;               // E after the last assignment and update
  std::vector<double> history;  // E after each iteration's update (the objective; never increases)
  size_t reseeded = 0;          // empty clusters re-seeded (with the farthest points)
};

// Points x [n, d] row-major, optional weights w [n, d] (null: all 1; non-negative, finite). Writes centroids
// [k, d] and assign [n]. Throws Error(Argument) for k < 1, k > n, d < 1; Error(Cancelled) on ctx's flag.
// Progress: one unit per iteration (plus one for seeding).
KmeansStats kmeans(const float* x, const float* w, size_t n, int d, const KmeansParams& p, float* centroids, uint32_t* assign,
                   const Context& ctx);

// The nearest centroid of every point under the weighted distance (ties: the lower index). Returns the weighted
// squared error E, summed in double in a fixed order. `dist` [n] (may be null) receives each point's distance.
double assign_nearest(const float* x, const float* w, size_t n, int d, const float* centroids, int k, uint32_t* assign, double* dist,
                      const Context& ctx);

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
