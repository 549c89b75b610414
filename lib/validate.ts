/**
 * Option checks shared by the API and the CLI, derived from the options' declarations (lib/methods/options.ts:
 * the job's below, the codecs' in lib/codecs/, the methods' in lib/methods/): one message shape, unknown keys
 * rejected, each default in one place. Every failure is an ArgumentError naming the option.
 */
import { ArgumentError } from './errors.js';
import { GRANULARITY } from './codecs/scalar.js';
import type { TaskOptions } from './codecs/codec.js';
import { CODECS, QUANTIZING_CODECS, type QuantizingCodecName } from './codecs/registry.js';
import { BITS, ENTROPY, option, type OptionName, type OptionSpec } from './methods/options.js';
import { METHOD_OPTIONS, METHODS, findMethod, type MethodEntry, type MethodName } from './methods/registry.js';
import { DEFAULT_MAX_SHARD_SIZE, parseSize } from './shards.js';
import { budgetRefusal } from './budget.js';
import { PRESETS, resolveRecipe, ruleLabel, type Recipe, type ResolvedRecipe } from './recipe.js';

export type Granularity = 'tensor' | 'row' | 'group' | 'network';
export type ImportanceKind = 'hessian' | 'fisher' | 'adam-v';
export type EntropyCoder = 'none' | 'huffman' | 'ans';
export type Device = 'auto' | 'cpu' | 'cuda';

export interface Progress {
  /** 'allocate': a size budget's measuring pass (each tensor at each candidate bits), before 'quantize'. */
  phase: 'quantize' | 'decode' | 'copy' | 'export' | 'allocate';
  /** The tensor being worked on. */
  tensor: string;
  /** Tensors done so far, and in all. */
  index: number;
  count: number;
  /** Input bytes done so far, and in all (within a tensor: in proportion to its units done). */
  bytesDone: number;
  bytesTotal: number;
  /** Within the current tensor: units (slices, blocks) done and in all; absent on the per-tensor call. */
  within?: { done: number; total: number };
  /** Seconds since the job started. */
  elapsedSeconds: number;
  /** Input bytes per second so far (bytesDone / elapsedSeconds; 0 before the first byte). */
  bytesPerSecond: number;
  /** Seconds left at that rate ((bytesTotal - bytesDone) / bytesPerSecond); null until there is a rate. */
  etaSeconds: number | null;
}

export interface CommonOptions {
  /** CPU threads for native work (0 = all cores). */
  threads?: number;
  /** Abort the job; the output file is then not written. */
  signal?: AbortSignal;
  /** Let the output replace an input file (default false: an output that is an input is an ArgumentError). */
  force?: boolean;
  /** Called after each tensor, and within a long tensor as its slices are done (with `within`). */
  onProgress?: (p: Progress) => void;
  /** Where numeric work runs. 'auto' uses CUDA when a driver and device answer (CPU otherwise). */
  device?: Device;
}

