/**
 * Option checks shared by the API and the CLI: one message shape, unknown keys rejected, defaults in one
 * place. Every failure is an ArgumentError naming the option.
 */
import { ArgumentError } from './errors.js';
import { QUANTIZING_CODECS } from './codecs/registry.js';
import { METHODS, findMethod, type MethodName } from './methods/registry.js';
import { parseSize } from './shards.js';

export type Granularity = 'tensor' | 'row' | 'group' | 'network';
export type ImportanceKind = 'hessian' | 'fisher' | 'adam-v';
export type EntropyCoder = 'none' | 'huffman' | 'ans';
export type Device = 'auto' | 'cpu' | 'cuda';

export interface Progress {
  phase: 'quantize' | 'decode' | 'copy';
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
}

export interface CommonOptions {
  /** CPU threads for native work (0 = all cores). */
  threads?: number;
  /** Abort the job; the output file is then not written. */
  signal?: AbortSignal;
  /** Called after each tensor, and within a long tensor as its slices are done (with `within`). */
  onProgress?: (p: Progress) => void;
  /** Where numeric work runs. 'auto' uses CUDA when a driver and device answer (CPU otherwise). */
  device?: Device;
}

export interface QuantizeOptions extends CommonOptions {
  method?: MethodName;
  /**
   * The storage scheme (lib/codecs/): 'scalar' (one codebook per slice; default) or 'block' (a scale per block of
   * weights and a learned level table, docs/BLOCK.md).
   */
  codec?: 'scalar' | 'block';
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
  /** A safetensors file of importance weights with the checkpoint's tensor names and shapes. */
  importance?: string;
  /** How to read it: a diagonal Hessian or Fisher (used as is), or Adam's second moment (sqrt(v) is used). */
  importanceKind?: ImportanceKind;
  /** Name rules "FROM=>TO" (FROM a regex) mapping a checkpoint tensor name to its importance tensor name. */
  importanceMap?: string[];
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
  /** Entropy-code the codes: 'huffman', 'ans', or 'none'. Default: the method's (huffman for ecsq). */
  entropy?: EntropyCoder;
  /** granularity 'block': weights per block along a row (each block has a scale). */
  blockSize?: number;
  /** granularity 'block': 'optimal' (MSE search per block) or 'absmax' scales. */
  scale?: 'optimal' | 'absmax';
  /** granularity 'block': one learned level table per tensor or per row. */
  table?: 'tensor' | 'row';
  /** granularity 'block': block scales as q-bit codes with one F16 super-scale per superBlock weights, or false (F16 scales). */
  doubleQuant?: { bits: number; superBlock: number } | false;
  /** granularity 'block': alternating scale/table refinement rounds at most. */
  rounds?: number;
}

export type ResolvedQuantizeOptions = Required<
  Omit<
    QuantizeOptions,
    'signal' | 'onProgress' | 'include' | 'exclude' | 'importance' | 'importanceMap' | 'rate' | 'compressionRatio' | 'lambda' | 'lambda2' | 'targetValues' | 'granularity' | 'maxShardSize'
  >
> & {
  granularity: Granularity;
  maxShardSize: number;
  /** Things the caller should know about the options (deprecated spellings). */
  warnings: string[];
  include: string[];
  exclude: string[];
  importance?: string;
  importanceMap: string[];
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
}

export const QUANTIZE_DEFAULTS = {
  method: 'kmeans-optimal' as MethodName,
  codec: 'scalar' as 'scalar' | 'block',
  maxShardSize: 5e9 as number | string,
  bits: 4, // or the method's default (methods/registry.ts)
  granularity: 'row' as Granularity,
  groupSize: 128,
  minDims: 2,
  minElements: 4096,
  seed: 0,
  maxIter: 1000,
  symmetric: false,
  step: 'mse' as const,
  codebookDtype: 'F32' as const,
  threads: 0,
  device: 'auto' as Device,
  importanceKind: 'hessian' as ImportanceKind,
  exact: true,
  entropy: 'none' as EntropyCoder, // or the method's default
  // The block format: 16-weight blocks with 6-bit scales under an F16 super-scale per 256 weights (4.44 bits per
  // weight at 4 bits; docs/BLOCK.md). 32-weight blocks with F16 scales cost more and gain less.
  blockSize: 16,
  scale: 'optimal' as 'optimal' | 'absmax',
  table: 'tensor' as 'tensor' | 'row',
  doubleQuant: { bits: 6, superBlock: 256 } as { bits: number; superBlock: number } | false,
  rounds: 4,
};

