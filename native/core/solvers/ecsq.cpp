#include "ecsq.h"

#include "../error.h"

namespace wp {

Quantizer solve_ecsq_uniform(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "ecsq-uniform is not implemented yet"); }
Quantizer solve_ecsq(const WeightedPoints&, const SolverParams&) { throw Error(Code::Argument, "ecsq is not implemented yet"); }

}  // namespace wp
