/**
 * Options as data. Each option of quantize() is declared once, here or next to what owns it: a method's own
 * options in lib/methods/<name>.ts, the options several methods share below, a codec's options in its file under
 * lib/codecs/, the job's in lib/validate.ts. Validation, defaults, the CLI flags and `quantize --help` are derived
 * from these declarations (lib/validate.ts, lib/cli.ts).
 */
import type { QuantizeOptions } from '../validate.js';

/** The keys of QuantizeOptions that are declared options (all but the run's callbacks). */
export type OptionName = Exclude<keyof QuantizeOptions, 'signal' | 'onProgress'>;

export interface OptionSpec {
  /** The API key (camelCase). */
  name: OptionName;
  /**
   * int (min..max inclusive), intOrAuto (an int, or 'auto'), number (positive; optional min/max), boolean, enum (one of `values`), string,
   * strings (a string or an array of name patterns; a repeatable flag), size (bytes, or "500MB"), doubleQuant
   * ({bits, superBlock} or false).
   */
  type: 'int' | 'intOrAuto' | 'number' | 'boolean' | 'enum' | 'string' | 'strings' | 'size' | 'doubleQuant';
  /** enum: the values. */
  values?: readonly string[];
  /** The value when the option is omitted; absent: none (the option is then undefined). */
  default?: unknown;
  /** --help's wording of the default, where the plain value would not say it (e.g. a method's own default). */
  defaultDoc?: string;
  /** What a number counts ("bits per weight"), or what a string names ("file path"). */
  unit?: string;
  /** int: the range, inclusive; number: bounds besides being positive. */
  min?: number;
  max?: number;
  /** One line for --help. */
  doc: string;
  /** The CLI flag (kebab-case, e.g. --max-iter). */
  flag: string;
  /** --help's name of the flag's value (e.g. N); absent for a flag without a value. */
  metavar?: string;
  /** A flag without a value that sets the option to this value (e.g. --lloyd sets exact to false). */
  flagSets?: unknown;
  /** The option's value for the flag's text, where it is not the text itself or a plain int/number. */
  parseFlag?: (text: string) => unknown;
  /** More flags that set the option to a fixed value (e.g. --huffman); the main flag wins when both are given. */
  aliases?: readonly { flag: string; sets: unknown; doc: string }[];
  /**
   * Accepted with the methods that declare it only (e.g. lambda2 with sparse-l1l2); this names them in the
   * message. Absent: the option belongs to the methods that declare it, but is ignored by the others.
   */
  only?: string;
  /** Options that cannot be given together with this one. */
  excludes?: readonly OptionName[];
  /** The option is deprecated or spelled differently in places; --help says so after the doc. */
  note?: string;
}

/** Declares an option (the identity; it checks the declaration's type). */
export const option = (o: OptionSpec): OptionSpec => o;

/** --help's wording of an option's default (undefined: the option has none). */
export function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc;
  if (spec.default === undefined) return undefined;
  // A flag without a value: is the default what the flag sets?
  if (!spec.metavar) return spec.default === (spec.flagSets ?? true) ? 'on' : 'off';
  return String(spec.default);
}

// ---- Options every method takes; a method may give its own default (MethodEntry.defaultBits, .entropy) ----

export const BITS = option({
  name: 'bits', type: 'int', min: 1, max: 8, default: 4, defaultDoc: "the method's: 4, ecsq: ceil(rate) + 3, sparse: enough for --target-values",
  doc: 'bits per code: 2^bits levels per slice', flag: '--bits', metavar: 'N',
});

export const ENTROPY = option({
  name: 'entropy', type: 'enum', values: ['none', 'huffman', 'ans'], default: 'none', defaultDoc: "the method's: huffman for ecsq methods, else none",
  doc: 'entropy-code the codes', flag: '--entropy', metavar: 'C',
  aliases: [{ flag: '--huffman', sets: 'huffman', doc: 'short for --entropy huffman' }],
});

// ---- Options several methods share ----

export const SEED = option({
  name: 'seed', type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0,
  doc: "seed of the seeded methods (k-means++ seeding of Lloyd's)", flag: '--seed', metavar: 'N',
});

export const MAX_ITER = option({
  name: 'maxIter', type: 'int', min: 1, max: 1e7, default: 1000, unit: 'iterations',
  doc: 'iterations at most (Lloyd; ecsq: at most 200 of them)', flag: '--max-iter', metavar: 'N',
});

export const RATE = option({
  name: 'rate', type: 'number', max: 8, unit: 'bits per weight',
  doc: 'target entropy of the codes: average bits per weight after entropy coding', flag: '--rate', metavar: 'BITS',
});

export const COMPRESSION_RATIO = option({
  name: 'compressionRatio', type: 'number', min: 1, only: 'the ecsq methods', excludes: ['rate'],
  doc: "instead of --rate: the compression ratio C against the original dtype; each tensor's rate is its dtype's bits / C",
  flag: '--compression-ratio', metavar: 'C',
});

export const LAMBDA = option({
  name: 'lambda', type: 'number',
  doc: 'sparse methods: the penalty weight; ecsq: the Lagrange multiplier (instead of --rate)', flag: '--lambda', metavar: 'X',
});

export const TARGET_VALUES = option({
  name: 'targetValues', type: 'int', min: 1, max: 256, only: 'the sparse methods', unit: 'values',
  doc: 'search the penalty until this many distinct values per slice', flag: '--target-values', metavar: 'K',
});
