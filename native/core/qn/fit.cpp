#include "fit.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "../error.h"
#include "../solvers/kmeans_dp.h"

namespace wp {

namespace {

// Adam (Kingma & Ba 2015) over one parameter vector, bias-corrected.
struct Adam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int t = 0;
  std::vector<double> m, v;
  Adam(size_t n, double lr_) : lr(lr_), m(n, 0.0), v(n, 0.0) {}
  void step(std::vector<double>& p, const std::vector<double>& g) {
    ++t;
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
    }
  }
};

// θ = (log α, log β, b…): the positive scales in log space (scale-free steps); biases as they are.
std::vector<double> theta_of(const QnFunction& f) {
  std::vector<double> t{std::log(f.alpha), std::log(f.beta)};
  t.insert(t.end(), f.b.begin(), f.b.end());
  return t;
}

// Writes θ back into f; biases kept ascending (adjacent violators pooled to their mean).
void set_theta(QnFunction& f, const std::vector<double>& t) {
  f.alpha = std::exp(t[0]);
  f.beta = std::exp(t[1]);
  std::copy(t.begin() + 2, t.end(), f.b.begin());
  // Pool adjacent violators: blocks of (sum, count) merged while a block's mean exceeds the next one's; one pass,
  // always ends (pairwise averaging repeated until no violation could run for very long on near-equal values).
  std::vector<double> sum;
  std::vector<size_t> cnt;
  for (double v : f.b) {
    sum.push_back(v);
    cnt.push_back(1);
    while (sum.size() > 1 && sum[sum.size() - 2] / (double)cnt[cnt.size() - 2] > sum.back() / (double)cnt.back()) {
      sum[sum.size() - 2] += sum.back();
      cnt[cnt.size() - 2] += cnt.back();
      sum.pop_back();
      cnt.pop_back();
    }
  }
  size_t i = 0;
  for (size_t k = 0; k < sum.size(); ++k)
    for (size_t j = 0; j < cnt[k]; ++j) f.b[i++] = sum[k] / (double)cnt[k];
}

std::vector<double> grad_of(const QnFunction& f, const QnGrad& g, bool learn_biases) {
  std::vector<double> d{f.alpha * g.alpha, f.beta * g.beta};
  for (double gb : g.b) d.push_back(learn_biases ? gb : 0.0);
  return d;
}

double temperature(const QnFitParams& fp, int e) { return fp.t_start + fp.t_slope * e; }

void check_fit_params(const QnFitParams& fp) {
  WP_THROW_IF_NOT(fp.levels.size() >= 2, Argument, "qn needs a level set of at least 2 levels");
  WP_THROW_IF_NOT(fp.t_start > 0 && std::isfinite(fp.t_start) && fp.t_slope >= 0 && std::isfinite(fp.t_slope), Argument,
                  "qn: tStart must be > 0 and tSlope >= 0");
  WP_THROW_IF_NOT(fp.epochs >= 0 && fp.steps >= 1, Argument, "qn: epochs must be >= 0 and steps per epoch >= 1");
  WP_THROW_IF_NOT(fp.lr > 0 && std::isfinite(fp.lr), Argument, "qn: the learning rate must be > 0");
}

// The unit levels Σ_{i<j} sᵢ − o (the hard function's levels for α = 1) and the code of x (thresholds below x).
std::vector<double> unit_levels(const QnFunction& f) {
  std::vector<double> u{-f.offset};
  double acc = 0;
  for (double s : f.s) u.push_back((acc += s) - f.offset);
  return u;
}
inline size_t code_of(const std::vector<double>& th, double x) {
  return (size_t)(std::lower_bound(th.begin(), th.end(), x) - th.begin());
}

// Σ w (q(x) − x)² of the points under f's hard function; with `refit`, first sets α to its least-squares value for
// the assignment (Σ w x u / Σ w u², u the unit level of x's code), which can only lower the error.
double hard_points(const WeightedPoints& p, QnFunction& f, bool refit) {
  Quantizer q = qn_quantizer(f);
  std::vector<double> u = unit_levels(f);
  if (refit) {
    double num = 0, den = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      double ui = u[code_of(q.thresholds, p.x[i])];
      num += p.w[i] * p.x[i] * ui;
      den += p.w[i] * ui * ui;
    }
    if (den > 0 && num > 0) f.alpha = num / den;
  }
  double e = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    double r = f.alpha * u[code_of(q.thresholds, p.x[i])] - p.x[i];
    e += p.w[i] * r * r;
  }
  return e;
}

}  // namespace

