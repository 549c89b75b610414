#include "registry.h"

#include "kmeans_dp.h"
#include "kmeans_lloyd.h"
#include "uniform.h"

namespace wp {

namespace {

std::vector<double> solve_uniform(const WeightedPoints& p, const SolverParams& sp) {
  UniformParams up;
  up.k = sp.k;
  up.symmetric = sp.symmetric;
  up.step = sp.step;
  return uniform_levels(p, up);
}

std::vector<double> solve_kmeans(const WeightedPoints& p, const SolverParams& sp) {
  LloydParams lp;
  lp.k = sp.k;
  lp.seed = sp.seed;
  lp.max_iter = sp.max_iter;
  return kmeans_lloyd(p, lp);
}

std::vector<double> solve_kmeans_optimal(const WeightedPoints& p, const SolverParams& sp) {
  return kmeans_dp(p, sp.k);
}

constexpr SolverRow kSolvers[] = {
    {"uniform", solve_uniform},
    {"kmeans", solve_kmeans},
    {"kmeans-optimal", solve_kmeans_optimal},
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
