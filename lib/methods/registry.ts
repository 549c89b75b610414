/**
 * The methods weightpress knows: one file each (lib/methods/<name>.ts) declares the method's entry and its
 * options; the options several methods share are declared once in lib/methods/options.ts.
 */
import { ecsq } from './ecsq.js';
import { ecsqUniform } from './ecsq-uniform.js';
import { hessianKmeans } from './hessian-kmeans.js';
import { kmeans } from './kmeans.js';
import { kmeansOptimal } from './kmeans-optimal.js';
import { lr2vq } from './lr2vq.js';
import { normalFloat } from './normal-float.js';
import { qn } from './qn.js';
import type { MethodEntry } from './method.js';
import type { OptionSpec } from './options.js';
import { pq } from './pq.js';
import { sparseCluster } from './sparse-cluster.js';
import { sparseL0 } from './sparse-l0.js';
import { sparseL1 } from './sparse-l1.js';
import { sparseL1l2 } from './sparse-l1l2.js';
import { uniform } from './uniform.js';

export type { CalibratedFit, CalibratedInput, MethodEntry, MethodOptions, RecordedOptions } from './method.js';

export const METHODS = [uniform, kmeans, kmeansOptimal, hessianKmeans, ecsqUniform, ecsq, sparseL1, sparseL1l2, sparseL0, sparseCluster, normalFloat, qn, pq, lr2vq] as const satisfies readonly MethodEntry[];

/** The methods' names, as the API, the CLI and the file format spell them. */
export type MethodName = (typeof METHODS)[number]['name'];

export function findMethod(name: string): MethodEntry | undefined {
  return (METHODS as readonly MethodEntry[]).find((m) => m.name === name);
}

/** Every method option once (an option several methods take is one declaration), with the methods that take it. */
export const METHOD_OPTIONS: readonly { spec: OptionSpec; methods: MethodEntry[] }[] = (() => {
  const out: { spec: OptionSpec; methods: MethodEntry[] }[] = [];
  for (const m of METHODS)
    for (const spec of m.options) {
      const row = out.find((r) => r.spec === spec);
      if (row) row.methods.push(m);
      else out.push({ spec, methods: [m] });
    }
  return out;
})();

/**
 * The codecs that can store a method's results: its own codec when it has one (the vector methods), else every
 * quantizing codec that no method owns, and its extraCodecs (uniform: int).
 */
export function codecsFor(method: MethodEntry, quantizing: readonly string[]): string[] {
  if (method.codec !== undefined) return [method.codec];
  const owned = new Set((METHODS as readonly MethodEntry[]).flatMap((m) => [m.codec, ...(m.extraCodecs ?? [])]).filter((c) => c !== undefined));
  return quantizing.filter((c) => !owned.has(c) || (method.extraCodecs ?? []).includes(c));
}