export interface QuantizeOptions extends CommonOptions {
  /**
   * Ordered rules giving tensors their own method, codec, bits and options (first match wins, then `default`): a
   * JSON or YAML file's path, or the recipe itself (lib/recipe.ts, docs/RECIPES.md). Checked whole before any work.
   */
  recipe?: string | Recipe;
  /** A named recipe: q3_k_m, q4_k_m, q5_k_m, q6_k (docs/RECIPES.md gives their rules). */
  preset?: string;
  /**
   * Bits per weight of the output at most: every stored byte (codebooks, scales, codes, kept tensors) over every
   * weight, as the report's total.bitsPerWeight. Each quantized tensor's bits (2 to 8) are chosen for the least total
   * squared error (importance-weighted when given) within it (lib/budget.ts, docs/RECIPES.md).
   */
  maxBpw?: number;
  /** The written file's bytes at most (a number, or "500MB"): each tensor's bits are chosen as for maxBpw. */
  targetSize?: number | string;
  method?: MethodName;
  /**
   * The storage scheme (lib/codecs/): 'scalar' (one codebook per slice; default) or 'block' (a scale per block of
   * weights and a learned level table, docs/BLOCK.md), 'vector' (pq, lr2vq), or 'int' (integer codes with a scale
   * and zero point per group; uniform only, and uniform's default with granularity 'group').
   */
  codec?: QuantizingCodecName;
  /**
   * Bytes per output file at most (default 5 GB, as Hugging Face writes); a larger output is written as shards and a
   * model.safetensors.index.json. A number of bytes or a string such as "500MB" or "2GiB".
   */
  maxShardSize?: number | string;
  /** Bits per code, 1-8: 2^bits levels per slice. */
  bits?: number;
  /**
   * One codebook per tensor, per row (output channel, the first dimension), per group of groupSize weights,
   * or one for all quantized tensors together ('network', the all-layers mode of Choi et al.). 'block' is the
   * deprecated spelling of codec: 'block' (a warning says so).
   */
  granularity?: Granularity | 'block';
  groupSize?: number;
  /** Name patterns (glob with * and ?, or /regex/) of tensors to quantize; overrides the default size rule. */
  include?: string[];
  /** Name patterns of tensors to keep as they are. */
  exclude?: string[];
  /** Default rule: quantize float tensors with at least this many dimensions and elements. */
  minDims?: number;
  minElements?: number;
  /** Seed of the seeded methods (kmeans). */
  seed?: number;
  /** Lloyd iterations at most (kmeans). */
  maxIter?: number;
  /** uniform: levels symmetric about zero. */
  symmetric?: boolean;
  /** uniform: 'minmax' spans the range, 'mse' searches the step with the least squared error. */
  step?: 'mse' | 'minmax';
  /** Dtype of the stored codebooks. */
  codebookDtype?: 'F32' | 'F16';
  /** Row-mean preservation: a per-row offset added at decode (lib/codecs/rowmean.ts); auto: on for the block codec. */
  preserveMean?: 'auto' | 'on' | 'off';
  /** A safetensors file of importance weights with the checkpoint's tensor names and shapes. */
  importance?: string;
  /** How to read it: a diagonal Hessian or Fisher (used as is), or Adam's second moment (sqrt(v) is used). */
  importanceKind?: ImportanceKind;
  /** Name rules "FROM=>TO" (FROM a regex) mapping a checkpoint tensor name to its importance tensor name. */
  importanceMap?: string[];
  /**
   * A llama.cpp importance matrix (`llama-imatrix` output: GGUF imatrix or legacy .dat) used as the importance: per
   * input column, the mean squared activation, broadcast over the rows. Entries are found by llama.cpp's names
   * (blk.N.attn_q.weight) or the HF names that map to them (model.layers.N.self_attn.q_proj.weight), after the
   * importanceMap rules. Instead of `importance` (docs/IMPORTANCE.md).
   */
  imatrix?: string;
  /**
   * A safetensors file with, for each weight, the Gram matrix H = Σ x xᵀ of its layer's inputs ([in, in]); methods that
   * read it minimise tr((W − Ŵ) H (W − Ŵ)ᵀ) (docs/CALIBRATION.md).
   */
  calibration?: string;
  /** Name rules "FROM=>TO" (FROM a regex) mapping a weight's name to its calibration tensor's name. */
  calibrationMap?: string[];
  /** hessian-kmeans: the exact DP (true, default) or Lloyd's (false). */
  exact?: boolean;
  /** ecsq methods: the target entropy of the codes, bits per weight. */
  rate?: number;
  /**
   * ecsq methods, instead of rate: the target compression ratio C against the original dtype; each tensor's rate is
   * its dtype's bits / C (Choi et al.: H < R ~ b / C).
   */
  compressionRatio?: number;
  /** sparse methods: the penalty weight; ecsq: the Lagrange multiplier (instead of rate). */
  lambda?: number;
  /** sparse-l1l2: the l2 weight. */
  lambda2?: number;
  /** sparse methods: search the penalty until this many distinct values per slice. */
  targetValues?: number;
  /** qn: the level set: 'binary', 'ternary', or an ascending comma-separated list such as '-4,-2,-1,0,1,2,4'. */
  levels?: string;
  /** qn: the temperature of the first epoch (default 10). */
  tStart?: number;
  /** qn: the temperature's growth per epoch (default 10; the paper: 5 to 40). */
  tSlope?: number;
  /** qn: epochs of the fit (default 20). */
  epochs?: number;
  /** qn: full-batch Adam steps per epoch (default 10). */
  stepsPerEpoch?: number;
  /** qn: Adam's step size (default 0.02). */
  learningRate?: number;
  /** qn: learn the biases too (default false, as the paper). */
  learnBiases?: boolean;
  /** Entropy-code the codes: 'huffman', 'ans', or 'none'. Default: the method's (huffman for ecsq). */
  entropy?: EntropyCoder;
  /** codec 'block': weights per block along a row, each with a scale (default 16). */
  blockSize?: number;
  /** codec 'block': 'optimal' (MSE search per block) or 'absmax' scales (default 'optimal'). */
  scale?: 'optimal' | 'absmax';
  /** codec 'block': one learned level table per tensor or per row (default 'tensor'). */
  table?: 'tensor' | 'row';
  /** codec 'block': block scales as q-bit codes under one F16 super-scale per superBlock weights, or false (F16 scales); default {bits: 6, superBlock: 256}. */
  doubleQuant?: { bits: number; superBlock: number } | false;
  /** codec 'block': alternating scale/table refinement rounds at most (default 4). */
  rounds?: number;
  /** codec 'int': dtype of the group scales, 'F16' (default), 'BF16' or 'F32'. */
  scaleDtype?: 'F16' | 'BF16' | 'F32';
  /** codec 'vector': weights per subvector M, 1-16 (default 8). */
  subvector?: number;
  /** codec 'vector': codewords K per codebook, 2-65,536 (default 256). */
  centroids?: number;
  /** codec 'vector': divide each row by its RMS before clustering (default false). */
  rowScale?: boolean;
  /** codec 'vector': rows per codebook, 0 = one codebook per tensor (default 0). */
  codebookRows?: number;
  /** pq, lr2vq: Lloyd iterations of the d-dimensional k-means at most (default 20). */
  iterations?: number;
  /** lr2vq: the projection's rank dk (1 to subvector), or 'auto' to estimate it per tensor (default 'auto'). */
  rank?: number | 'auto';
  /**
   * quantize() only: also write a report file here once the output is written: a path ending in .html (one
   * self-contained page, no network: per-tensor SQNR and bits per weight, rate–distortion points, weight histograms
   * with the learned levels, the run's settings) or .json (the same data); schema in docs/REPORT.md. Refused when it
   * is an input or the output; its directory must exist.
   */
  report?: string;
  /**
   * quantize() with `report`: name patterns (glob * ?, or /regex/) of the float tensors whose histograms the report
   * draws (default: the 4 largest quantized tensors).
   */
  reportTensors?: string | string[];
}

