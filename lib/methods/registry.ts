/**
 * The methods weightpress knows, one entry each. TypeScript decides which method runs (and checks its
 * options); the numeric work is the native solver of the same name (native/core/solvers/registry.cpp).
 */
export interface MethodEntry {
  /** Name in the API, the CLI and the file format. */
  name: string;
  /** One line for --help. */
  summary: string;
  /** Globally optimal for its objective (tests compare fast paths against these). */
  exact: boolean;
  /** Uses `seed`. */
  seeded: boolean;
  /** Name of the native solver that does the work. */
  solver: string;
}

export const METHODS: readonly MethodEntry[] = [
  {
    name: 'uniform',
    summary: 'evenly spaced levels: min-max or MSE-optimal step, symmetric or asymmetric',
    exact: false,
    seeded: false,
    solver: 'uniform',
  },
  {
    name: 'kmeans',
    summary: "Lloyd's k-means with k-means++ seeding (seeded, deterministic)",
    exact: false,
    seeded: true,
    solver: 'kmeans',
  },
  {
    name: 'kmeans-optimal',
    summary: 'exact, globally optimal weighted 1-D k-means (dynamic programming with SMAWK, O(k*n))',
    exact: true,
    seeded: false,
    solver: 'kmeans-optimal',
  },
];

export type MethodName = 'uniform' | 'kmeans' | 'kmeans-optimal';

export function findMethod(name: string): MethodEntry | undefined {
  return METHODS.find((m) => m.name === name);
}
