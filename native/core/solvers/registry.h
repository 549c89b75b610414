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
  int k = 16;                      // number of levels at most (2^bits)
  uint64_t seed = 0;               // per-slice seed (the caller mixes in the slice index)
  int max_iter = 1000;             // iterative solvers
  bool symmetric = false;          // uniform
  UniformStep step = UniformStep::Mse;  // uniform
  double lambda = 0;               // sparse-*: the penalty weight; ecsq: the Lagrange multiplier (0 = search)
  double lambda2 = 0;              // sparse-l1l2: the l2 weight
  int target_values = 0;           // sparse-*: search the penalty until this many distinct values (0 = off)
  double rate = 0;                 // ecsq*: target entropy of the codes in bits per weight (0 = off)
  int threads = 1;                 // threads one solve may use (the pipeline gives them to a lone large slice)
};

// What a solver returns: the levels, ascending, and optionally the k-1 decision thresholds between them
// (value x gets level t when thresholds[t-1] < x <= thresholds[t]). Without thresholds, the midpoints between
// adjacent levels are used: nearest-level assignment.
struct Quantizer {
  std::vector<double> levels;
  std::vector<double> thresholds;
};

using SolveFn = Quantizer (*)(const WeightedPoints&, const SolverParams&);

struct SolverRow {
  const char* name;
  SolveFn solve;
};

// Null when the name is unknown.
const SolverRow* find_solver(const std::string& name);
// Every registered name, for error messages.
std::string solver_names();

}  // namespace wp
