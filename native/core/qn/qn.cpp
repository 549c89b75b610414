#include "qn.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "../error.h"

namespace wp {

namespace {

constexpr size_t kChunk = 8192;  // elements per reduction chunk: partial sums are merged in chunk order

size_t chunks_of(size_t n) { return (n + kChunk - 1) / kChunk; }

struct Partial {
  double loss = 0, alpha = 0, beta = 0;
  std::vector<double> b;
};

void merge_partials(const std::vector<Partial>& parts, size_t nb, double scale, QnGrad* g, double* loss) {
  double l = 0, a = 0, be = 0;
  std::vector<double> b(nb, 0.0);
  for (const Partial& p : parts) {  // chunk order: independent of the thread count
    l += p.loss;
    a += p.alpha;
    be += p.beta;
    for (size_t i = 0; i < nb; ++i) b[i] += p.b[i];
  }
  if (loss) *loss = l;
  if (g) {
    if (g->b.size() != nb) g->b.assign(nb, 0.0);
    g->alpha += scale * a;
    g->beta += scale * be;
    for (size_t i = 0; i < nb; ++i) g->b[i] += scale * b[i];
  }
}

}  // namespace

void qn_check(const QnFunction& f) {
  WP_THROW_IF_NOT(f.s.size() >= 1 && f.b.size() == f.s.size(), Argument,
                  "a quantization function needs at least one step and one bias per step");
  WP_THROW_IF_NOT(std::isfinite(f.alpha) && f.alpha > 0, Argument, "alpha must be finite and > 0");
  WP_THROW_IF_NOT(std::isfinite(f.beta) && f.beta > 0, Argument, "beta must be finite and > 0");
  WP_THROW_IF_NOT(std::isfinite(f.offset), Argument, "offset must be finite");
  for (size_t i = 0; i < f.s.size(); ++i) {
    WP_THROW_IF_NOT(std::isfinite(f.s[i]) && f.s[i] > 0, Argument, "step heights must be finite and > 0 (levels ascending)");
    WP_THROW_IF_NOT(std::isfinite(f.b[i]), Argument, "biases must be finite");
    WP_THROW_IF_NOT(i == 0 || f.b[i - 1] <= f.b[i], Argument, "biases must be ascending");
  }
}

QnFunction qn_function(const std::vector<double>& Y, double alpha, double beta, const std::vector<double>& b, bool centred) {
  WP_THROW_IF_NOT(Y.size() >= 2, Argument, "a level set needs at least 2 levels");
  WP_THROW_IF_NOT(b.size() + 1 == Y.size(), Argument,
                  "a level set of " + std::to_string(Y.size()) + " levels needs " + std::to_string(Y.size() - 1) + " biases");
  QnFunction f;
  f.alpha = alpha;
  f.beta = beta;
  f.b = b;
  double total = 0;
  for (size_t i = 0; i + 1 < Y.size(); ++i) {
    WP_THROW_IF_NOT(std::isfinite(Y[i]) && std::isfinite(Y[i + 1]) && Y[i + 1] > Y[i], Argument,
                    "levels must be finite and strictly ascending");
    f.s.push_back(Y[i + 1] - Y[i]);
    total += Y[i + 1] - Y[i];
  }
  f.offset = centred ? 0.5 * total : 0.0;
  return f;
}

Quantizer qn_quantizer(const QnFunction& f) {
  qn_check(f);
  Quantizer q;
  double acc = 0;
  q.levels.push_back(f.alpha * (0.0 - f.offset));
  for (size_t i = 0; i < f.s.size(); ++i) {
    acc += f.s[i];
    q.levels.push_back(f.alpha * (acc - f.offset));
    q.thresholds.push_back(f.b[i] / f.beta);
  }
  return q;
}

void qn_forward(const float* x, size_t n, const QnFunction& f, double T, float* y, const Context& ctx) {
  qn_check(f);
  WP_THROW_IF_NOT(T > 0, Argument, "temperature must be > 0 (+inf for the hard function)");
  if (std::isinf(T)) {
    // As the scalar codec stores and decodes it: F32 levels, the count of thresholds below x.
    Quantizer q = qn_quantizer(f);
    std::vector<float> lv(q.levels.begin(), q.levels.end());
    const std::vector<double>& th = q.thresholds;
    parallel_for(ctx, chunks_of(n), [&](size_t c) {
      size_t e = std::min(n, (c + 1) * kChunk);
      for (size_t i = c * kChunk; i < e; ++i) {
        double v = x[i];
        WP_THROW_IF_NOT(std::isfinite(v), NonFinite, "input element " + std::to_string(i) + " is not finite");
        y[i] = lv[(size_t)(std::lower_bound(th.begin(), th.end(), v) - th.begin())];
      }
    });
    return;
  }
  parallel_for(ctx, chunks_of(n), [&](size_t c) {
    size_t e = std::min(n, (c + 1) * kChunk);
    double sum_sd;
    for (size_t i = c * kChunk; i < e; ++i) {
      WP_THROW_IF_NOT(std::isfinite(x[i]), NonFinite, "input element " + std::to_string(i) + " is not finite");
      y[i] = (float)qn_point(f, T, x[i], sum_sd, nullptr);
    }
  });
}

void qn_backward(const float* x, const float* gy, size_t n, const QnFunction& f, double T, float* gx, QnGrad* g,
                 const Context& ctx) {
  qn_check(f);
  WP_THROW_IF_NOT(T > 0 && std::isfinite(T), Argument, "the gradient needs a finite temperature > 0 (the hard function's is zero almost everywhere)");
  const size_t nb = f.steps();
  std::vector<Partial> parts(g ? chunks_of(n) : 0);
  parallel_for(ctx, chunks_of(n), [&](size_t c) {
    size_t e = std::min(n, (c + 1) * kChunk);
    std::vector<double> sd(nb);
    Partial p;
    p.b.assign(nb, 0.0);
    for (size_t i = c * kChunk; i < e; ++i) {
      WP_THROW_IF_NOT(std::isfinite(x[i]) && std::isfinite(gy[i]), NonFinite, "element " + std::to_string(i) + " of x or gy is not finite");
      double sum_sd;
      double y = qn_point(f, T, x[i], sum_sd, sd.data());
      if (gx) gx[i] = (float)(gy[i] * f.alpha * f.beta * T * sum_sd);
      if (g) qn_param_grad(f, T, x[i], y, gy[i], sum_sd, sd.data(), p.alpha, p.beta, p.b.data());
    }
    if (g) parts[c] = std::move(p);
  });
  if (g) merge_partials(parts, nb, 1.0, g, nullptr);
}

double qn_weighted_sse(const double* x, const double* w, const double* target, size_t n, const QnFunction& f, double T,
                       double scale, QnGrad* g, const Context& ctx) {
  const size_t nb = f.steps();
  std::vector<Partial> parts(chunks_of(n));
  parallel_for(ctx, chunks_of(n), [&](size_t c) {
    size_t e = std::min(n, (c + 1) * kChunk);
    std::vector<double> sd(nb);
    Partial p;
    p.b.assign(nb, 0.0);
    for (size_t i = c * kChunk; i < e; ++i) {
      double sum_sd;
      double y = qn_point(f, T, x[i], sum_sd, g ? sd.data() : nullptr);
      double r = y - (target ? target[i] : x[i]);
      double wi = w ? w[i] : 1.0;
      p.loss += wi * r * r;
      if (g) qn_param_grad(f, T, x[i], y, 2 * wi * r, sum_sd, sd.data(), p.alpha, p.beta, p.b.data());
    }
    parts[c] = std::move(p);
  });
  double loss = 0;
  merge_partials(parts, nb, scale, g, &loss);
  return loss;
}

}  // namespace wp
