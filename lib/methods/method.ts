/**
 * What a method file (lib/methods/<name>.ts) declares: its entry and its options. TypeScript decides which method
 * runs (checks its options, picks its defaults); the numeric work is a native solver (native/core/solvers/registry.cpp).
 */
import type { NativeSolverParams } from '../native.js';
import { BITS, ENTROPY, type OptionSpec } from './options.js';

/** The options a method's defaults and checks look at. */
export interface MethodOptions {
  bits?: number;
  rate?: number;
  lambda?: number;
  targetValues?: number;
  exact?: boolean;
  importance?: string;
  /** qn: the level set (lib/qn.ts, parseLevels). */
  levels?: string;
}

/** What a method's calibrated fit gets for one tensor (MethodEntry.fitCalibrated). */
export interface CalibratedInput {
  name: string;
  /** The weight as F32, row-major [rows, inFeatures]. */
  w: Float32Array;
  rows: number;
  inFeatures: number;
  /** Rows per slice (one quantizer each): rows (granularity tensor) or 1 (row). */
  rowsPerSlice: number;
  /** The layer inputs' Gram matrix H, [inFeatures, inFeatures]. */
  gram: Float32Array;
  options: NativeOptions;
  threads: number;
  cancel: Int32Array;
  onProgress?: (done: number, total: number) => void;
}

/** A calibrated fit's result: codes are assigned from `assignFrom` with one quantizer per slice. */
export interface CalibratedFit {
  assignFrom: Float32Array;
  /** L levels per slice, concatenated (ascending within a slice). */
  levels: Float64Array;
  /** L - 1 thresholds per slice, concatenated. */
  thresholds: Float64Array;
  /** Recorded in the scheme's params (objective before and after, learned parameters). */
  recorded: Record<string, unknown>;
  /** Per epoch: temperature, soft loss, hard objective. */
  history: { epoch: number; temperature: number; loss: number; objective: number }[];
}

export interface MethodEntry {
  /** Name in the API, the CLI and the file format (MethodName, in lib/methods/registry.ts, is the union of them). */
  name: string;
  /** One line for --help. */
  summary: string;
  /** Where it comes from. */
  paper?: string;
  /** Globally optimal for its objective (tests compare fast paths against these). */
  exact: boolean;
  /**
   * What it minimizes: 'distortion' (squared error, possibly under a rate or count constraint; default: on every
   * slice at least as good as min-max uniform quantization with as many levels); 'penalized' (squared error plus a
   * shrinking penalty on the values, e.g. l1 on their differences: levels are pulled together by design); 'grid'
   * (levels on a fixed pattern, a normal-quantile table or uniform cells at a rate, only scaled or stepped to the
   * slice). The last two may fall below min-max uniform on a given slice.
   */
  objective?: 'distortion' | 'penalized' | 'grid';
  /** Uses `seed`. */
  seeded: boolean;
  /** The native solver that does the work. */
  solver: (o: MethodOptions) => string;
  /** Importance weights: 'required' methods refuse to run without them. */
  importance: 'optional' | 'required';
  /** Reads the calibration file (layer-input Gram matrices, lib/calibration.ts); others refuse one. */
  calibration?: boolean;
  /** The codec that stores its results, when the method needs its own (the vector methods); others use any other. */
  codec?: string;
  /**
   * Codecs that store this method's results only, besides every codec no method owns (uniform: the int codec,
   * whose integer grid is what uniform quantization gives); the other methods refuse them.
   */
  extraCodecs?: readonly string[];
  /** The codec used when the caller names none, for these options (default: the codec option's default). */
  defaultCodec?: (o: { granularity: string }) => string | undefined;
  /** Entropy coding applied unless the caller says otherwise. */
  entropy: 'none' | 'huffman';
  /**
   * The scalar codec's granularity when the caller gives none (default: the option's, 'row'). The ecsq methods take
   * 'tensor': their codebooks hold ceil(rate) + 3 bits of levels, which per row would cost more bits per weight
   * than the rate itself on short rows (issue 16: ecsq --rate 3 wrote 11.97 bits per weight per row).
   */
  granularity?: 'tensor' | 'row';
  /**
   * The method's own defaults for codec options the caller did not give, applied after the codec's (normal-float:
   * F32 codebooks, so that its levels are the F32 values bitsandbytes' NF4 decodes to).
   */
  codecDefaults?: Readonly<Record<string, unknown>>;
  /** Bits per code when the caller gives none. */
  defaultBits: (o: MethodOptions) => number;
  /** A problem with the options, or undefined. */
  check?: (o: MethodOptions) => string | undefined;
  /** The options that shaped a result, as a file's scheme records them under `params` (after `solver`). */
  recordedParams: (o: RecordedOptions) => Record<string, unknown>;
  /** The options the method takes (besides those every method takes: bits, entropy, importance). */
  options: readonly OptionSpec[];
  /**
   * The method's options as its native solver takes them: one object with the options it declares (a compression
   * ratio becomes the rate of a tensor of `dtypeBits` bits per weight, Choi et al.: R = b / C). It crosses N-API as
   * `solverParams` (native/addon/common.cpp, solver_params_of).
   */
  nativeParams: (o: NativeOptions, dtypeBits?: number) => NativeSolverParams;
  /**
   * Methods with `calibration`: fits one tensor against its layer-output error tr((W − Ŵ) H (W − Ŵ)ᵀ) (the scalar
   * codec calls it when the calibration file holds the tensor's Gram matrix; granularity tensor or row).
   */
  fitCalibrated?: (input: CalibratedInput) => Promise<CalibratedFit>;
}

