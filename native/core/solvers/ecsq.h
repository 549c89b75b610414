// Entropy-constrained scalar quantization (Choi, El-Khamy & Lee 2017, after Chou, Lookabaugh & Gray 1989), as
// solvers over WeightedPoints. Rates are the entropy of the codes, H = -sum p_j log2 p_j with p_j the
// (importance-)weighted share of cell j, in bits per weight.
//  - ecsq-uniform: midtread uniform thresholds (cell i holds x with round(x/step) = i), each level the weighted
//    mean of its cell; the step is searched so that H hits `rate`.
//  - ecsq: the iterative Lloyd-like ECSQ. Assign by (x - c_j)^2 - lambda*log2 p_j (cells are intervals: the
//    lower envelope of equal-curvature parabolas), update weighted means and shares, drop empty cells; lambda
//    is searched so that H hits `rate`. Seeded by the exact segment DP below when the slice has at most
//    kDpSeedMax distinct values, else by ecsq-uniform.
//  - ecsq-dp: the exact optimum of D*W + lambda*H*W over contiguous partitions (exact for uniform importance,
//    where optimal cells are intervals; Gyorgy & Linder 2002, Muresan & Effros 2008): O(m^2) per lambda.
#pragma once
#include "../summarize.h"
#include "registry.h"

namespace wp {

constexpr size_t kDpSeedMax = 2048;

Quantizer solve_ecsq_uniform(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_ecsq(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_ecsq_dp(const WeightedPoints& p, const SolverParams& sp);

// Weighted entropy (bits) of the cells a quantizer induces on the points (for tests and reports).
double quantizer_entropy(const WeightedPoints& p, const Quantizer& q);

}  // namespace wp
