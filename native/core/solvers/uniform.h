// Uniform (evenly spaced) levels: min-max or MSE-optimal step, symmetric about zero or asymmetric.
#pragma once
#include <vector>

#include "../summarize.h"

namespace wp {

enum class UniformStep { MinMax, Mse };

struct UniformParams {
  int k = 16;
  bool symmetric = false;  // levels step*(i - (k-1)/2): symmetric about zero, no offset to store
  UniformStep step = UniformStep::Mse;
};

// The min-max grid of a slice from its smallest and largest values alone (lo <= hi): k levels lo + i*(hi - lo)/(k-1),
// or -a + i*2a/(k-1) with a = max(|lo|, |hi|) when symmetric. False (levels untouched) when k is 1 or the grid
// has no width: then the levels need the points (uniform_levels). Used by uniform_levels, and by the scalar
// pipeline to place min-max grids without summarizing a slice.
bool uniform_minmax_grid(double lo, double hi, int k, bool symmetric, std::vector<double>& levels);

// Levels ascending, exactly k of them (a constant slice gives k equal levels).
std::vector<double> uniform_levels(const WeightedPoints& p, const UniformParams& params);

}  // namespace wp
