// Sparse least-squares quantization (Wang et al., "Scalar Quantization as Sparse Least Square Optimization",
// TPAMI 2019): l1, l1+l2, l0, the iterative target-K method and the clustering-based method, as solvers over
// WeightedPoints. See docs/SPARSE.md for the formulation and where it comes from.
#pragma once
#include "../summarize.h"
#include "registry.h"

namespace wp {

Quantizer solve_sparse_l1(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_l1l2(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_l0(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_sparse_cluster(const WeightedPoints& p, const SolverParams& sp);

}  // namespace wp
