/** sparse-cluster: sparse least squares by clustering (an improved k-means; Wang et al. 2019). */
import { defineMethod, sparseBits } from './method.js';
import { LAMBDA, MAX_ITER, TARGET_VALUES } from './options.js';

export const sparseCluster = defineMethod({
  name: 'sparse-cluster',
  summary: 'sparse least squares, clustering-based method (an improved k-means)',
  paper: 'Wang et al. 2019',
  exact: false,
  // Deterministic (divisive splitting, no seed); maxIter bounds its refinement.
  seeded: false,
  solver: () => 'sparse-cluster',
  defaultBits: sparseBits,
  options: [LAMBDA, TARGET_VALUES, MAX_ITER],
});
