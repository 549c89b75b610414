/** hessian-kmeans: Hessian-weighted k-means (Choi et al. 2017), exact DP or Lloyd's. */
import { defineMethod } from './method.js';
import { MAX_ITER, SEED, option } from './options.js';

export const EXACT = option({
  name: 'exact', type: 'boolean', default: true,
  doc: "Lloyd's instead of the exact DP (API: exact: false)", flag: '--lloyd', flagSets: false,
});

export const hessianKmeans = defineMethod({
  name: 'hessian-kmeans',
  summary: 'Hessian-weighted k-means (Choi et al. 2017): exact DP, or Lloyd with exact: false',
  paper: 'Choi, El-Khamy & Lee, Towards the Limit of Network Quantization, ICLR 2017, Eq. 8',
  exact: true,
  seeded: true,
  solver: (o) => (o.exact === false ? 'kmeans' : 'kmeans-optimal'),
  importance: 'required',
  options: [EXACT, SEED, MAX_ITER],
});