export type ResolvedQuantizeOptions = Required<
  Omit<
    QuantizeOptions,
    | 'report' | 'reportTensors' | 'signal' | 'onProgress' | 'include' | 'exclude' | 'importance' | 'imatrix' | 'importanceMap' | 'calibration' | 'calibrationMap' | 'levels' | 'rate' | 'compressionRatio' | 'lambda' | 'lambda2' | 'targetValues' | 'granularity' | 'maxShardSize'
    | 'recipe' | 'preset' | 'maxBpw' | 'targetSize'
  >
> & {
  recipe?: string | Recipe;
  preset?: string;
  /** The recipe or preset, resolved: every rule's options checked (lib/recipe.ts). */
  rules?: ResolvedRecipe;
  maxBpw?: number;
  targetSize?: number;
  granularity: Granularity;
  maxShardSize: number;
  /** Things the caller should know about the options (deprecated spellings). */
  warnings: string[];
  /**
   * The codebook dtype is the default, not asked for: a tensor whose levels F16 cannot hold then takes F32 codebooks
   * without a warning (the scheme records its dtype); asked-for F16 warns.
   */
  codebookDtypeDefault?: boolean;
  include: string[];
  exclude: string[];
  importance?: string;
  imatrix?: string;
  importanceMap: string[];
  calibration?: string;
  calibrationMap: string[];
  levels?: string;
  rate?: number;
  compressionRatio?: number;
  lambda?: number;
  lambda2?: number;
  targetValues?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
};

export interface DecodeOptions extends CommonOptions {
  /** Dtype of the dense output's float tensors; default: each tensor's original dtype. */
  dtype?: 'F32' | 'F16' | 'BF16' | 'F64' | 'f32' | 'f16' | 'bf16' | 'f64';
  /** Bytes per output file at most (default 5 GB); a larger output is written as shards and an index. */
  maxShardSize?: number | string;
  /**
   * A decoded value beyond `dtype`'s range (F16: 65504, BF16: about 3.39e38): false (default) throws OverflowError
   * (E_RANGE) naming the tensor; true stores the largest finite value of its sign and counts it (DecodeResult.saturated).
   */
  allowOverflow?: boolean;
}

// ---- The job's options (the codecs' options are declared in lib/codecs/, the methods' in lib/methods/) ----

