// Quantization Networks (Yang et al., CVPR 2019, arXiv 1911.09464): the quantization function as a sum of
// sigmoids, y = α (Σᵢ sᵢ σ(T (β x − bᵢ)) − o), its exact gradients, and its hard (T → ∞) form, which is a scalar
// quantizer with levels α (Σ_{i<j} sᵢ − o) and thresholds bᵢ / β. Paper: Eq. 5 (ideal), 7 (soft), 8–11
// (gradients; the printed Eq. 8 is exact only if its g means α sᵢ σᵢ, see docs/QN.md), 12 (inference).
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "../context.h"
#include "../solvers/registry.h"

namespace wp {

// One quantization function. n = s.size() = b.size() steps; the levels Y give s (sᵢ = Y_{i+1} − Y_i) and, for
// weights, o = ½ Σ sᵢ (zero-centred output); activations use o = 0.
struct QnFunction {
  std::vector<double> s;  // step heights, > 0
  std::vector<double> b;  // biases (interval starts in units of β x), ascending
  double alpha = 1;       // output scale, > 0
  double beta = 1;        // input scale, > 0
  double offset = 0;      // o
  size_t steps() const { return s.size(); }
};

// σ(u) and σ(u)(1 − σ(u)), accurate for large |u| (no 1 − 1 cancellation).
inline void qn_sigmoid(double u, double& sig, double& d) {
  double e = std::exp(-std::fabs(u));
  double inv = 1.0 / (1.0 + e);
  sig = u >= 0 ? inv : e * inv;
  d = e * inv * inv;
}

// One element of the soft function: returns f_T(x); sum_sd = Σ sᵢ dᵢ, and sd[i] = sᵢ dᵢ when sd is non-null. The one
// evaluation every kernel and fit here uses.
inline double qn_point(const QnFunction& f, double T, double x, double& sum_sd, double* sd) {
  double acc = 0;
  sum_sd = 0;
  const double bx = f.beta * x;
  for (size_t i = 0; i < f.s.size(); ++i) {
    double sg, d;
    qn_sigmoid(T * (bx - f.b[i]), sg, d);
    acc += f.s[i] * sg;
    double v = f.s[i] * d;
    sum_sd += v;
    if (sd) sd[i] = v;
  }
  return f.alpha * (acc - f.offset);
}

// Adds gy × one element's parameter gradients (∂y/∂α, ∂y/∂β, ∂y/∂bᵢ) into (ga, gbeta, gbias); y, sum_sd, sd from
// qn_point.
inline void qn_param_grad(const QnFunction& f, double T, double x, double y, double gy, double sum_sd, const double* sd,
                           double& ga, double& gbeta, double* gbias) {
  const size_t n = f.s.size();
  ga += gy * (y / f.alpha);
  gbeta += gy * f.alpha * T * x * sum_sd;
  for (size_t i = 0; i < n; ++i) gbias[i] -= gy * f.alpha * T * sd[i];
}

// The function of the level set Y (ascending, at least 2 levels) with these biases; o = ½ Σ sᵢ when centred,
// else 0. Throws Error(Argument) for fewer than 2 levels, non-ascending levels, or biases of the wrong count.
QnFunction qn_function(const std::vector<double>& Y, double alpha, double beta, const std::vector<double>& b,
                       bool centred = true);

// Checks α, β > 0 finite, sᵢ > 0, b finite and ascending. Throws Error(Argument).
void qn_check(const QnFunction& f);

// The hard function as the scalar codec stores it: levels α (Σ_{i<j} sᵢ − o), j = 0..n, ascending, and thresholds
// bᵢ / β (value x gets level j when threshold j−1 < x <= threshold j, as the codec's assign does).
Quantizer qn_quantizer(const QnFunction& f);

constexpr double kQnHard = std::numeric_limits<double>::infinity();

// y = f_T(x) for n elements; T = kQnHard (+inf) gives the hard function, computed as the scalar codec decodes it
// (the level of x's threshold interval, rounded to F32). Parallel over fixed chunks on ctx's threads.
void qn_forward(const float* x, size_t n, const QnFunction& f, double T, float* y, const Context& ctx);

// Gradients of Σ_d gy_d · f_T(x_d): with σᵢ = σ(T (β x − bᵢ)) and dᵢ = σᵢ (1 − σᵢ),
//   ∂y/∂x = α β T Σ sᵢ dᵢ,  ∂y/∂α = Σ sᵢ σᵢ − o,  ∂y/∂β = α T x Σ sᵢ dᵢ,  ∂y/∂bᵢ = −α T sᵢ dᵢ.
// gx (nullable) gets gy · ∂y/∂x per element; the sums over elements go to g (nullable), reduced over fixed
// chunks in chunk order, so the result does not depend on the thread count. T must be finite and > 0.
struct QnGrad {
  double alpha = 0, beta = 0;
  std::vector<double> b;
};
void qn_backward(const float* x, const float* gy, size_t n, const QnFunction& f, double T, float* gx, QnGrad* g,
                 const Context& ctx);

// The same for double inputs with weights (the fit's points): returns Σ w (f_T(x) − target)² and adds its
// gradient (times `scale`) into g; target null means target = x. Chunked and ordered as qn_backward.
double qn_weighted_sse(const double* x, const double* w, const double* target, size_t n, const QnFunction& f, double T,
                       double scale, QnGrad* g, const Context& ctx);

}  // namespace wp
