/** sparse-l1: sparse least squares with an l1 penalty (Wang et al. 2019). */
import { defineMethod, sparseBits } from './method.js';
import { LAMBDA, TARGET_VALUES } from './options.js';

export const sparseL1 = defineMethod({
  name: 'sparse-l1',
  summary: 'sparse least squares, l1 penalty (weighted 1-D TV on sorted values, exact)',
  paper: 'Wang et al., Scalar Quantization as Sparse Least Square Optimization, TPAMI 2019',
  exact: true,
  objective: 'penalized',
  seeded: false,
  solver: () => 'sparse-l1',
  defaultBits: sparseBits,
  options: [LAMBDA, TARGET_VALUES],
});
