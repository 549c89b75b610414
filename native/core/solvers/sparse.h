// Sparse least-squares quantization (after Wang et al., "Scalar Quantization as Sparse Least Square
// Optimization", arXiv 1803.00204, TPAMI 2019): l1, l1+l2, l0, the "iterative" target-K method and the
// "clustering-based" method, as exact (or provably convergent) solvers over WeightedPoints.
//
// The paper's full text could not be read; the formulation below is a RECONSTRUCTION (docs/SPARSE.md):
// on the distinct values u_1 < ... < u_m with weights c_j, the quantized vector is z = A*beta with A the
// lower-triangular matrix of ones, so beta_{j+1} = z_{j+1} - z_j and the number of distinct values is
// 1 + #{j : beta_{j+1} != 0}. With A's columns centred and scaled to unit norm (the usual Lasso
// standardisation, intercept unpenalised), the penalties on beta become weighted total variation with
// w_j = sqrt(L_j * R_j / W) (L_j, R_j: the weight at or below u_j and above it, W = L_j + R_j):
//
//   sparse-l1    min_z 1/2 sum c_j (u_j - z_j)^2 + lambda  sum w_j   |z_{j+1} - z_j|
//   sparse-l1l2  ... + lambda2 sum w_j^2 (z_{j+1} - z_j)^2          (elastic net on standardised beta)
//   sparse-l0    min_z   sum c_j (u_j - z_j)^2 + lambda (#distinct(z) - 1)       (1-D Potts)
//   sparse-cluster  K contiguous clusters by deterministic, empty-cluster-free Lloyd iterations, each step
//                the LS fit on the support "boundaries of the current partition" (= the group means).
//
// Parameters (SolverParams): k = most levels allowed; lambda, lambda2; target_values = K.
//   - target_values > 0, or lambda == 0 (unset): the "iterative method": the penalty is searched until the
//     solution has K = min(target_values or k, k) distinct values, or the largest attainable count below K
//     when no penalty gives exactly K (ties); the levels are then refitted by least squares on the found
//     partition (the group means). levels.size() < K reports that K was not attainable.
//   - target_values == 0 and lambda > 0: the exact solution at that lambda (levels = the z values). A
//     lambda that leaves more than k distinct values is an Argument error.
// Every method returns ascending levels and thresholds that reproduce its own partition of the points.
//
// Test/bench-only switches (environment, read at each call; not part of the API):
//   WEIGHTPRESS_SPARSE_PENALTY = standardized (default) | uniform   (uniform: w_j = 1, A not scaled)
//   WEIGHTPRESS_SPARSE_L0      = monge (default) | pelt | naive     (the sparse-l0 DP algorithm)
#pragma once
#include "../summarize.h"
#include "registry.h"

namespace wp {

Quantizer solve_sparse_l1(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_l1l2(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_l0(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_cluster(const WeightedPoints& p, const SolverParams& sp);

}  // namespace wp
