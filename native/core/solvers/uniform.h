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

// Levels ascending, exactly k of them (a constant slice gives k equal levels).
std::vector<double> uniform_levels(const WeightedPoints& p, const UniformParams& params);

}  // namespace wp