/** The resolved options nativeParams reads. */
export type NativeOptions = Partial<
  Record<'seed' | 'maxIter' | 'lambda' | 'lambda2' | 'targetValues' | 'rate' | 'compressionRatio' | 'bits' | 'tStart' | 'tSlope' | 'epochs' | 'stepsPerEpoch' | 'learningRate', number>
> & {
  symmetric?: boolean;
  step?: 'mse' | 'minmax';
  levels?: string;
  learnBiases?: boolean;
};

/** The rate of a tensor (bits per weight): the option, or its dtype's bits / the compression ratio (Choi et al.). */
export function rateOf(o: Pick<NativeOptions, 'rate' | 'compressionRatio'>, dtypeBits: number): number | undefined {
  if (o.rate !== undefined) return o.rate;
  return o.compressionRatio !== undefined ? Math.min(8, dtypeBits / o.compressionRatio) : undefined;
}

/** The native parameters of a method with these declared options (see MethodEntry.nativeParams). */
function nativeParamsOf(options: readonly OptionSpec[]) {
  const names = new Set<string>(options.map((s) => s.name));
  return (o: NativeOptions, dtypeBits = 32): NativeSolverParams => {
    const out: NativeSolverParams = {};
    for (const k of ['seed', 'maxIter', 'symmetric', 'step', 'lambda', 'lambda2', 'targetValues'] as const)
      if (names.has(k) && o[k] !== undefined) Object.assign(out, { [k]: o[k] });
    if (names.has('rate') || names.has('compressionRatio')) {
      const rate = rateOf(o, dtypeBits);
      if (rate !== undefined) out.rate = rate;
    }
    return out;
  };
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
  imatrix?: string;
  importanceKind: string;
  bits?: number;
  levels?: string;
  tStart?: number;
  tSlope?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  learningRate?: number;
  learnBiases?: boolean;
}

/** Seeded methods record seed and maxIter; then `own` (the method's own options), the rate/penalty options given, the importance kind. */
export function recorder(seeded: boolean, own: (keyof RecordedOptions)[] = []) {
  return (o: RecordedOptions): Record<string, unknown> => {
    const used: Record<string, unknown> = {};
    if (seeded) Object.assign(used, { seed: o.seed, maxIter: o.maxIter });
    for (const k of own) used[k] = o[k];
    for (const k of ['rate', 'compressionRatio', 'lambda', 'lambda2', 'targetValues'] as const) if (o[k] !== undefined) used[k] = o[k];
    if (o.importance !== undefined) used.importance = o.importanceKind;
    else if (o.imatrix !== undefined) used.importance = 'imatrix';
    return used;
  };
}

/**
 * A method's entry. Omitted: importance 'optional', entropy and bits the options' defaults (ENTROPY, BITS),
 * recordedParams the seeded methods' seed and maxIter and the rate/penalty options given, nativeParams the declared
 * options among the shared native keys.
 */
export function defineMethod<N extends string>(
  m: Omit<MethodEntry, 'name' | 'importance' | 'entropy' | 'defaultBits' | 'recordedParams' | 'nativeParams'> & { name: N } & Partial<
      Pick<MethodEntry, 'importance' | 'entropy' | 'defaultBits' | 'recordedParams' | 'nativeParams'>
    >,
): MethodEntry & { name: N } {
  return {
    ...m,
    nativeParams: m.nativeParams ?? nativeParamsOf(m.options),
    importance: m.importance ?? 'optional',
    entropy: m.entropy ?? (ENTROPY.default as 'none'),
    defaultBits: m.defaultBits ?? (() => BITS.default as number),
    recordedParams: m.recordedParams ?? recorder(m.seeded),
  };
}

/** ecsq methods: bits enough for the rate's codes (a rate of 4 when only lambda is given). */
export const rateBits = (o: MethodOptions) => Math.min(8, Math.ceil(o.rate ?? 4) + 3);

/**
 * sparse methods: with a target K, just enough bits for K values; with a lambda, room for what it leaves (the
 * solver refuses more than 2^bits); with neither, 4 bits, and the solver searches for 16 values.
 */
export const sparseBits = (o: MethodOptions) => (o.targetValues ? Math.max(1, Math.ceil(Math.log2(o.targetValues))) : o.lambda !== undefined ? 8 : 4);

/** ecsq methods: a problem when neither a rate (or compression ratio) nor, where allowed, a lambda is given. */
export const needsRate = (name: string, lambdaOk: boolean) => (o: MethodOptions) =>
  o.rate === undefined && !(lambdaOk && o.lambda !== undefined)
    ? `method ${name} needs rate (target bits per weight after entropy coding) or compressionRatio${lambdaOk ? ' or lambda' : ''}`
    : undefined;