export const METHOD = option({
  name: 'method', type: 'enum', values: METHODS.map((m) => m.name), default: 'kmeans-optimal',
  doc: 'the quantization method (below)', flag: '--method', metavar: 'NAME',
});
export const CODEC = option({
  name: 'codec', type: 'enum', values: QUANTIZING_CODECS, default: 'scalar',
  doc: 'the storage scheme (below)', flag: '--codec', metavar: 'C',
});
export const MAX_SHARD_SIZE = option({
  name: 'maxShardSize', type: 'size', default: DEFAULT_MAX_SHARD_SIZE, defaultDoc: '5GB', unit: 'bytes',
  doc: 'data bytes per output file at most (bytes, or 500MB, 2GiB; estimated before entropy coding; the header adds a few kB); a larger output is written as shards x-00001-of-0000N.safetensors and the index x.safetensors.index.json',
  flag: '--max-shard-size', metavar: 'SIZE',
});
export const INCLUDE = option({
  name: 'include', type: 'strings', default: [], defaultDoc: 'float tensors with >= --min-dims dims and >= --min-elements elements',
  doc: 'quantize tensors whose name matches (glob * ? or /regex/); repeatable', flag: '--include', metavar: 'PATTERN',
});
export const EXCLUDE = option({
  name: 'exclude', type: 'strings', default: [], defaultDoc: 'none',
  doc: 'keep tensors whose name matches; repeatable', flag: '--exclude', metavar: 'PATTERN',
});
export const MIN_DIMS = option({
  name: 'minDims', type: 'int', min: 0, max: 64, default: 2, unit: 'dimensions',
  doc: 'size rule: quantize float tensors with at least N dimensions', flag: '--min-dims', metavar: 'N',
});
export const MIN_ELEMENTS = option({
  name: 'minElements', type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 4096, unit: 'elements',
  doc: 'size rule: quantize float tensors with at least N elements', flag: '--min-elements', metavar: 'N',
});
export const THREADS = option({
  name: 'threads', type: 'int', min: 0, max: 1024, default: 0, defaultDoc: '0: all cores',
  doc: 'CPU threads for native work', flag: '--threads', metavar: 'N',
});
export const DEVICE = option({
  name: 'device', type: 'enum', values: ['auto', 'cpu', 'cuda'], default: 'auto',
  doc: "where numeric work runs ('auto': CUDA when a driver and device answer)", flag: '--device', metavar: 'D',
});
export const IMPORTANCE = option({
  name: 'importance', type: 'string', unit: 'file path',
  doc: 'safetensors file of importance weights (same tensor names and shapes); see docs/IMPORTANCE', flag: '--importance', metavar: 'FILE',
});
export const IMPORTANCE_KIND = option({
  name: 'importanceKind', type: 'enum', values: ['hessian', 'fisher', 'adam-v'], default: 'hessian',
  doc: "how to read --importance: a diagonal Hessian or Fisher, or Adam's second moment (sqrt(v) is used)", flag: '--importance-kind', metavar: 'K',
});
export const IMATRIX = option({
  name: 'imatrix', type: 'string', unit: 'file path', excludes: ['importance'],
  doc: "llama.cpp importance matrix (llama-imatrix's imatrix.gguf or legacy .dat): per-column mean squared activations, broadcast over rows, as the importance; entries by llama.cpp names (blk.N.attn_q.weight) or HF names; see docs/IMPORTANCE.md",
  flag: '--imatrix', metavar: 'FILE',
});
export const IMPORTANCE_MAP = option({
  name: 'importanceMap', type: 'strings', default: [], defaultDoc: 'none',
  doc: 'FROM=>TO regex rule mapping a tensor name to its importance tensor name; repeatable', flag: '--importance-map', metavar: 'RULE',
});

export const CALIBRATION = option({
  name: 'calibration', type: 'string', unit: 'file path',
  doc: 'safetensors file of layer-input Gram matrices H = sum x x^T ([in, in] per weight); methods that read it minimise the layer-output error; see docs/CALIBRATION.md',
  flag: '--calibration', metavar: 'FILE',
});
export const CALIBRATION_MAP = option({
  name: 'calibrationMap', type: 'strings', default: [], defaultDoc: 'none',
  doc: 'FROM=>TO regex rule mapping a weight name to its calibration tensor name; repeatable', flag: '--calibration-map', metavar: 'RULE',
});
export const FORCE = option({
  name: 'force', type: 'boolean', default: false,
  doc: 'let the output replace an input file (same file, also through a symlink or hard link); refused otherwise', flag: '--force',
});

