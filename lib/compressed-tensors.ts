/**
 * Export to compressed-tensors' "pack-quantized" format (the layout vLLM's CompressedTensorsWNA16 scheme and
 * transformers' compressed-tensors integration load; github.com/vllm-project/compressed-tensors,
 * compressors/quantized_compressors/pack_quantized.py, quantization/utils/helpers.py). docs/COMPRESSED-TENSORS.md
 * describes the files and what a loader needs.
 *
 * Every 2-D float tensor named "<module>.weight" (at least minElements weights, not an embedding or lm_head, and
 * selected by include/exclude) is quantized with the int codec's encoder (native/core/intq.cpp: round to nearest,
 * min-max or MSE-optimal scale per group) and stored as
 *   <module>.weight_packed      I32 [rows, ceil(cols / (32 / bits))]: per row, 32 / bits codes per int32, code i
 *                               of a word in bits [i·bits, (i+1)·bits), each code the unsigned q + 2^(bits−1) of the
 *                               signed code q in [−2^(bits−1), 2^(bits−1) − 1]; a row's last word padded with 0
 *   <module>.weight_scale       [rows, groups per row] (channel: [rows, 1]), the weight's float dtype by default
 *   <module>.weight_zero_point  asymmetric only: I32 [ceil(rows / (32 / bits)), groups per row], the zero points
 *                               zp + 2^(bits−1) packed the same way along dim 0 (rows)
 *   <module>.weight_shape       I64 [2]: [rows, cols]
 * which decode to (q − zp) × scale (zp = 0 symmetric). The other tensors are copied as they are; 2-D weights that
 * are not quantized are listed in the config's `ignore`, so that loaders keep those layers dense.
 *
 * The output directory gets model.safetensors (or shards of at most maxShardSize bytes and
 * model.safetensors.index.json), config.json with `quantization_config` when the input's directory has a
 * config.json, and a copy of the input directory's other files (tokenizer, generation config, ...; weight files
 * of other formats are left out). Every file is written unnamed and linked into place when complete (lib/atomic.ts).
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { removeStaleTemps, writeFileAtomic, checkOutputs } from './atomic.js';
import { Checkpoint, type TensorRef } from './checkpoint.js';
import { DTYPE_SIZE, isFloatDtype } from './dtype.js';
import { ArgumentError, FormatError, WeightpressError, fromNative } from './errors.js';
import { Cancel, reportProgress } from './job.js';
import type { NativeIntParams } from './native.js';
import { loadNative } from './load.js';
import { refuseQuantized } from './plan.js';
import { DEFAULT_MAX_SHARD_SIZE, ShardWriter, ensureDir, groupBySize, indexName, parseSize, shardNames } from './shards.js';
import { forceOf, intIn, type Progress } from './validate.js';

export interface CompressedTensorsOptions {
  /** 4 (default) or 8: compressed-tensors' pack-quantized num_bits. */
  bits?: number;
  /** Weights per group along a row, 32-256 and a multiple of 8 (default 128); 'channel': one scale per row. */
  groupSize?: number | 'channel';
  /** Symmetric codes (default true, the W4A16 schemes' choice); false stores a zero point per group. */
  symmetric?: boolean;
  /** Scale search: 'mse' (least squared error per group, default) or 'minmax'. */
  step?: 'mse' | 'minmax';
  /** Dtype of weight_scale: default the weight's (F16, BF16; F32 for F32/F64 weights). */
  scaleDtype?: 'F16' | 'BF16' | 'F32';
  /** Name patterns (glob * ?, or /regex/) of tensors to quantize (default: every eligible "*.weight"). */
  include?: string[];
  /** Name patterns of tensors to keep dense (besides embeddings and lm_head, which are always kept). */
  exclude?: string[];
  /** Quantize only weights with at least this many elements (default 4096). */
  minElements?: number;
  /** Bytes per safetensors file at most (default 5 GB); more gives shards and an index. */
  maxShardSize?: number | string;
  threads?: number;
  signal?: AbortSignal;
  /** Let the output replace an input file (default false: refused). */
  force?: boolean;
  onProgress?: (p: Progress) => void;
}

export interface CompressedTensorsTensorReport {
  name: string;
  dtype: string;
  shape: number[];
  quantized: boolean;
  /** Why a 2-D weight was kept dense (listed in `ignore`). */
  reason?: string;
  numel: number;
  bytes: number;
  sse: number;
  signal: number;
  sqnrDb: number | null;
  maxAbsErr: number;
  bitsPerWeight: number;
}

