/** ecsq: iterative Lloyd-like entropy-constrained scalar quantization. */
import { defineMethod, needsRate, rateBits } from './method.js';
import { COMPRESSION_RATIO, LAMBDA, MAX_ITER, RATE } from './options.js';

export const ecsq = defineMethod({
  name: 'ecsq',
  summary: 'iterative Lloyd-like ECSQ, lambda searched to hit rate, seeded by the exact segment DP; Huffman-coded',
  paper: 'Choi et al. 2017, §4 (b); Chou, Lookabaugh & Gray 1989',
  exact: false,
  seeded: false,
  solver: () => 'ecsq',
  entropy: 'huffman',
  granularity: 'tensor',
  defaultBits: rateBits,
  check: needsRate('ecsq', true),
  options: [RATE, COMPRESSION_RATIO, LAMBDA, MAX_ITER],
});
