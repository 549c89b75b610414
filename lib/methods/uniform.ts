/** uniform: evenly spaced levels, min-max or MSE-optimal step, symmetric or asymmetric (per group: the int codec). */
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
  // The int codec stores uniform grids as integer codes with a scale (and zero point) per group; per group it is
  // the default: 4.125 bits per weight at 4 bits and groups of 128 (F16 scales), where a 16-entry codebook per
  // group took 8 (bench/RESULTS.md, "Integer group format").
  extraCodecs: ['int'],
  defaultCodec: (o) => (o.granularity === 'group' ? 'int' : undefined),
});
