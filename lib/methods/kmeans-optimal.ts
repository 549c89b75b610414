/** kmeans-optimal: exact 1-D k-means by dynamic programming. */
import { defineMethod } from './method.js';

export const kmeansOptimal = defineMethod({
  name: 'kmeans-optimal',
  summary: 'exact, globally optimal weighted 1-D k-means (dynamic programming)',
  exact: true,
  seeded: false,
  solver: () => 'kmeans-optimal',
  options: [],
});
