/**
 * The methods weightpress knows, one entry each. TypeScript decides which method runs (checks its options,
 * picks its defaults); the numeric work is a native solver (native/core/solvers/registry.cpp).
 */
export type MethodName =
  | 'uniform'
  | 'kmeans'
  | 'kmeans-optimal'
  | 'hessian-kmeans'
  | 'ecsq-uniform'
  | 'ecsq'
  | 'sparse-l1'
  | 'sparse-l1l2'
  | 'sparse-l0'
  | 'sparse-cluster';

/** The options a method's defaults and checks look at. */
export interface MethodOptions {
  bits?: number;
  rate?: number;
  lambda?: number;
  targetValues?: number;
  exact?: boolean;
  importance?: string;
}

export interface MethodEntry {
  /** Name in the API, the CLI and the file format. */
  name: MethodName;
  /** One line for --help. */
  summary: string;
  /** Where it comes from. */
  paper?: string;
  /** Globally optimal for its objective (tests compare fast paths against these). */
  exact: boolean;
  /** Uses `seed`. */
  seeded: boolean;
  /** The native solver that does the work. */
  solver: (o: MethodOptions) => string;
  /** Importance weights: 'required' methods refuse to run without them. */
  importance: 'optional' | 'required';
  /** Entropy coding applied unless the caller says otherwise. */
  entropy: 'none' | 'huffman';
  /** Bits per code when the caller gives none. */
  defaultBits: (o: MethodOptions) => number;
  /** A problem with the options, or undefined. */
  check?: (o: MethodOptions) => string | undefined;
  /** The options that shaped a result, as a file's scheme records them under `params` (after `solver`). */
  recordedParams: (o: RecordedOptions) => Record<string, unknown>;
}

/** The resolved options recordedParams reads. */
export interface RecordedOptions {
  seed: number;
  maxIter: number;
  symmetric: boolean;
  step: string;
  rate?: number;
  compressionRatio?: number;
  lambda?: number;
  lambda2?: number;
  targetValues?: number;
  importance?: string;
  importanceKind: string;
}

/** Seeded methods record seed and maxIter; then `own` (the method's own options), the rate/penalty options given, the importance kind. */
function recorder(seeded: boolean, own: (keyof RecordedOptions)[] = []) {
  return (o: RecordedOptions): Record<string, unknown> => {
    const used: Record<string, unknown> = {};
    if (seeded) Object.assign(used, { seed: o.seed, maxIter: o.maxIter });
    for (const k of own) used[k] = o[k];
    for (const k of ['rate', 'compressionRatio', 'lambda', 'lambda2', 'targetValues'] as const) if (o[k] !== undefined) used[k] = o[k];
    if (o.importance !== undefined) used.importance = o.importanceKind;
    return used;
  };
}

const four = () => 4;
const rateBits = (o: MethodOptions) => Math.min(8, Math.ceil(o.rate ?? 4) + 3);
// With a target K: just enough bits for K values; with a lambda: room for what it leaves (the solver refuses more
// than 2^bits); with neither: 4 bits, and the solver searches for 16 values.
const sparseBits = (o: MethodOptions) => (o.targetValues ? Math.max(1, Math.ceil(Math.log2(o.targetValues))) : o.lambda !== undefined ? 8 : 4);
const needsRate = (name: string, lambdaOk: boolean) => (o: MethodOptions) =>
  o.rate === undefined && !(lambdaOk && o.lambda !== undefined)
    ? `method ${name} needs rate (target bits per weight after entropy coding) or compressionRatio${lambdaOk ? ' or lambda' : ''}`
    : undefined;

export const METHODS: readonly MethodEntry[] = [
  {
    name: 'uniform', summary: 'evenly spaced levels: min-max or MSE-optimal step, symmetric or asymmetric',
    exact: false, seeded: false, solver: () => 'uniform', importance: 'optional', entropy: 'none', defaultBits: four,
    recordedParams: recorder(false, ['symmetric', 'step']),
  },
  {
    name: 'kmeans', summary: "Lloyd's k-means with k-means++ seeding (seeded, deterministic)",
    exact: false, seeded: true, solver: () => 'kmeans', importance: 'optional', entropy: 'none', defaultBits: four,
    recordedParams: recorder(true),
  },
  {
    name: 'kmeans-optimal', summary: 'exact, globally optimal weighted 1-D k-means (dynamic programming)',
    exact: true, seeded: false, solver: () => 'kmeans-optimal', importance: 'optional', entropy: 'none', defaultBits: four,
    recordedParams: recorder(false),
  },
  {
    name: 'hessian-kmeans', summary: 'Hessian-weighted k-means (Choi et al. 2017): exact DP, or Lloyd with exact: false',
    paper: 'Choi, El-Khamy & Lee, Towards the Limit of Network Quantization, ICLR 2017, Eq. 8',
    exact: true, seeded: true, solver: (o) => (o.exact === false ? 'kmeans' : 'kmeans-optimal'), importance: 'required',
    entropy: 'none', defaultBits: four,
    recordedParams: recorder(true),
  },
  {
    name: 'ecsq-uniform', summary: 'entropy-constrained: uniform thresholds, weighted-mean levels, step searched to hit rate; Huffman-coded',
    paper: 'Choi et al. 2017, §4 (a); Gish & Pierce 1968',
    exact: false, seeded: false, solver: () => 'ecsq-uniform', importance: 'optional', entropy: 'huffman', defaultBits: rateBits,
    check: needsRate('ecsq-uniform', false),
    recordedParams: recorder(false),
  },
  {
    name: 'ecsq', summary: 'iterative Lloyd-like ECSQ, lambda searched to hit rate, seeded by the exact segment DP; Huffman-coded',
    paper: 'Choi et al. 2017, §4 (b); Chou, Lookabaugh & Gray 1989',
    exact: false, seeded: false, solver: () => 'ecsq', importance: 'optional', entropy: 'huffman', defaultBits: rateBits,
    check: needsRate('ecsq', true),
    recordedParams: recorder(false),
  },
  {
    name: 'sparse-l1', summary: 'sparse least squares, l1 penalty (weighted 1-D TV on sorted values, exact)',
    paper: 'Wang et al., Scalar Quantization as Sparse Least Square Optimization, TPAMI 2019',
    exact: true, seeded: false, solver: () => 'sparse-l1', importance: 'optional', entropy: 'none', defaultBits: sparseBits,
    recordedParams: recorder(false),
  },
  {
    name: 'sparse-l1l2', summary: 'sparse least squares, l1 + l2 (elastic net) penalty',
    paper: 'Wang et al. 2019', exact: true, seeded: false, solver: () => 'sparse-l1l2', importance: 'optional', entropy: 'none',
    defaultBits: sparseBits,
    recordedParams: recorder(false),
  },
  {
    name: 'sparse-l0', summary: 'sparse least squares, l0 penalty (1-D Potts, exact DP)',
    paper: 'Wang et al. 2019', exact: true, seeded: false, solver: () => 'sparse-l0', importance: 'optional', entropy: 'none',
    defaultBits: sparseBits,
    recordedParams: recorder(false),
  },
  {
    name: 'sparse-cluster', summary: 'sparse least squares, clustering-based method (an improved k-means)',
    paper: 'Wang et al. 2019', exact: false, seeded: false, solver: () => 'sparse-cluster', importance: 'optional', entropy: 'none',
    defaultBits: sparseBits,
    recordedParams: recorder(false),
  },
];

export function findMethod(name: string): MethodEntry | undefined {
  return METHODS.find((m) => m.name === name);
}