export interface CompressedTensorsReport {
  input: string;
  output: string;
  files: string[];
  quantizationConfig: Record<string, unknown>;
  /** Whether config.json was written (the input directory had one). */
  config: boolean;
  tensors: CompressedTensorsTensorReport[];
  warnings: string[];
  total: { numel: number; quantizedNumel: number; sse: number; signal: number; sqnrDb: number | null; bytes: number; bitsPerWeight: number };
}

const KNOWN = ['bits', 'groupSize', 'symmetric', 'step', 'scaleDtype', 'include', 'exclude', 'minElements', 'maxShardSize', 'threads', 'signal', 'force', 'onProgress'];
/** Weights loaders keep dense whatever the config says (vLLM's ParallelLMHead and embeddings are no Linear layers). */
const ALWAYS_DENSE = /(^|\.)(lm_head|embed_tokens|embed_positions|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|embeddings?)(\.|$)/;
/** Files of the input directory not copied: weights in this or other formats, and what the export writes itself. */
const NOT_COPIED = /\.(safetensors|bin|pt|pth|ckpt|gguf|h5|msgpack|onnx|npz)$|\.safetensors\.index\.json$|^pytorch_model.*\.json$|^config\.json$|^\./;

function globToRegex(p: string): RegExp {
  if (p.length > 2 && p.startsWith('/') && p.endsWith('/')) return new RegExp(p.slice(1, -1));
  return new RegExp('^' + p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
}

function patternsOf(option: string, v: unknown): RegExp[] {
  if (v === undefined) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || !x)) throw new ArgumentError(`option ${option}: must be a name pattern or an array of them`);
  return list.map((p: string) => {
    try {
      return globToRegex(p);
    } catch (e) {
      throw new ArgumentError(`option ${option}: bad pattern ${JSON.stringify(p)}: ${(e as Error).message}`);
    }
  });
}

interface Planned {
  t: TensorRef;
  quantize: boolean;
  reason?: string;
  module: string;
  rows: number;
  cols: number;
  /** Output tensors: name, dtype, shape, bytes. */
  out: { name: string; dtype: string; shape: number[]; bytes: number }[];
}

/** Packs codes (one byte each, < 2^bits) of a [rows, cols] matrix into compressed-tensors' int32 words along dim 1. */
export function packRows(codes: Uint8Array, rows: number, cols: number, bits: number): Uint8Array {
  const pf = 32 / bits;
  const words = Math.ceil(cols / pf);
  const out = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[r * words + Math.floor(c / pf)] |= codes[r * cols + c] << ((c % pf) * bits);
  return new Uint8Array(out.buffer);
}

