/** sparse-l0: sparse least squares with an l0 penalty (1-D Potts; Wang et al. 2019). */
import { defineMethod, sparseBits } from './method.js';
import { LAMBDA, TARGET_VALUES } from './options.js';

export const sparseL0 = defineMethod({
  name: 'sparse-l0',
  summary: 'sparse least squares, l0 penalty (1-D Potts, exact DP)',
  paper: 'Wang et al. 2019',
  exact: true,
  seeded: false,
  solver: () => 'sparse-l0',
  defaultBits: sparseBits,
  options: [LAMBDA, TARGET_VALUES],
});
