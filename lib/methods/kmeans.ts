/** kmeans: Lloyd's k-means with k-means++ seeding. */
import { defineMethod } from './method.js';
import { MAX_ITER, SEED } from './options.js';

export const kmeans = defineMethod({
  name: 'kmeans',
  summary: "Lloyd's k-means with k-means++ seeding (seeded, deterministic)",
  exact: false,
  seeded: true,
  solver: () => 'kmeans',
  options: [SEED, MAX_ITER],
});