const EXTRA_KEYS = ['importance', 'importanceMap', 'rate', 'compressionRatio', 'lambda', 'lambda2', 'targetValues'] as const;

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

const QUANTIZE_KEYS = [...Object.keys(QUANTIZE_DEFAULTS), ...EXTRA_KEYS, 'include', 'exclude', 'signal', 'onProgress'] as const;

function positive(option: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(option, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveQuantizeOptions(o: QuantizeOptions = {}): ResolvedQuantizeOptions {
  if (typeof o !== 'object' || o === null) fail('options', 'must be an object');
  checkKeys(o, QUANTIZE_KEYS, 'quantize');
  const d = QUANTIZE_DEFAULTS;
  const method = o.method ?? d.method;
  const entry = findMethod(method);
  if (!entry) fail('method', `unknown method ${JSON.stringify(method)} (known: ${METHODS.map((m) => m.name).join(', ')})`);
  const rate = positive('rate', o.rate);
  if (rate !== undefined && rate > 8) fail('rate', `must be at most 8 bits per weight, got ${rate}`);
  const compressionRatio = positive('compressionRatio', o.compressionRatio);
  if (compressionRatio !== undefined && rate !== undefined) fail('compressionRatio', 'give rate or compressionRatio, not both');
  if (compressionRatio !== undefined && !method.startsWith('ecsq')) fail('compressionRatio', `applies to the ecsq methods only, not ${method}`);
  if (compressionRatio !== undefined && compressionRatio < 1) fail('compressionRatio', `must be at least 1, got ${compressionRatio}`);
  const lambda = positive('lambda', o.lambda);
  const lambda2 = o.lambda2 === undefined ? undefined : positive('lambda2', o.lambda2);
  const targetValues = o.targetValues === undefined ? undefined : intIn('targetValues', o.targetValues, 1, 256);
  if (lambda2 !== undefined && method !== 'sparse-l1l2') fail('lambda2', `applies to sparse-l1l2 only, not ${method}`);
  if (targetValues !== undefined && !method.startsWith('sparse-')) fail('targetValues', `applies to the sparse methods only, not ${method}`);
  const importance = o.importance;
  if (importance !== undefined && (typeof importance !== 'string' || !importance)) fail('importance', 'must be a file path');
  // A compression ratio stands for a rate (at most F32's 32 bits / C) in the method's checks and default bits.
  const mopts = { bits: o.bits, rate: rate ?? (compressionRatio !== undefined ? Math.min(8, 32 / compressionRatio) : undefined), lambda, targetValues, exact: o.exact, importance };
  const problem = entry.check?.(mopts);
  if (problem) fail('method', problem);
  if (entry.importance === 'required' && importance === undefined) fail('importance', `method ${method} needs importance weights (importance: a safetensors file)`);
  const bits = intIn('bits', o.bits ?? entry.defaultBits(mopts), 1, 8);
  if (targetValues !== undefined && targetValues > 2 ** bits) fail('targetValues', `${targetValues} values do not fit in ${bits} bits`);
  const importanceMap = patterns('importanceMap', o.importanceMap);
  for (const rule of importanceMap) if (!rule.includes('=>')) fail('importanceMap', `rule ${JSON.stringify(rule)} must read FROM=>TO`);
  const warnings: string[] = [];
  let granularity = oneOf('granularity', o.granularity ?? d.granularity, ['tensor', 'row', 'group', 'network', 'block'] as const);
  let codec = oneOf('codec', o.codec ?? d.codec, QUANTIZING_CODECS as ('scalar' | 'block')[]);
  if (granularity === 'block') {
    if (o.codec !== undefined && o.codec !== 'block') fail('granularity', `'block' is the block codec, but codec is ${JSON.stringify(o.codec)}`);
    warnings.push("option granularity 'block' is deprecated: use codec 'block' (CLI: --codec block)");
    codec = 'block';
    granularity = d.granularity;
  }
  return {
    method,
    codec,
    maxShardSize: parseSize('maxShardSize', o.maxShardSize ?? d.maxShardSize),
    warnings,
    bits,
    granularity,
    blockSize: intIn('blockSize', o.blockSize ?? d.blockSize, 1, 1 << 20),
    scale: oneOf('scale', o.scale ?? d.scale, ['optimal', 'absmax'] as const),
    table: oneOf('table', o.table ?? d.table, ['tensor', 'row'] as const),
    doubleQuant: doubleQuantOf(o.doubleQuant === undefined ? d.doubleQuant : o.doubleQuant, o.blockSize ?? d.blockSize),
    rounds: intIn('rounds', o.rounds ?? d.rounds, 1, 100),
    groupSize: intIn('groupSize', o.groupSize ?? d.groupSize, 1, 2 ** 40),
    include: patterns('include', o.include),
    exclude: patterns('exclude', o.exclude),
    minDims: intIn('minDims', o.minDims ?? d.minDims, 0, 64),
    minElements: intIn('minElements', o.minElements ?? d.minElements, 0, Number.MAX_SAFE_INTEGER),
    seed: intIn('seed', o.seed ?? d.seed, 0, Number.MAX_SAFE_INTEGER),
    maxIter: intIn('maxIter', o.maxIter ?? d.maxIter, 1, 1e7),
    symmetric: boolOf('symmetric', o.symmetric ?? d.symmetric),
    step: oneOf('step', o.step ?? d.step, ['mse', 'minmax'] as const),
    codebookDtype: oneOf('codebookDtype', o.codebookDtype ?? d.codebookDtype, ['F32', 'F16'] as const),
    threads: intIn('threads', o.threads ?? d.threads, 0, 1024),
    device: oneOf('device', o.device ?? d.device, ['auto', 'cpu', 'cuda'] as const),
    importance,
    importanceKind: oneOf('importanceKind', o.importanceKind ?? d.importanceKind, ['hessian', 'fisher', 'adam-v'] as const),
    importanceMap,
    exact: boolOf('exact', o.exact ?? d.exact),
    rate,
    compressionRatio,
    lambda,
    lambda2,
    targetValues,
    entropy: oneOf('entropy', o.entropy ?? entry.entropy, ['none', 'huffman', 'ans'] as const),
    signal: signalOf(o.signal),
    onProgress: progressOf(o.onProgress),
  };
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
  maxShardSize: number;
  threads: number;
  device: Device;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export function resolveDecodeOptions(o: DecodeOptions = {}): ResolvedDecodeOptions {
  if (typeof o !== 'object' || o === null) fail('options', 'must be an object');
  checkKeys(o, ['dtype', 'maxShardSize', 'threads', 'device', 'signal', 'onProgress'], 'decode');
  const dtype = o.dtype === undefined ? undefined : oneOf('dtype', String(o.dtype).toUpperCase(), ['F32', 'F16', 'BF16', 'F64'] as const);
  return {
    dtype,
    maxShardSize: parseSize('maxShardSize', o.maxShardSize ?? QUANTIZE_DEFAULTS.maxShardSize),
    threads: intIn('threads', o.threads ?? 0, 0, 1024),
    device: oneOf('device', o.device ?? 'auto', ['auto', 'cpu', 'cuda'] as const),
    signal: signalOf(o.signal),
    onProgress: progressOf(o.onProgress),
  };
}
