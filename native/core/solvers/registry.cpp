#include "registry.h"

#include "kmeans_dp.h"
#include "kmeans_lloyd.h"
#include "ecsq.h"
#include "sparse.h"
#include "uniform.h"

namespace wp {

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
  return {kmeans_dp(p, sp.k, nullptr, sp.threads), {}};
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

}  // namespace wp
