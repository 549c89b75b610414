/** ecsq-uniform: entropy-constrained scalar quantization with uniform thresholds. */
import { defineMethod, needsRate, rateBits } from './method.js';
import { COMPRESSION_RATIO, RATE } from './options.js';

export const ecsqUniform = defineMethod({
  name: 'ecsq-uniform',
  summary: 'entropy-constrained: uniform thresholds, weighted-mean levels, step searched to hit rate; Huffman-coded',
  paper: 'Choi et al. 2017, §4 (a); Gish & Pierce 1968',
  exact: false,
  objective: 'grid',
  seeded: false,
  solver: () => 'ecsq-uniform',
  entropy: 'huffman',
  granularity: 'tensor',
  defaultBits: rateBits,
  check: needsRate('ecsq-uniform', false),
  options: [RATE, COMPRESSION_RATIO],
});
