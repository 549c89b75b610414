// The scalar solvers, one row each: a name (as the TypeScript registry and the file format spell it) and a
// function from WeightedPoints to levels. Adding a scalar method is adding a row here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../summarize.h"
#include "uniform.h"

namespace wp {

struct SolverParams {
  int k = 16;                      // number of levels (2^bits)
  uint64_t seed = 0;               // per-slice seed (the caller mixes in the slice index)
  int max_iter = 1000;             // iterative solvers
  bool symmetric = false;          // uniform
  UniformStep step = UniformStep::Mse;  // uniform
};

using SolveFn = std::vector<double> (*)(const WeightedPoints&, const SolverParams&);

struct SolverRow {
  const char* name;
  SolveFn solve;
};

// Null when the name is unknown.
const SolverRow* find_solver(const std::string& name);
// Every registered name, for error messages.
std::string solver_names();

}  // namespace wp
