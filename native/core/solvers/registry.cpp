#include "registry.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "../error.h"

#include "kmeans_dp.h"
#include "kmeans_lloyd.h"
#include "ecsq.h"
#include "sparse.h"
#include "uniform.h"

namespace wp {

Quantizer solve_normal_float(const WeightedPoints& p, const SolverParams& sp);  // normal_float.cpp
Quantizer solve_qn(const WeightedPoints& p, const SolverParams& sp);            // qn/fit.cpp

namespace {

Quantizer solve_uniform(const WeightedPoints& p, const SolverParams& sp) {
  UniformParams up;
  up.k = sp.k;
  up.symmetric = sp.symmetric;
  up.step = sp.step;
  return {uniform_levels(p, up), {}};
}

Quantizer solve_kmeans(const WeightedPoints& p, const SolverParams& sp) {
  LloydParams lp;
  lp.k = sp.k;
  lp.seed = sp.seed;
  lp.max_iter = sp.max_iter;
  return {kmeans_lloyd(p, lp), {}};
}

Quantizer solve_kmeans_optimal(const WeightedPoints& p, const SolverParams& sp) {
  return {kmeans_dp(p, sp.k, nullptr, sp.threads, sp.dp_bound), {}};
}

constexpr SolverRow kSolvers[] = {
    {"uniform", solve_uniform},
    {"kmeans", solve_kmeans},
    {"kmeans-optimal", solve_kmeans_optimal},
    {"ecsq-uniform", solve_ecsq_uniform},
    {"ecsq", solve_ecsq},
    {"ecsq-dp", solve_ecsq_dp},
    {"sparse-l1", solve_sparse_l1},
    {"sparse-l1l2", solve_sparse_l1l2},
    {"sparse-l0", solve_sparse_l0},
    {"sparse-cluster", solve_sparse_cluster},
    {"normal-float", solve_normal_float},
    {"qn", solve_qn},
};

}  // namespace

const SolverRow* find_solver(const std::string& name) {
  for (const auto& r : kSolvers) if (name == r.name) return &r;
  return nullptr;
}

std::string solver_names() {
  std::string s;
  for (const auto& r : kSolvers) { if (!s.empty()) s += ", "; s += r.name; }
  return s;
}

uint64_t mix_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed ^ (index * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
  return z ^ (z >> 33);
}

int scale_exponent(const WeightedPoints& p, const SolverParams& sp) {
  if (p.size() == 0 || sp.lambda > 0 || sp.lambda2 > 0) return 0;
  const double amax = std::max(std::fabs(p.x.front()), std::fabs(p.x.back()));  // points ascend
  if (!(amax > 0) || !std::isfinite(amax)) return 0;
  int e = 0;
  std::frexp(amax, &e);  // amax = f * 2^e, f in [0.5, 1)
  return e;
}

Quantizer solve_one(const SolverRow& row, const WeightedPoints& p, const SolverParams& sp0, uint64_t index) {
  SolverParams sp = sp0;
  sp.seed = mix_seed(sp0.seed, index);
  return solve_checked(row, p, sp);
}

Quantizer solve_checked(const SolverRow& row, const WeightedPoints& p0, const SolverParams& sp) {
  if (p0.size() == 0) return Quantizer{{0.0}, {}};
  // Solve at unit scale: x / 2^e with max|x| / 2^e in [0.5, 1). Scaling by a power of two is exact, so the levels
  // and thresholds of c*x are exactly c times those of x for any c = 2^j (scale equivariance), and no solver meets
  // squares that underflow or overflow whatever the slice's magnitude.
  const int e = scale_exponent(p0, sp);
  WeightedPoints scaled;
  if (e != 0) {
    scaled.w = p0.w;
    scaled.x.resize(p0.size());
    for (size_t i = 0; i < p0.size(); ++i) scaled.x[i] = std::ldexp(p0.x[i], -e);
  }
  const WeightedPoints& p = e != 0 ? scaled : p0;
  Quantizer q = row.solve(p, sp);
  if (e != 0) {
    for (double& v : q.levels) v = std::ldexp(v, e);
    for (double& v : q.thresholds) v = std::ldexp(v, e);
  }
  std::vector<double>& lv = q.levels;
  if (lv.empty()) lv.push_back(0.0);
  WP_THROW_IF_NOT((int)lv.size() <= sp.k, Argument,
                  "the method produced " + std::to_string(lv.size()) + " levels, more than 2^bits = " + std::to_string(sp.k) +
                      " (raise bits or the penalty)");
  for (double v : lv) WP_THROW_IF_NOT(std::isfinite(v), Internal, "solver returned a non-finite level");
  WP_THROW_IF_NOT(q.thresholds.empty() || q.thresholds.size() + 1 == lv.size(), Internal, "solver returned a wrong threshold count");
  if (q.thresholds.empty()) std::sort(lv.begin(), lv.end());
  WP_THROW_IF_NOT(std::is_sorted(lv.begin(), lv.end()), Internal, "solver returned unsorted levels");
  return q;
}

namespace {

// Weighted squared error of the points under q: each point takes the level of its threshold interval (midpoints
// when q has no thresholds). Points and thresholds are sorted, so one merge-like pass suffices.
double distortion_of(const WeightedPoints& p, const Quantizer& q) {
  const size_t k = q.levels.size();
  double d = 0;
  size_t t = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    while (t + 1 < k && p.x[i] > (q.thresholds.empty() ? 0.5 * (q.levels[t] + q.levels[t + 1]) : q.thresholds[t])) ++t;
    double e = p.x[i] - q.levels[t];
    d += p.w[i] * e * e;
  }
  return d;
}

}  // namespace

void solve_batch(const SolverRow& row, const SolverParams& sp0, const SolveBatch& batch, const Context& ctx) {
  std::atomic<size_t> done{0};
  SolverParams sp = sp0;
  sp.threads = batch.count == 1 ? ctx.thread_count() : 1;  // a lone problem gets every thread for its solve
  sp.ctx = batch.count == 1 ? &ctx : nullptr;              // and the context, for progress within it
  parallel_for(ctx, batch.count, [&](size_t i) {
    WeightedPoints pts;
    batch.problem(i, pts);
    Quantizer q = solve_one(row, pts, sp, i);
    SolveStats st;
    st.levels = (int)q.levels.size();
    if (batch.want_stats) st.distortion = distortion_of(pts, q);
    batch.result(i, q, st);
    size_t d = done.fetch_add(1, std::memory_order_relaxed) + 1;
    if (ctx.progress) ctx.progress((double)d, (double)batch.count);
  });
}

}  // namespace wp
