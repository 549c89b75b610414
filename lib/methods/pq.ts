/** pq: product quantization, one codebook of K codewords for the M-weight subvectors of a tensor (lib/codecs/vector.ts). */
import { defineMethod, recorder } from './method.js';
import { RATE, SEED, option } from './options.js';

export const ITERATIONS = option({
  name: 'iterations', type: 'int', min: 0, max: 100000, default: 20, unit: 'iterations',
  doc: "Lloyd iterations of the subvectors' k-means at most (k-means++ seeding first)", flag: '--iterations', metavar: 'N',
});

/** The vector methods take --centroids, not --bits. */
export const noBits = (name: string) => (o: { bits?: number }) =>
  o.bits !== undefined ? `method ${name} sets its index bits from centroids (ceil(log2 K)); give centroids, not bits` : undefined;

export const pq = defineMethod({
  name: 'pq',
  summary: 'product quantization: k-means codebook of K codewords for subvectors of M weights (weighted by importance; calibration: layer-output error)',
  paper: 'Jégou, Douze & Schmid, Product Quantization for Nearest Neighbor Search, TPAMI 2011; Gong et al., Compressing Deep Convolutional Networks using Vector Quantization, 2014',
  exact: false,
  seeded: true,
  codec: 'vector',
  calibration: true,
  solver: () => 'pq',
  check: noBits('pq'),
  recordedParams: (o) => ({ ...recorder(false)(o), seed: o.seed, iterations: (o as { iterations?: number }).iterations }),
  options: [SEED, ITERATIONS, RATE],
});
