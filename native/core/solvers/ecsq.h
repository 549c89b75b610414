// Entropy-constrained scalar quantization (Choi et al. 2017, after Chou, Lookabaugh & Gray 1989): uniform
// thresholds with centroid levels, and the iterative Lloyd-like ECSQ with a lambda search to hit a rate.
#pragma once
#include "../summarize.h"
#include "registry.h"

namespace wp {

Quantizer solve_ecsq_uniform(const WeightedPoints& p, const SolverParams& sp);
Quantizer solve_ecsq(const WeightedPoints& p, const SolverParams& sp);

}  // namespace wp
