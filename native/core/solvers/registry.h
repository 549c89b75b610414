// The scalar solvers, one row each: a name (as the TypeScript registry and the file format spell it) and a
// function from WeightedPoints to levels. Adding a scalar method is adding a row here.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../context.h"

#include "../qn/params.h"
#include "../summarize.h"
#include "uniform.h"

namespace wp {

enum class SparsePenalty { Standardized, Uniform };
enum class SparseL0Algo { Monge, Pelt, Naive };

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
  // Algorithm switches for tests and benches (results are equal up to rounding; docs/SPARSE.md):
  SparsePenalty sparse_penalty = SparsePenalty::Standardized;  // sparse-l1/l1l2: jump weights (standardized A) or 1
  SparseL0Algo l0_algo = SparseL0Algo::Monge;  // sparse-l0: the DP's row-minima search
  bool dp_bound = true;            // kmeans-optimal: start each scan at the previous layer's argmin (Knuth-style)
  QnFitParams qn;                  // qn: the level set and the fit's schedule
  // A lone problem's context (solve_batch sets it when the batch has one problem): long solvers report progress
  // and check cancellation through it. Null otherwise.
  const Context* ctx = nullptr;
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

// The seed of problem `index` of a batch: a fixed mix of the caller's seed and the index (splitmix64 finalizer),
// so that results do not depend on which thread solves which problem.
uint64_t mix_seed(uint64_t seed, uint64_t index);

// The power of two solve_one divides a problem by: e with max|x| = f * 2^e, f in [0.5, 1); 0 when a penalty
// (lambda, lambda2) is given, whose units are those of the data.
int scale_exponent(const WeightedPoints& p, const SolverParams& sp);

// Solves one problem as every caller must: the points divided by 2^scale_exponent (exact; the result is scaled
// back, so it is scale-equivariant under powers of two), seed mixed with `index`, k = sp.k; an empty problem gives the one level
// 0; the result is checked (at most k finite levels; levels without thresholds are sorted ascending; thresholds,
// when given, one fewer than the levels and the levels ascending). Throws Error(Argument) for too many levels
// (the method's options ask for more than 2^bits) and Error(Internal) for a broken result.
Quantizer solve_one(const SolverRow& row, const WeightedPoints& p, const SolverParams& sp, uint64_t index);
// solve_one without the seed mixing (sp.seed as given): one problem on its own (the solve API, a network's codebook).
Quantizer solve_checked(const SolverRow& row, const WeightedPoints& p, const SolverParams& sp);

// Per-problem statistics of a batch.
struct SolveStats {
  int levels = 0;           // distinct levels returned
  double distortion = 0;    // weighted squared error of the problem's points under the result (want_stats)
};

// A batch of independent 1-D problems solved with one parameter set, as faiss's Clustering takes parameters and
// reports statistics. Problems are made and consumed on worker threads, one at a time per thread, so a batch over
// every row of a large tensor never holds all their summaries at once; a GPU backend may take them all at once.
struct SolveBatch {
  size_t count = 0;
  std::function<void(size_t, WeightedPoints&)> problem;                     // fills problem i (may throw)
  std::function<void(size_t, Quantizer&, const SolveStats&)> result;        // takes problem i's solution
  bool want_stats = false;                                                  // fill SolveStats::distortion
};

// Solves every problem of the batch on ctx's threads (a lone problem gets them all for its own solve), problem i
// with solve_one(row, ·, sp, i). Calls ctx.progress(done, count) after each problem (from worker threads) and
// stops with Error(Cancelled) when ctx's cancel flag is set. The results do not depend on the thread count.
void solve_batch(const SolverRow& row, const SolverParams& sp, const SolveBatch& batch, const Context& ctx);

}  // namespace wp
