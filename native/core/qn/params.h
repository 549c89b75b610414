// The options of a Quantization Networks fit (native/core/qn/fit.h), kept apart so that the solver registry's
// SolverParams can carry them.
#pragma once
#include <vector>

namespace wp {

struct QnFitParams {
  std::vector<double> levels;   // the level set Y, ascending (n + 1 >= 2 levels)
  double t_start = 10;          // temperature of epoch 0
  double t_slope = 10;          // added per epoch: T(e) = t_start + t_slope · e
  int epochs = 20;
  int steps = 10;               // full-batch Adam steps per epoch
  double lr = 0.02;             // Adam's step size, in units of log α, log β and β x (biases, latent weights)
  bool learn_biases = false;    // the paper freezes them
};

}  // namespace wp
