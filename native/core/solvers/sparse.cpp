#include "sparse.h"

#include "../error.h"

namespace wp {

// Placeholders until the sparse solvers land.
Quantizer solve_sparse_l1(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "sparse-l1 is not implemented yet"); }
Quantizer solve_sparse_l1l2(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "sparse-l1l2 is not implemented yet"); }
Quantizer solve_sparse_l0(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "sparse-l0 is not implemented yet"); }
Quantizer solve_sparse_cluster(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "sparse-cluster is not implemented yet"); }

}  // namespace wp