QnFunction qn_init(const WeightedPoints& p, const std::vector<double>& Y) {
  double pmax = 0, q = 0;
  for (double y : Y) pmax = std::max(pmax, std::fabs(y));
  for (size_t i = 0; i < p.size(); ++i) q = std::max(q, std::fabs(p.x[i]));
  const double beta = q > 0 && pmax > 0 ? 5 * pmax / (4 * q) : 1.0;
  const size_t nb = Y.size() - 1;
  std::vector<double> b(nb, 0.0);
  if (nb >= 2) {
    std::vector<double> c = p.size() >= Y.size() ? kmeans_dp(p, (int)Y.size()) : std::vector<double>{};
    for (size_t i = 0; i < nb; ++i) b[i] = c.size() == Y.size() ? beta * 0.5 * (c[i] + c[i + 1]) : 0.5 * (Y[i] + Y[i + 1]);
    for (size_t z = 1; z + 1 < Y.size(); ++z)
      if (Y[z] == 0) {
        b[z - 1] = -0.05;
        b[z] = 0.05;
      }
  }
  QnFunction f = qn_function(Y, 1 / beta, beta, b, true);
  set_theta(f, theta_of(f));  // the k-means midpoints next to the ∓0.05 pair may need pooling into order
  return f;
}

QnFunction qn_fit_points(const WeightedPoints& p, const QnFitParams& fp, const Context* ctx, double* init, double* final_obj) {
  check_fit_params(fp);
  QnFunction f = qn_init(p, fp.levels);
  double S = 0;
  for (size_t i = 0; i < p.size(); ++i) S += p.w[i] * p.x[i] * p.x[i];
  Context one;
  one.threads = 1;
  const Context& c = ctx ? *ctx : one;
  QnFunction f0 = f;
  const double obj0 = S > 0 ? hard_points(p, f0, false) / S : 0;
  if (init) *init = obj0;
  if (S > 0) {
    std::vector<double> th = theta_of(f);
    Adam adam(th.size(), fp.lr);
    for (int e = 0; e < fp.epochs; ++e) {
      const double T = temperature(fp, e);
      for (int s = 0; s < fp.steps; ++s) {
        if (ctx) ctx->check_cancel();
        QnGrad g;
        qn_weighted_sse(p.x.data(), p.w.data(), nullptr, p.size(), f, T, 1 / S, &g, c);
        adam.step(th, grad_of(f, g, fp.learn_biases));
        set_theta(f, th);
      }
      if (ctx && ctx->progress) ctx->progress((double)(e + 1), (double)fp.epochs);
    }
  }
  double obj = S > 0 ? hard_points(p, f, true) / S : 0;
  if (obj > obj0) {  // never worse than the initialisation
    f = f0;
    obj = obj0;
  }
  if (final_obj) *final_obj = obj;
  return f;
}

Quantizer solve_qn(const WeightedPoints& p, const SolverParams& sp) {
  WP_THROW_IF_NOT((int)sp.qn.levels.size() <= sp.k, Argument,
                  "qn: " + std::to_string(sp.qn.levels.size()) + " levels do not fit in 2^bits = " + std::to_string(sp.k) + " codes");
  Context c;
  c.threads = sp.threads;
  if (sp.ctx) {
    c.cancel = sp.ctx->cancel;
    c.progress = sp.ctx->progress;
  }
  return qn_quantizer(qn_fit_points(p, sp.qn, &c));
}

namespace {

// One row's soft forward and output error against H: E = f_T(v) − w, EH = E H; returns E·EH. Scratch of 2m.
double row_error(const float* w, const float* v, size_t m, const float* H, const QnFunction& f, double T, double* E,
                 double* EH, const std::vector<double>* th, const std::vector<double>* u) {
  for (size_t j = 0; j < m; ++j) {
    double y;
    if (th) {
      y = f.alpha * (*u)[code_of(*th, v[j])];
    } else {
      double sum_sd;
      y = qn_point(f, T, v[j], sum_sd, nullptr);
    }
    E[j] = y - (double)w[j];
    EH[j] = 0;
  }
  for (size_t i = 0; i < m; ++i) {
    const double e = E[i];
    if (e == 0) continue;
    const float* Hi = H + i * m;
    for (size_t j = 0; j < m; ++j) EH[j] += e * (double)Hi[j];
  }
  double l = 0;
  for (size_t j = 0; j < m; ++j) l += E[j] * EH[j];
  return l;
}

}  // namespace