export const RECIPE = option({
  name: 'recipe', type: 'string', unit: 'file path or recipe object',
  doc: 'JSON or YAML file of ordered rules (tensor-name pattern, method, codec, bits, options; first match wins, then "default"), checked whole before any work; see docs/RECIPES.md',
  flag: '--recipe', metavar: 'FILE', excludes: ['preset'],
});
export const PRESET = option({
  name: 'preset', type: 'enum', values: Object.keys(PRESETS),
  doc: 'a named recipe (docs/RECIPES.md lists its exact rules)', flag: '--preset', metavar: 'NAME', excludes: ['recipe'],
});
export const MAX_BPW = option({
  name: 'maxBpw', type: 'number', max: 32, unit: 'bits per weight',
  doc: "bits per weight of the output at most (every stored byte over every weight, kept tensors included, as the report's total): each tensor's bits (2-8) chosen for the least total squared error (importance-weighted when given) within it; see docs/RECIPES.md",
  flag: '--max-bpw', metavar: 'X', excludes: ['targetSize'],
});
export const TARGET_SIZE = option({
  name: 'targetSize', type: 'size', unit: 'bytes',
  doc: "the written file's bytes at most (bytes, or 500MB, 2GiB): each tensor's bits (2-8) chosen for the least total squared error within it",
  flag: '--target-size', metavar: 'BYTES', excludes: ['maxBpw'],
});

/** The job's options, in --help's order. */
export const JOB_OPTIONS: readonly OptionSpec[] = [METHOD, BITS, CODEC, ENTROPY, RECIPE, PRESET, MAX_BPW, TARGET_SIZE, INCLUDE, EXCLUDE, MIN_DIMS, MIN_ELEMENTS, MAX_SHARD_SIZE, THREADS, DEVICE, IMPORTANCE, IMATRIX, IMPORTANCE_KIND, IMPORTANCE_MAP, CALIBRATION, CALIBRATION_MAP, FORCE];

/** The codecs' options, each once, with the codecs that read it (a codebook dtype is the scalar and vector codecs'). */
export const CODEC_OPTIONS: readonly { spec: OptionSpec; codecs: string[] }[] = (() => {
  const out: { spec: OptionSpec; codecs: string[] }[] = [];
  for (const c of CODECS)
    for (const spec of c.options ?? []) {
      const row = out.find((r) => r.spec === spec);
      if (row) row.codecs.push(c.name);
      else out.push({ spec, codecs: [c.name] });
    }
  return out;
})();

/** Every option of quantize() but the run's callbacks (signal, onProgress), each declared once. */
export const QUANTIZE_OPTIONS: readonly OptionSpec[] = [...JOB_OPTIONS, ...CODEC_OPTIONS.map((r) => r.spec), ...METHOD_OPTIONS.map((r) => r.spec)];

/** The default of every option that has one (the method may choose its own bits and entropy: MethodEntry). */
export const QUANTIZE_DEFAULTS: Readonly<Partial<Record<OptionName, unknown>>> = Object.fromEntries(QUANTIZE_OPTIONS.filter((s) => s.default !== undefined).map((s) => [s.name, s.default]));

function fail(option: string, problem: string): never {
  throw new ArgumentError(`option ${option}: ${problem}`);
}

function checkKeys(o: object, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(k, `unknown ${what} option (known: ${allowed.join(', ')})`);
  }
}