/** Packs a [rows, cols] matrix of codes (one byte each) into int32 words along dim 0 (zero points). */
export function packColumns(codes: Uint8Array, rows: number, cols: number, bits: number): Uint8Array {
  const pf = 32 / bits;
  const words = Math.ceil(rows / pf);
  const out = new Uint32Array(words * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[Math.floor(r / pf) * cols + c] |= codes[r * cols + c] << ((r % pf) * bits);
  return new Uint8Array(out.buffer);
}

/** Unpacks n codes of `bits` bits, LSB first (native/core/pack.h). */
function unpackLsb(bytes: Uint8Array, n: number, bits: number): Uint8Array {
  const out = new Uint8Array(n);
  const mask = (1 << bits) - 1;
  for (let i = 0; i < n; i++) {
    const bit = i * bits, b = bit >> 3, s = bit & 7;
    out[i] = ((bytes[b] | ((bytes[b + 1] ?? 0) << 8)) >> s) & mask;
  }
  return out;
}

/**
 * Quantizes a checkpoint's linear weights to INT4/INT8 with a scale (and zero point) per group and writes them in
 * compressed-tensors' pack-quantized layout to `outDir` (see the top of this file). Throws ArgumentError for bad
 * options, FormatError for a weightpress (already quantized) input or a malformed config.json, NonFiniteError
 * for NaN/Inf weights, IoError for the files.
 */
export async function exportCompressedTensors(input: string, outDir: string, options: CompressedTensorsOptions = {}): Promise<CompressedTensorsReport> {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('option options: must be an object');
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k)) throw new ArgumentError(`option ${k}: unknown export-compressed-tensors option (known: ${KNOWN.join(', ')})`);
  const bits = options.bits ?? 4;
  if (bits !== 4 && bits !== 8) throw new ArgumentError(`option bits: compressed-tensors' pack-quantized format stores 4- or 8-bit codes, got ${JSON.stringify(bits)}`);
  const channel = options.groupSize === 'channel';
  const groupSize = channel ? 0 : ((options.groupSize ?? 128) as number);
  if (!channel && (typeof groupSize !== 'number' || !Number.isInteger(groupSize) || groupSize < 32 || groupSize > 256 || groupSize % 8 !== 0))
    throw new ArgumentError(`option groupSize: must be 'channel' or an integer from 32 to 256 and a multiple of 8 (vLLM's kernels take 32, 64 and 128), got ${JSON.stringify(options.groupSize)}`);
  const symmetric = options.symmetric ?? true;
  if (typeof symmetric !== 'boolean') throw new ArgumentError(`option symmetric: must be true or false, got ${JSON.stringify(symmetric)}`);
  const step = options.step ?? 'mse';
  if (step !== 'mse' && step !== 'minmax') throw new ArgumentError(`option step: must be mse or minmax, got ${JSON.stringify(step)}`);
  if (options.scaleDtype !== undefined && !['F16', 'BF16', 'F32'].includes(options.scaleDtype))
    throw new ArgumentError(`option scaleDtype: must be F16, BF16 or F32, got ${JSON.stringify(options.scaleDtype)}`);
  const include = patternsOf('include', options.include);
  const exclude = patternsOf('exclude', options.exclude);
  const minElements = intIn('minElements', options.minElements ?? 4096, 0, Number.MAX_SAFE_INTEGER);
  const maxShardSize = parseSize('maxShardSize', options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  const threads = intIn('threads', options.threads ?? 0, 0, 1024);
  const force = forceOf(options.force);
  const ck = await Checkpoint.open(input);
  const native = loadNative();
  const cancel = new Cancel(options.signal);
  const warnings: string[] = [];
  let writer: ShardWriter | undefined;
  try {
    cancel.check(ck.path);
    refuseQuantized(ck);
    const srcDir = dirname(ck.files[0] ?? ck.path);
    const dir = resolve(outDir);
    if (dir === resolve(srcDir) && !force) throw new ArgumentError(`output directory ${dir} is the input's directory: its config.json and files would be replaced (give another directory)`);
    // config.json: read and checked before any work.
    let config: Record<string, unknown> | undefined;
    const cfgPath = join(srcDir, 'config.json');
    if (await isFile(cfgPath)) {
      try {
        config = JSON.parse(await readFile(cfgPath, 'utf8'));
      } catch (e) {
        throw new FormatError(`config.json is not valid JSON: ${(e as Error).message}`, { file: cfgPath });
      }
      if (!config || typeof config !== 'object' || Array.isArray(config)) throw new FormatError('config.json is not a JSON object', { file: cfgPath });
      if (config.quantization_config !== undefined) throw new FormatError('config.json already has a quantization_config: the model is quantized already', { file: cfgPath });
    }
    const pf = 32 / bits;
    // Plan every tensor and its output bytes.
    const plan: Planned[] = ck.tensors().map((t) => {
      const isWeight = t.name.endsWith('.weight') && t.shape.length === 2 && isFloatDtype(t.dtype);
      const module = isWeight ? t.name.slice(0, -'.weight'.length) : t.name;
      const [rows, cols] = t.shape.length === 2 ? t.shape : [0, 0];
      const keep = (reason?: string): Planned => ({ t, quantize: false, reason, module, rows, cols, out: [{ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.byteLength }] });
      if (!isWeight) return keep();
      let reason: string | undefined;
      if (ALWAYS_DENSE.test(t.name)) reason = 'an embedding or the output head (no Linear layer to a loader)';
      else if (include.length && !include.some((r) => r.test(t.name))) reason = 'not selected by include';
      else if (exclude.some((r) => r.test(t.name))) reason = 'excluded';
      else if (t.numel < minElements) reason = `fewer than ${minElements} weights`;
      else if (!channel && cols % groupSize !== 0) reason = `rows of ${cols} are not a multiple of the group size ${groupSize} (vLLM needs whole groups)`;
      if (reason) return keep(reason);
      const sd = scaleDtypeOf(t.dtype, options.scaleDtype);
      const gpr = channel ? 1 : cols / groupSize;
      const out = [
        { name: `${module}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil(cols / pf)], bytes: rows * Math.ceil(cols / pf) * 4 },
        { name: `${module}.weight_scale`, dtype: sd, shape: [rows, gpr], bytes: rows * gpr * 4 }, // at most (an F32 fallback)
        { name: `${module}.weight_shape`, dtype: 'I64', shape: [2], bytes: 16 },
      ];
      if (!symmetric) out.push({ name: `${module}.weight_zero_point`, dtype: 'I32', shape: [Math.ceil(rows / pf), gpr], bytes: Math.ceil(rows / pf) * gpr * 4 });
      return { t, quantize: true, module, rows, cols, out };
    });
    const quantized = plan.filter((p) => p.quantize);
    if (!quantized.length) warnings.push(`no tensor of ${ck.path} was quantized (no 2-D "*.weight" of at least ${minElements} weights that the rules select)`);
    // Names must not collide with the input's (a checkpoint that already has weight_packed tensors).
    const names = new Set(ck.tensors().map((t) => t.name));
    for (const p of quantized) for (const o of p.out) if (names.has(o.name)) throw new FormatError(`the input already holds "${o.name}": is it a compressed-tensors checkpoint already?`, { file: ck.path, tensor: p.t.name });

    ensureDir(dir);
    removeStaleTemps(dir);
    const shards = groupBySize(plan, (p) => p.out.reduce((a, o) => a + o.bytes, 0), maxShardSize);
    const files = shardNames('model.safetensors', shards.length);
    const reserve = (ps: Planned[]) => 4096 + ps.reduce((a, p) => a + p.out.reduce((b, o) => b + 120 + 2 * o.name.length, 0), 0);
    writer = new ShardWriter(dir, shards.map((ps, k) => ({ file: files[k], reserve: reserve(ps) })), [ck.path, ...ck.files], force);
    const reports: CompressedTensorsTensorReport[] = [];
    const bytesTotal = plan.reduce((a, p) => a + p.t.byteLength, 0);
    let bytesDone = 0, index = 0;
    let written = 0;
    for (const [k, ps] of shards.entries()) {
      const sink = writer.sink(k);
      for (const p of ps) {
        cancel.check(ck.path);
        const t = p.t;
        if (!p.quantize) {
          await sink.add(t.name, t.dtype, t.shape, ck.bytes(t.name));
          written += t.byteLength;
          reports.push({ name: t.name, dtype: t.dtype, shape: t.shape, quantized: false, ...(p.reason ? { reason: p.reason } : {}), numel: t.numel, bytes: t.byteLength, sse: 0, signal: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: DTYPE_SIZE[t.dtype] * 8 });
        } else {
          const r = await quantizeOne(p, ck.bytes(t.name), { bits, groupSize: channel ? p.cols : groupSize, symmetric, step, scaleDtype: scaleDtypeOf(t.dtype, options.scaleDtype), threads }, cancel, warnings, native);
          for (const o of r.tensors) await sink.add(o.name, o.dtype, o.shape, o.data);
          const bytes = r.tensors.reduce((a, o) => a + o.data.byteLength, 0);
          written += bytes;
          reports.push({ name: t.name, dtype: t.dtype, shape: t.shape, quantized: true, numel: t.numel, bytes, sse: r.stats.sse, signal: r.stats.signal,
            sqnrDb: r.stats.sse > 0 ? 10 * Math.log10(r.stats.signal / r.stats.sse) : null, maxAbsErr: r.stats.maxAbsErr, bitsPerWeight: (8 * bytes) / t.numel });
        }
        ck.advise(t.name, 'dontneed');
        bytesDone += t.byteLength;
        reportProgress(options.onProgress, { phase: 'export', tensor: t.name, index: ++index, count: plan.length, bytesDone, bytesTotal });
      }
    }
    const ignore = plan.filter((p) => !p.quantize && p.reason !== undefined).map((p) => p.module);
    const weights: Record<string, unknown> = {
      num_bits: bits, type: 'int', symmetric, strategy: channel ? 'channel' : 'group', group_size: channel ? null : groupSize,
      dynamic: false, actorder: null, block_structure: null, observer: step === 'mse' ? 'mse' : 'minmax', observer_kwargs: {},
    };
    const quantizationConfig: Record<string, unknown> = {
      quant_method: 'compressed-tensors',
      format: 'pack-quantized',
      quantization_status: 'compressed',
      config_groups: { group_0: { targets: ['Linear'], weights, input_activations: null, output_activations: null } },
      ignore,
      kv_cache_scheme: null,
      global_compression_ratio: null,
    };
    cancel.check(ck.path);
    const output = await writer.finish(() => ({ format: 'pt' }), indexName('model.safetensors'), {}, () => ck.check());
    writer = undefined;
    const out = [output];
    // config.json with the quantization_config, and the input directory's other files.
    if (config) {
      const target = checkOutputs([join(dir, 'config.json')], [cfgPath, ...ck.files], force)[0];
      await writeFileAtomic(target, JSON.stringify({ ...config, quantization_config: quantizationConfig }, null, 2) + '\n');
      out.push(target);
    }
    for (const f of await readdir(srcDir)) {
      if (NOT_COPIED.test(f) || !(await isFile(join(srcDir, f)))) continue;
      const target = checkOutputs([join(dir, f)], [ck.path, ...ck.files], force)[0];
      if (target === join(srcDir, f)) continue;
      await writeFileAtomic(target, await readFile(join(srcDir, f)));
      out.push(target);
    }
    let sse = 0, signal = 0, n = 0, qn = 0;
    for (const r of reports) {
      n += r.numel;
      if (r.quantized) { sse += r.sse; signal += r.signal; qn += r.numel; }
    }
    return {
      input: ck.path,
      output,
      files: out,
      quantizationConfig,
      config: config !== undefined,
      tensors: reports,
      warnings,
      total: { numel: n, quantizedNumel: qn, sse, signal, sqnrDb: sse > 0 ? 10 * Math.log10(signal / sse) : null, bytes: written, bitsPerWeight: n ? (8 * written) / n : 0 },
    };
  } catch (e) {
    writer?.abort();
    const shrunk = ck.failure();
    if (shrunk) throw shrunk;
    if (e instanceof WeightpressError) throw e;
    throw fromNative(e, { file: outDir });
  } finally {
    cancel.dispose();
    ck.close();
  }
}

function scaleDtypeOf(dtype: string, asked: 'F16' | 'BF16' | 'F32' | undefined): 'F16' | 'BF16' | 'F32' {
  if (asked) return asked;
  return dtype === 'F16' || dtype === 'BF16' ? dtype : 'F32';
}

async function quantizeOne(
  p: Planned,
  data: Uint8Array,
  params: NativeIntParams,
  cancel: Cancel,
  warnings: string[],
  native: ReturnType<typeof loadNative>,
) {
  const t = p.t;
  const { rows, cols } = p;
  const bits = params.bits;
  const at = new Error();
  // Codes straight into compressed-tensors' words when a row fills whole int32s (LSB first = its order), else one
  // byte per code, packed per row here.
  const aligned = cols % (32 / bits) === 0;
  const run = async (sd: NativeIntParams['scaleDtype'], f16Precision = false) => {
    const q = { ...params, scaleDtype: sd, ...(f16Precision ? { f16Precision } : {}), ...(aligned ? {} : { packBits: 8 }) };
    const sz = native.intSizes(t.numel, cols, q);
    const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), zeros = new Uint8Array(sz.zerosBytes);
    const stats = await native.intQuantize({ data, dtype: t.dtype, numel: t.numel, cols, name: t.name }, q, codes, scales, zeros, cancel.flag);
    return { sz, codes, scales, zeros, stats, sd };
  };
  let r;
  try {
    try {
      r = await run(params.scaleDtype);
    } catch (e) {
      const err = fromNative(e, { file: t.file, tensor: t.name }, at);
      // As the int codec: F32 scales holding F16's 11 significant bits (lib/codecs/int.ts).
      if (err.code !== 'E_RANGE' || params.scaleDtype !== 'F16') throw err;
      r = await run('F32', true);
      warnings.push(`tensor "${t.name}": ${err.message}; weight_scale stored as F32 (of F16 precision)`);
    }
  } catch (e) {
    throw fromNative(e, { file: t.file, tensor: t.name }, at);
  }
  const { sz, codes, scales, zeros, stats, sd } = r;
  const pf = 32 / bits;
  const packed = aligned ? codes.subarray(0, rows * (cols / pf) * 4) : packRows(codes, rows, cols, bits);
  const gpr = sz.groupsPerRow;
  const shape = new Uint8Array(new BigInt64Array([BigInt(rows), BigInt(cols)]).buffer);
  const tensors = [
    { name: `${p.module}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil(cols / pf)], data: packed },
    { name: `${p.module}.weight_scale`, dtype: sd, shape: [rows, gpr], data: scales.subarray(0, rows * gpr * DTYPE_SIZE[sd]) },
    { name: `${p.module}.weight_shape`, dtype: 'I64', shape: [2], data: shape },
  ];
  if (!params.symmetric) tensors.push({ name: `${p.module}.weight_zero_point`, dtype: 'I32', shape: [Math.ceil(rows / pf), gpr], data: packColumns(unpackLsb(zeros, rows * gpr, bits), rows, gpr, bits) });
  return { tensors, stats };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
