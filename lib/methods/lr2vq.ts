/** lr2vq: LR²VQ, subvectors projected to dk < M principal directions, clustered there, decoded through the projection. */
import { defineMethod, recorder } from './method.js';
import { RATE, SEED, option } from './options.js';
import { ITERATIONS, noBits } from './pq.js';

export const RANK = option({
  name: 'rank', type: 'intOrAuto', min: 1, max: 16, default: 'auto', unit: 'dimensions',
  doc: "the projection's rank dk (at most --subvector), or auto: the dk with the least low-rank + clustering error, estimated before clustering",
  flag: '--rank', metavar: 'D|auto',
});

export const lr2vq = defineMethod({
  name: 'lr2vq',
  summary: "LR²VQ: subvectors projected onto their dk principal directions, k-means there, decoded through the projection (rank 'auto' estimates dk)",
  paper: 'Zhu, Zhou & Zhong, Learning Low-Rank Representations for Model Compression, IJCNN 2023 (arXiv 2211.11397)',
  exact: false,
  seeded: true,
  codec: 'vector',
  calibration: true,
  solver: () => 'lr2vq',
  check: noBits('lr2vq'),
  recordedParams: (o) => ({ ...recorder(false)(o), seed: o.seed, iterations: (o as { iterations?: number }).iterations, rank: (o as { rank?: unknown }).rank }),
  options: [SEED, ITERATIONS, RANK, RATE],
});
