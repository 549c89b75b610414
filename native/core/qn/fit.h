// Post-training fit of a Quantization Networks function (Yang et al. 2019, §3.2–3.4 and §4.1's initialisation):
// Adam on (log α, log β) and, when asked, the biases, with the temperature annealed per epoch, against
//  (a) the weight error Σ w (f_T(x) − x)² over a slice's weighted points (the `qn` solver of the registry), or
//  (b) the layer-output error tr((W − f_T(V)) H (W − f_T(V))ᵀ) with a latent copy V of W learned through the soft
//      function (the checkpoint-tool form of the paper's end-to-end training).
// Both keep the result only when its hard objective is no higher than the initialisation's, and finish with the
// least-squares α of the final assignment (exact for fixed thresholds), so a fit never ends worse than it began.
#pragma once
#include <cstddef>
#include <vector>

#include "../context.h"
#include "../summarize.h"
#include "params.h"
#include "qn.h"

namespace wp {

// The paper's initialisation for the points: β = 5p/(4q) (p = max|Y|, q = max|x|), α = 1/β; biases 0 for two
// levels; otherwise β × the midpoints of the exact k-means centres with |Y| clusters, and the two biases around an
// interior level 0 set to ∓0.05 (ternary {−1, 0, 1}: b = ±0.05). Points with max|x| = 0 get β = 1.
QnFunction qn_init(const WeightedPoints& p, const std::vector<double>& Y);

// (a) Fits the function to the points (weights w). Progress (epoch, epochs) and cancellation through ctx when given.
// init/final (nullable) get the hard objective Σ w (q(x) − x)² / Σ w x² before and after.
QnFunction qn_fit_points(const WeightedPoints& p, const QnFitParams& fp, const Context* ctx, double* init = nullptr,
                         double* final_obj = nullptr);

// The registry's solver "qn" (fp from sp.qn; the solver's levels and thresholds are qn_quantizer of the fit).
Quantizer solve_qn(const WeightedPoints& p, const SolverParams& sp);

struct QnEpoch {
  int epoch = 0;
  double temperature = 0;
  double loss = 0;       // soft objective of the epoch's last step, relative (Σ over slices / Σ tr(W H Wᵀ))
  double objective = 0;  // hard objective after the epoch, relative
};

struct QnCalibratedResult {
  std::vector<QnFunction> functions;  // one per slice
  std::vector<QnEpoch> history;
  double init_objective = 0;   // relative hard objective at the initialisation (V = W)
  double objective = 0;        // relative hard objective of the result
};

// (b) W: rows × m (row-major F32), H: m × m (symmetric), slices of rows_per_slice whole rows (rows_per_slice =
// rows: one function per tensor, as the paper; 1: per row). Writes the latent weights to V (rows × m); the codes
// of the result are the hard function of V. Progress (epoch, epochs) and cancellation through ctx. The result
// does not depend on ctx's thread count. Throws Error(NonFinite) for NaN/inf in W or H.
void qn_fit_calibrated(const float* W, size_t rows, size_t m, const float* H, size_t rows_per_slice,
                       const QnFitParams& fp, float* V, QnCalibratedResult* res, const Context& ctx);

}  // namespace wp
