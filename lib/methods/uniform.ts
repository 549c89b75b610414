/** uniform: evenly spaced levels, min-max or MSE-optimal step, symmetric or asymmetric. */
import { defineMethod, recorder } from './method.js';
import { option } from './options.js';

export const SYMMETRIC = option({
  name: 'symmetric', type: 'boolean', default: false,
  doc: 'levels symmetric about zero', flag: '--symmetric',
});

export const STEP = option({
  name: 'step', type: 'enum', values: ['mse', 'minmax'], default: 'mse',
  doc: "'mse' searches the step with the least squared error, 'minmax' spans the range", flag: '--step', metavar: 'S',
});

export const uniform = defineMethod({
  name: 'uniform',
  summary: 'evenly spaced levels: min-max or MSE-optimal step, symmetric or asymmetric',
  exact: false,
  seeded: false,
  solver: () => 'uniform',
  recordedParams: recorder(false, ['symmetric', 'step']),
  options: [SYMMETRIC, STEP],
});