export function intIn(option: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail(option, `must be an integer from ${lo} to ${hi}, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(option: string, v: unknown, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T)) fail(option, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function patterns(option: string, v: unknown): string[] {
  if (v === undefined) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((p) => typeof p !== 'string')) fail(option, 'must be a string or an array of strings');
  for (const p of list as string[]) compilePattern(option, p);
  return list as string[];
}

/** A glob (* any run, ? one character) or a /regex/ as a RegExp matching the whole name. */
export function compilePattern(option: string, p: string): RegExp {
  if (p.length > 1 && p.startsWith('/') && p.lastIndexOf('/') > 0) {
    const end = p.lastIndexOf('/');
    try {
      return new RegExp(p.slice(1, end), p.slice(end + 1));
    } catch (e) {
      fail(option, `bad regular expression ${p}: ${(e as Error).message}`);
    }
  }
  const re = p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/** A boolean option (force, strict), default false. */
export function forceOf(v: unknown, option = 'force'): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') fail(option, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function signalOf(v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || typeof (v as AbortSignal).aborted !== 'boolean') fail('signal', 'must be an AbortSignal');
  return v as AbortSignal;
}

function progressOf(v: unknown): ((p: Progress) => void) | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') fail('onProgress', 'must be a function');
  return v as (p: Progress) => void;
}

/** The keys quantize() accepts: every declared option, and the run's callbacks. */
export const QUANTIZE_KEYS: readonly string[] = [...QUANTIZE_OPTIONS.map((s) => s.name), 'signal', 'onProgress'];

function positive(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(option, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** A value of an option checked against its declaration's type (an int also against its range). */
function checkValue(spec: OptionSpec, v: unknown, blockSize: number): unknown {
  const n = spec.name;
  switch (spec.type) {
    case 'int':
      return intIn(n, v, spec.min!, spec.max!);
    case 'intOrAuto':
      return v === 'auto' ? v : intIn(n, v, spec.min!, spec.max!);
    case 'number':
      return positive(n, v);
    case 'boolean':
      return boolOf(n, v);
    case 'enum':
      return oneOf(n, v, spec.values!);
    case 'string':
      if (spec === RECIPE && typeof v === 'object' && v !== null && !Array.isArray(v)) return v; // the API's recipe object
      if (typeof v !== 'string' || !v) fail(n, `must be a ${spec.unit ?? 'non-empty string'}`);
      return v;
    case 'strings':
      return [...patterns(n, v)];
    case 'size':
      return parseSize(n, v as number | string);
    case 'doubleQuant':
      return doubleQuantOf(v, blockSize);
  }
}

/** A number's bounds besides being positive. */
function checkRange(spec: OptionSpec, v: number): void {
  if (spec.min !== undefined && v < spec.min) fail(spec.name, `must be at least ${spec.min}, got ${v}`);
  if (spec.max !== undefined && v > spec.max) fail(spec.name, `must be at most ${spec.max}${spec.unit ? ` ${spec.unit}` : ''}, got ${v}`);
}

/** Options without a default are checked first (the method's checks read them), bits next (its default is the method's), then the rest. */
const RESOLVE_ORDER: readonly OptionSpec[] = [
  ...QUANTIZE_OPTIONS.filter((s) => s.default === undefined),
  BITS,
  ...QUANTIZE_OPTIONS.filter((s) => s.default !== undefined && s !== BITS && s !== METHOD),
];

export function resolveQuantizeOptions(o: QuantizeOptions = {}): ResolvedQuantizeOptions {
  if (typeof o !== 'object' || o === null) fail('options', 'must be an object');
  checkKeys(o, QUANTIZE_KEYS, 'quantize');
  const given = o as Record<string, unknown>;
  const method = o.method ?? (METHOD.default as MethodName);
  const entry = findMethod(method);
  if (!entry) fail('method', `unknown method ${JSON.stringify(method)} (known: ${METHODS.map((m) => m.name).join(', ')})`);
  const r: Record<string, unknown> = {};
  let checked = false;
  for (const spec of RESOLVE_ORDER) {
    if (spec === BITS && !checked) {
      // A compression ratio stands for a rate (at most F32's 32 bits / C) in the method's checks and default bits.
      const rate = r.rate as number | undefined;
      const compressionRatio = r.compressionRatio as number | undefined;
      const mopts = { bits: o.bits, rate: rate ?? (compressionRatio !== undefined ? Math.min(8, 32 / compressionRatio) : undefined), lambda: r.lambda as number | undefined, targetValues: r.targetValues as number | undefined, exact: o.exact, importance: (r.importance ?? r.imatrix) as string | undefined, levels: r.levels as string | undefined };
      const problem = entry.check?.(mopts);
      if (problem) fail('method', problem);
      if (entry.importance === 'required' && r.importance === undefined && r.imatrix === undefined) fail('importance', `method ${method} needs importance weights (importance: a safetensors file, or imatrix: a llama.cpp importance matrix)`);
      r.bits = intIn('bits', o.bits ?? entry.defaultBits(mopts), 1, 8);
      if (r.targetValues !== undefined && (r.targetValues as number) > 2 ** (r.bits as number)) fail('targetValues', `${r.targetValues} values do not fit in ${r.bits} bits`);
      checked = true;
      continue;
    }
    const v = given[spec.name];
    // An option with a plain default takes it for undefined or null; the others refuse null.
    const omitted = v === undefined || (v === null && spec.default !== undefined && typeof spec.default !== 'object');
    const fallback = spec === ENTROPY ? entry.entropy : spec === GRANULARITY ? (entry.granularity ?? spec.default) : spec.default;
    if (omitted && fallback === undefined) {
      r[spec.name] = undefined;
      continue;
    }
    // A default doubleQuant is checked against blockSize below, and only when the block codec is used.
    const value = checkValue(spec, omitted ? fallback : v, omitted ? 1 : (r.blockSize as number));
    if (!omitted) {
      for (const other of spec.excludes ?? []) if (r[other] !== undefined) fail(spec.name, `give ${other} or ${spec.name}, not both`);
      if (spec.only !== undefined && !entry.options.includes(spec)) fail(spec.name, `applies to ${spec.only} only, not ${method}`);
      if (spec.type === 'number') checkRange(spec, value as number);
    }
    r[spec.name] = value;
  }
  for (const key of ['importanceMap', 'calibrationMap'] as const)
    for (const rule of r[key] as string[]) if (!rule.includes('=>')) fail(key, `rule ${JSON.stringify(rule)} must read FROM=>TO`);
  if (r.calibration !== undefined && !entry.calibration) fail('calibration', `method ${method} does not read a calibration file (methods that do: ${METHODS.filter((m) => (m as MethodEntry).calibration).map((m) => m.name).join(', ') || 'none'})`);
  if (r.calibration !== undefined && entry.fitCalibrated && !['tensor', 'row'].includes(r.granularity as string))
    fail('granularity', `method ${method} with a calibration file fits whole rows: granularity tensor or row, not ${JSON.stringify(r.granularity)}`);
  const warnings: string[] = [];
  let granularity = r.granularity as Granularity | 'block';
  let codec = r.codec as QuantizingCodecName;
  if (granularity === 'block') {
    if (o.codec !== undefined && o.codec !== 'block') fail('granularity', `'block' is the block codec, but codec is ${JSON.stringify(o.codec)}`);
    warnings.push("option granularity 'block' is deprecated: use codec 'block' (CLI: --codec block)");
    codec = 'block';
    granularity = GRANULARITY.default as Granularity;
  }
  // A method that needs its own codec (the vector methods) takes it; the other methods refuse such a codec.
  if (entry.codec !== undefined) {
    if (o.codec !== undefined && o.codec !== entry.codec) fail('codec', `method ${method} stores with the ${entry.codec} codec, not ${JSON.stringify(o.codec)}`);
    codec = entry.codec as QuantizingCodecName;
  } else {
    if (o.codec === undefined) codec = (entry.defaultCodec?.({ granularity }) as QuantizingCodecName | undefined) ?? codec;
    const owners = (METHODS as readonly MethodEntry[]).filter((m) => m.codec === codec || m.extraCodecs?.includes(codec)).map((m) => m.name);
    if (owners.length && !owners.includes(method)) fail('codec', `the ${codec} codec stores methods ${owners.join(', ')} only, not ${method}`);
  }
  if (given.codebookDtype === undefined) r.codebookDtypeDefault = true;
  // A codec's own defaults of shared options (the vector codec's F32 codebooks) where the caller gave none.
  for (const [k, v] of Object.entries(CODECS.find((c) => c.name === codec)?.defaults ?? {})) if (given[k] === undefined) r[k] = v;
  for (const [k, v] of Object.entries(entry?.codecDefaults ?? {})) if (given[k] === undefined && (CODECS.find((c) => c.name === codec)?.options ?? []).some((s) => s.name === k)) r[k] = v;
  // Options of a codec that is not used are refused when given, as another method's options are.
  const inUse = CODECS.find((c) => c.name === codec)?.options ?? [];
  for (const r of CODEC_OPTIONS)
    if (!inUse.includes(r.spec) && given[r.spec.name] !== undefined && !(r.spec.name === 'granularity' && given.granularity === 'block'))
      fail(r.spec.name, `applies to the ${r.codecs.join(' and ')} codec${r.codecs.length > 1 ? 's' : ''} only, not ${codec}`);
  const problem = CODECS.find((c) => c.name === codec)?.checkOptions?.({ ...(r as unknown as TaskOptions), method, codec, granularity });
  if (problem) fail('codec', problem);
  // A Huffman code spends at least 1 bit per code (scalar codes: per weight; the vector codec's codes span M
  // weights), and near that floor it can meet a rate only by collapsing the levels (measured: ecsq at rate 1 wrote
  // 1.02 bits per weight at 0.6 dB). Below 1.5 bits per weight the method's default coder gives way to rANS; a
  // Huffman coder asked for explicitly is kept, with a warning that says which coder would reach the rate.
  const rate = r.rate as number | undefined;
  if (rate !== undefined && rate < 1.5 && r.entropy === 'huffman' && entry.codec === undefined) {
    if (given.entropy === undefined) {
      r.entropy = 'ans';
      warnings.push(`rate ${rate} is below 1.5 bits per weight, where a Huffman code (at least 1 bit per code) loses the levels to meet it: the codes are rANS-coded (entropy 'ans')`);
    } else warnings.push(`rate ${rate} is below 1.5 bits per weight, where a Huffman code (at least 1 bit per code) loses the levels to meet it: entropy 'ans' would reach it`);
  }
  if ((r.maxBpw !== undefined || r.targetSize !== undefined) && given.bits !== undefined)
    fail('bits', `give bits or ${r.maxBpw !== undefined ? 'maxBpw' : 'targetSize'}, not both (the budget chooses each tensor's bits)`);
  if (r.maxBpw !== undefined || r.targetSize !== undefined) {
    const why = budgetRefusal(method, granularity);
    if (why) fail(r.maxBpw !== undefined ? 'maxBpw' : 'targetSize', `${why}; a budget chooses bits (methods: uniform, kmeans, kmeans-optimal, hessian-kmeans, normal-float)`);
  }
  const dq = r.doubleQuant as { superBlock: number } | false;
  if (codec === 'block' && dq && dq.superBlock % (r.blockSize as number) !== 0)
    fail('blockSize', `${r.blockSize} does not divide the super-block of ${dq.superBlock} weights: give doubleQuant {bits, superBlock} or false`);
  const resolved: ResolvedQuantizeOptions = {
    ...(r as Omit<ResolvedQuantizeOptions, 'method' | 'codec' | 'granularity' | 'warnings'>),
    method,
    codec,
    warnings,
    granularity,
    signal: signalOf(o.signal),
    onProgress: progressOf(o.onProgress),
  };
  // A recipe's rules are resolved over the job's options (each rule checked as the job is), before any work.
  if (r.recipe !== undefined || r.preset !== undefined)
    resolved.rules = resolveRecipe(r.recipe as string | Recipe | undefined, r.preset as string | undefined, o, { resolve: resolveQuantizeOptions, compile: compilePattern, specs: QUANTIZE_OPTIONS });
  if (resolved.rules && (r.maxBpw !== undefined || r.targetSize !== undefined))
    for (const rule of [...resolved.rules.rules, resolved.rules.default]) {
      const why = rule.keep ? undefined : budgetRefusal(rule.options.method, rule.options.granularity);
      if (why) fail(r.maxBpw !== undefined ? 'maxBpw' : 'targetSize', `${ruleLabel(rule.ref)}: ${why}; a budget chooses bits (methods: uniform, kmeans, kmeans-optimal, hessian-kmeans, normal-float)`);
    }
  return resolved;
}

function doubleQuantOf(v: unknown, blockSize: number): { bits: number; superBlock: number } | false {
  if (v === false) return false;
  if (typeof v !== 'object' || v === null) fail('doubleQuant', 'must be {bits, superBlock} or false');
  const dq = v as { bits: unknown; superBlock: unknown };
  const bits = intIn('doubleQuant.bits', dq.bits, 2, 8);
  const superBlock = intIn('doubleQuant.superBlock', dq.superBlock, 1, 1 << 24);
  if (superBlock % blockSize !== 0) fail('doubleQuant.superBlock', `must be a multiple of blockSize ${blockSize}, got ${superBlock}`);
  return { bits, superBlock };
}

function boolOf(option: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(option, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export interface ResolvedDecodeOptions {
  dtype?: 'F32' | 'F16' | 'BF16' | 'F64';
  allowOverflow: boolean;
  maxShardSize: number;
  threads: number;
  device: Device;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  force: boolean;
}

export function resolveDecodeOptions(o: DecodeOptions = {}): ResolvedDecodeOptions {
  if (typeof o !== 'object' || o === null) fail('options', 'must be an object');
  checkKeys(o, ['dtype', 'maxShardSize', 'allowOverflow', 'threads', 'device', 'signal', 'onProgress', 'force'], 'decode');
  if (o.allowOverflow !== undefined && typeof o.allowOverflow !== 'boolean') fail('allowOverflow', 'must be a boolean');
  const dtype = o.dtype === undefined ? undefined : oneOf('dtype', String(o.dtype).toUpperCase(), ['F32', 'F16', 'BF16', 'F64'] as const);
  return {
    dtype,
    allowOverflow: o.allowOverflow === true,
    maxShardSize: checkValue(MAX_SHARD_SIZE, o.maxShardSize ?? MAX_SHARD_SIZE.default, 0) as number,
    threads: checkValue(THREADS, o.threads ?? THREADS.default, 0) as number,
    device: checkValue(DEVICE, o.device ?? DEVICE.default, 0) as Device,
    signal: signalOf(o.signal),
    onProgress: progressOf(o.onProgress),
    force: forceOf(o.force),
  };
}
