// normal-float: the k = 2^bits levels of QLoRA's NormalFloat data type (Dettmers et al., QLoRA, 2023, §3 and
// Appendix E; NF4 at 4 bits), scaled by the slice's largest magnitude. The levels are quantiles of N(0, 1):
// k/2 positive ones at probabilities linspace(offset, 1/2, k/2 + 1) without its last point, k/2 - 1 negative ones
// at linspace(offset, 1/2, k/2) likewise, mirrored, and an exact zero; normalized to [-1, 1]. offset =
// 1 - (1/(2k) + 1/(2(k-1))) / 2 (0.9677083 for k = 16), as the paper's construction (and bitsandbytes) has it.
// Assignment is to the nearest level (midpoint thresholds), as NF4 does.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../error.h"
#include "registry.h"

namespace wp {

namespace {

// The standard normal quantile: Acklam's rational approximation (relative error 1.2e-9), refined by one Halley
// step on erfc, which brings it to double precision.
double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lo = 0.02425, hi = 1 - lo;
  double x;
  if (p < lo) {
    double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= hi) {
    double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

// The k levels in [-1, 1], ascending.
std::vector<double> normal_float_table(int k) {
  WP_THROW_IF_NOT(k >= 2 && (k & (k - 1)) == 0, Argument, "normal-float needs 2^bits levels, bits >= 1");
  const int pos = k / 2, neg = k / 2 - 1;
  const double offset = 1 - 0.5 * (1.0 / (2.0 * k) + 1.0 / (2.0 * (k - 1)));
  std::vector<double> v;
  for (int i = 0; i < pos; ++i) v.push_back(normal_quantile(offset + (0.5 - offset) * i / pos));
  for (int i = 0; i < neg; ++i) v.push_back(-normal_quantile(offset + (0.5 - offset) * i / std::max(neg, 1)));
  v.push_back(0.0);
  const double m = *std::max_element(v.begin(), v.end(), [](double x, double y) { return std::fabs(x) < std::fabs(y); });
  for (double& x : v) x /= std::fabs(m);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

Quantizer solve_normal_float(const WeightedPoints& p, const SolverParams& sp) {
  const double absmax = std::max(std::fabs(p.x.front()), std::fabs(p.x.back()));
  if (absmax == 0) return {{0.0}, {}};
  std::vector<double> lv = normal_float_table(sp.k);
  for (double& x : lv) x *= absmax;
  return {lv, {}};
}

}  // namespace wp
