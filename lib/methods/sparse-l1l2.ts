/** sparse-l1l2: sparse least squares with an l1 + l2 (elastic net) penalty (Wang et al. 2019). */
import { defineMethod, sparseBits } from './method.js';
import { LAMBDA, TARGET_VALUES, option } from './options.js';

export const LAMBDA2 = option({
  name: 'lambda2', type: 'number', only: 'sparse-l1l2',
  doc: 'the l2 weight', flag: '--lambda2', metavar: 'X',
});

export const sparseL1l2 = defineMethod({
  name: 'sparse-l1l2',
  summary: 'sparse least squares, l1 + l2 (elastic net) penalty',
  paper: 'Wang et al. 2019',
  exact: true,
  objective: 'penalized',
  seeded: false,
  solver: () => 'sparse-l1l2',
  defaultBits: sparseBits,
  options: [LAMBDA, LAMBDA2, TARGET_VALUES],
});