void qn_fit_calibrated(const float* W, size_t rows, size_t m, const float* H, size_t rows_per_slice,
                       const QnFitParams& fp, float* V, QnCalibratedResult* res, const Context& ctx) {
  check_fit_params(fp);
  WP_THROW_IF_NOT(rows_per_slice >= 1 && rows % rows_per_slice == 0, Argument, "qn: slices must be whole rows");
  for (size_t i = 0; i < rows * m; ++i)
    WP_THROW_IF_NOT(std::isfinite(W[i]), NonFinite, "weight element " + std::to_string(i) + " is not finite");
  for (size_t i = 0; i < m * m; ++i)
    WP_THROW_IF_NOT(std::isfinite(H[i]), NonFinite, "calibration element " + std::to_string(i) + " is not finite");
  const size_t ns = rows / rows_per_slice, nb = fp.levels.size() - 1;
  std::copy(W, W + rows * m, V);

  // Per slice: the initial function (from the slice's weights), Z = tr(W H Wᵀ), the objective at the start.
  std::vector<QnFunction> f(ns), f0(ns);
  std::vector<double> Z(ns, 0.0), obj0(ns, 0.0), row_val(rows, 0.0);
  parallel_for(ctx, ns, [&](size_t s) {
    WeightedPoints pts;
    summarize_slice(W, Dtype::F32, s * rows_per_slice * m, (s + 1) * rows_per_slice * m, nullptr, pts);
    f[s] = f0[s] = pts.size() ? qn_init(pts, fp.levels) : qn_function(fp.levels, 1, 1, std::vector<double>(nb, 0.0));
  });
  auto hard_rows = [&](const std::vector<QnFunction>& fs, const float* from, bool against_zero) {
    parallel_for(ctx, rows, [&](size_t r) {
      std::vector<double> E(m), EH(m);
      const QnFunction& fr = fs[r / rows_per_slice];
      Quantizer q = qn_quantizer(fr);
      std::vector<double> u = unit_levels(fr);
      if (against_zero) {  // tr(W H Wᵀ): the error of predicting 0
        for (size_t j = 0; j < m; ++j) E[j] = -(double)W[r * m + j];
        double l = 0;
        for (size_t i = 0; i < m; ++i)
          for (size_t j = 0; j < m; ++j) l += E[i] * (double)H[i * m + j] * E[j];
        row_val[r] = l;
        return;
      }
      row_val[r] = row_error(W + r * m, from + r * m, m, H, fr, kQnHard, E.data(), EH.data(), &q.thresholds, &u);
    });
    std::vector<double> out(ns, 0.0);
    for (size_t r = 0; r < rows; ++r) out[r / rows_per_slice] += row_val[r];  // row order
    return out;
  };
  Z = hard_rows(f, W, true);
  obj0 = hard_rows(f0, W, false);
  double Zt = 0, O0 = 0;
  for (size_t s = 0; s < ns; ++s) {
    if (!(Z[s] > 0)) Z[s] = 1;  // a zero slice (or H = 0): any scale; nothing to fit
    Zt += Z[s];
    O0 += obj0[s];
  }
  if (res) {
    res->init_objective = O0 / Zt;
    res->history.clear();
  }

  // Adam state: θ per slice (double), the latent weights' moments (F32).
  std::vector<std::vector<double>> th(ns);
  std::vector<Adam> adam;
  for (size_t s = 0; s < ns; ++s) {
    th[s] = theta_of(f[s]);
    adam.emplace_back(th[s].size(), fp.lr);
  }
  std::vector<float> mV(rows * m, 0.0f), vV(rows * m, 0.0f);
  std::vector<double> pg(rows * (2 + nb), 0.0);  // per-row parameter gradients, merged per slice in row order
  int t = 0;
  for (int e = 0; e < fp.epochs; ++e) {
    const double T = temperature(fp, e);
    double loss = 0;
    for (int st = 0; st < fp.steps; ++st) {
      ++t;
      const double c1 = 1 - std::pow(0.9, t), c2 = 1 - std::pow(0.999, t);
      parallel_for(ctx, rows, [&](size_t r) {
        const size_t s = r / rows_per_slice;
        const QnFunction& fr = f[s];
        std::vector<double> E(m), EH(m), sd(nb);
        float* v = V + r * m;
        row_val[r] = row_error(W + r * m, v, m, H, fr, T, E.data(), EH.data(), nullptr, nullptr) / Z[s];
        double* g = pg.data() + r * (2 + nb);
        std::fill(g, g + 2 + nb, 0.0);
        const double lr_v = fp.lr / fr.beta;  // β x units
        for (size_t j = 0; j < m; ++j) {
          const double gy = 2 * EH[j] / Z[s];
          double sum_sd;
          const double y = qn_point(fr, T, v[j], sum_sd, sd.data());
          qn_param_grad(fr, T, v[j], y, gy, sum_sd, sd.data(), g[0], g[1], g + 2);
          // The latent weight's Adam step (its gradient is its own: rows are independent given θ).
          const double gv = gy * fr.alpha * fr.beta * T * sum_sd;
          const size_t k = r * m + j;
          mV[k] = (float)(0.9 * mV[k] + 0.1 * gv);
          vV[k] = (float)(0.999 * vV[k] + 0.001 * gv * gv);
          v[j] = (float)(v[j] - lr_v * (mV[k] / c1) / (std::sqrt(vV[k] / c2) + 1e-8));
        }
      });
      loss = 0;
      for (size_t s = 0; s < ns; ++s) {
        std::vector<double> g(2 + nb, 0.0);
        double ls = 0;
        for (size_t r = s * rows_per_slice; r < (s + 1) * rows_per_slice; ++r) {
          ls += row_val[r];
          for (size_t i = 0; i < 2 + nb; ++i) g[i] += pg[r * (2 + nb) + i];
        }
        loss += ls * Z[s];
        g[0] *= f[s].alpha;  // to log α, log β
        g[1] *= f[s].beta;
        if (!fp.learn_biases) std::fill(g.begin() + 2, g.end(), 0.0);
        adam[s].step(th[s], g);
        set_theta(f[s], th[s]);
      }
    }
    std::vector<double> o = hard_rows(f, V, false);
    double O = 0;
    for (double x : o) O += x;
    if (res) res->history.push_back({e, T, loss / Zt, O / Zt});
    if (ctx.progress) ctx.progress((double)(e + 1), (double)fp.epochs);
    ctx.check_cancel();
  }

  // α by least squares for the final assignment: α = tr(W H Uᵀ) / tr(U H Uᵀ), U the unit levels of V's codes.
  std::vector<double> num(rows, 0.0);
  parallel_for(ctx, rows, [&](size_t r) {
    const QnFunction& fr = f[r / rows_per_slice];
    Quantizer q = qn_quantizer(fr);
    std::vector<double> u = unit_levels(fr), U(m), UH(m, 0.0);
    for (size_t j = 0; j < m; ++j) U[j] = u[code_of(q.thresholds, V[r * m + j])];
    for (size_t i = 0; i < m; ++i)
      if (U[i] != 0)
        for (size_t j = 0; j < m; ++j) UH[j] += U[i] * (double)H[i * m + j];
    double a = 0, b = 0;
    for (size_t j = 0; j < m; ++j) {
      a += (double)W[r * m + j] * UH[j];
      b += U[j] * UH[j];
    }
    num[r] = a;
    row_val[r] = b;
  });
  for (size_t s = 0; s < ns; ++s) {
    double a = 0, b = 0;
    for (size_t r = s * rows_per_slice; r < (s + 1) * rows_per_slice; ++r) {
      a += num[r];
      b += row_val[r];
    }
    if (a > 0 && b > 0) f[s].alpha = a / b;
  }
  std::vector<double> o = hard_rows(f, V, false);
  double O = 0;
  for (size_t s = 0; s < ns; ++s) {
    if (o[s] > obj0[s]) {  // never worse than the initialisation: back to V = W and the initial function
      f[s] = f0[s];
      o[s] = obj0[s];
      std::copy(W + s * rows_per_slice * m, W + (s + 1) * rows_per_slice * m, V + s * rows_per_slice * m);
    }
    O += o[s];
  }
  if (res) {
    res->functions = f;
    res->objective = O / Zt;
  }
}

}  // namespace wp
