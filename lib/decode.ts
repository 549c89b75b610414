/**
 * decode(): a weightpress checkpoint (one file, or shards and an index) back to dense safetensors that any reader
 * loads, sharded the same way when large. inspect(): its report. Both drive the codecs (lib/codecs/) through their
 * interface only.
 */
import { Checkpoint } from './checkpoint.js';
import { codecOf } from './codecs/registry.js';
import { checkRowOffsets, decodeEntry } from './codecs/rowmean.js';
import { DTYPE_SIZE, isFloatDtype, numel } from './dtype.js';
import { FormatError, fromNative, type WeightpressError } from './errors.js';
import { DIGEST_KEY, FORMAT_KEY, isQuantized, type FileScheme, type TensorScheme } from './format.js';
import { Cancel, ProgressClock, reportProgress } from './job.js';
import { ruleLabel } from './recipe.js';
import { totals, type Report, type TensorReport } from './report.js';
import { ShardWriter, ensureDir, groupBySize, indexName, outputTarget, prepareOutput, readScheme, removeIfEmpty, shardNames } from './shards.js';
import { resolveDecodeOptions, type DecodeOptions } from './validate.js';

export interface DecodeResult {
  input: string;
  /** The dense file, or the index of its shards. */
  output: string;
  tensors: number;
  bytesOut: number;
  seconds: number;
  /** Values beyond the output dtype's range stored as its largest finite value (allowOverflow; else 0). */
  saturated: number;
  /** One line per tensor with saturated values. */
  warnings: string[];
}

/**
 * The scheme of a weightpress checkpoint, every entry checked by its codec against the stored tensors, and the
 * whole against the container: every stored tensor belongs to exactly one entry (a kept tensor under its own
 * name, or a part a quantized entry names), so that a scheme that leaves tensors out, or two entries that claim
 * one tensor, are FormatErrors rather than a file decoded without them.
 */
export function checkedScheme(ckpt: Checkpoint): FileScheme {
  const scheme = readScheme(ckpt);
  const owner = new Map<string, string>();
  for (const [name, s] of Object.entries(scheme.tensors)) {
    const where = { file: ckpt.path, tensor: name };
    const codec = codecOf(s, where);
    codec.parse(s, (p) => new FormatError(`scheme: ${p}`, where));
    try {
      codec.check(ckpt, name, s);
    } catch (e) {
      throw asInputError(fromNative(e, where), ckpt.path, name);
    }
    let stored = 0;
    const parts = partsOf(name, s, codec.storedNames(name));
    if (isQuantized(s) && s.rowOffset !== undefined) {
      checkRowOffsets(ckpt, name, s);
      parts.push(s.rowOffset);
    }
    for (const part of parts) {
      const other = owner.get(part);
      if (other !== undefined) throw new FormatError(`scheme: stored tensor "${part}" is claimed by this entry and by "${other}"`, where);
      owner.set(part, name);
      stored += ckpt.has(part) ? ckpt.info(part).byteLength : 0;
    }
    // The stored metrics repeat the sizes: the dense bytes (numel x the dtype's size) and every stored byte. They
    // must agree, or the entry's dtype or shape is not the one the file was written with.
    const m = s.metrics;
    if (m.bytesIn !== numel(s.shape) * DTYPE_SIZE[s.dtype] || m.bytesOut !== stored)
      throw new FormatError(`scheme: metrics say ${m.bytesIn} bytes in and ${m.bytesOut} stored, but ${s.dtype} ${JSON.stringify(s.shape)} is ${numel(s.shape) * DTYPE_SIZE[s.dtype]} bytes and the file stores ${stored}`, where);
  }
  for (const t of ckpt.tensors())
    if (!owner.has(t.name)) throw new FormatError('the file holds this tensor, but the weightpress scheme does not describe it', { file: t.file, tensor: t.name });
  return scheme;
}

/** The stored tensors of an entry: the tensor itself when kept; else the codec's parts that the entry names. */
function partsOf(name: string, s: TensorScheme, stored: string[]): string[] {
  if (!isQuantized(s)) return [name];
  // The names an entry gives: its string fields, and those of its codec's own object (the vector codec's `vector`).
  const values = Object.values(s).flatMap((v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : [v]));
  const named = new Set(values.filter((v): v is string => typeof v === 'string'));
  const parts = stored.filter((n) => named.has(n));
  return parts.length ? parts : stored;
}

/**
 * An error decoding a checked file can only be the file's fault (its stored data disagrees with itself): an
 * argument or internal error of a native decoder is a FormatError naming the input.
 */
function asInputError(e: WeightpressError, file: string, tensor: string): WeightpressError {
  if (e.code !== 'E_ARGUMENT' && e.code !== 'E_INTERNAL') return e;
  return new FormatError(`cannot decode: ${e.message}`, { file, tensor, cause: e });
}

/**
 * Decodes `input` (a weightpress file, its shard index, or a directory with either) to dense safetensors at
 * `output`: float tensors in `dtype` (default: each tensor's original dtype), the rest as stored; the input's
 * metadata without the scheme. An output larger than `maxShardSize` (default 5 GB) is written as shards and an
 * index, as quantize() does. A value beyond `dtype`'s range throws OverflowError (E_RANGE) unless `allowOverflow`
 * (then it is saturated and counted in `saturated`). Throws FormatError (not a weightpress file, inconsistent
 * scheme), IoError, CancelledError; nothing is written unless the whole job succeeds.
 */
export async function decode(input: string, output: string, options: DecodeOptions = {}): Promise<DecodeResult> {
  const o = resolveDecodeOptions(options);
  const cancel = new Cancel(o.signal);
  const started = performance.now();
  const clock = new ProgressClock();
  const ckpt = await Checkpoint.open(input);
  let writer: ShardWriter | undefined;
  let created: string | undefined;
  try {
    const scheme = checkedScheme(ckpt);
    const names = Object.keys(scheme.tensors);
    const outDtype = (dtype: string) => (o.dtype && isFloatDtype(dtype) ? o.dtype : dtype);
    const bytesOf = (n: string) => numel(scheme.tensors[n].shape) * DTYPE_SIZE[outDtype(scheme.tensors[n].dtype)];
    // Larger elements first keeps every tensor aligned (the format allows no gaps).
    const order = [...names].sort((a, b) => DTYPE_SIZE[outDtype(scheme.tensors[b].dtype)] - DTYPE_SIZE[outDtype(scheme.tensors[a].dtype)]);
    const metadata = { ...ckpt.metadata };
    delete metadata[FORMAT_KEY];
    delete metadata[DIGEST_KEY];
    // Shards of at most maxShardSize bytes, in write order (a tensor larger than that gets one of its own).
    const groups = groupBySize(order, bytesOf, o.maxShardSize);
    const { dir, base, isDir } = prepareOutput(output, [ckpt.path, ...ckpt.files], o.force);
    if (isDir) created = ensureDir(dir);
    const files = shardNames(base, groups.length);
    const headerBase = 1024 + JSON.stringify(metadata).length * 1.2;
    writer = new ShardWriter(
      dir,
      groups.map((g, k) => ({ file: files[k], reserve: headerBase + g.reduce((a, n) => a + 2 * n.length + 128, 0) })),
      [ckpt.path, ...ckpt.files],
      o.force,
    );
    const bytesTotal = names.reduce((a, n) => a + bytesOf(n), 0);
    let bytesDone = 0;
    let index = 0;
    const djob = { ckpt, threads: o.threads, cancel, allowOverflow: o.allowOverflow, saturated: 0 };
    const warnings: string[] = [];
    for (const [k, group] of groups.entries()) {
      const sink = writer.sink(k);
      for (const name of group) {
        cancel.check(ckpt.path);
        const s = scheme.tensors[name];
        const dt = outDtype(s.dtype);
        const at = new Error();
        let dense: Uint8Array;
        try {
          const before = djob.saturated;
          const c = codecOf(s, { file: ckpt.path, tensor: name });
          dense = isQuantized(s) ? await decodeEntry(c, name, s, dt, djob) : await c.decode(name, s, dt, djob);
          if (djob.saturated > before) warnings.push(`tensor "${name}": ${djob.saturated - before} values beyond ${dt}'s range saturated to its largest finite value`);
        } catch (e) {
          throw asInputError(fromNative(e, { file: ckpt.path, tensor: name }, at), ckpt.path, name);
        }
        if (dense.byteLength !== bytesOf(name)) throw new FormatError(`decodes to ${dense.byteLength} bytes, its dtype and shape need ${bytesOf(name)}`, { file: ckpt.path, tensor: name });
        ckpt.check(); // what was read is only good if the input did not shrink meanwhile
        await sink.add(name, dt, s.shape, dense);
        bytesDone += dense.byteLength;
        reportProgress(o.onProgress, { phase: 'decode', tensor: name, index: ++index, count: names.length, bytesDone, bytesTotal }, clock);
      }
    }
    cancel.check(ckpt.path);
    const out = await writer.finish(() => metadata, indexName(base), {}, () => ckpt.check());
    return { input: ckpt.path, output: out, tensors: names.length, bytesOut: bytesTotal, seconds: (performance.now() - started) / 1000, saturated: djob.saturated, warnings };
  } catch (e) {
    writer?.abort();
    removeIfEmpty(created, outputTarget(output).dir);
    throw ckpt.failure() ?? e; // a shrunk input is the cause of whatever followed
  } finally {
    cancel.dispose();
    ckpt.close();
  }
}

/**
 * The report of a weightpress checkpoint (file, shard index or directory), from the metrics it stores: the same
 * fields as quantize's, timings 0. Throws FormatError when the file is not a consistent weightpress file.
 */
export async function inspect(file: string): Promise<Report> {
  const ckpt = await Checkpoint.open(file);
  try {
    const scheme = checkedScheme(ckpt);
    const tensors: TensorReport[] = [];
    for (const [name, s] of Object.entries(scheme.tensors)) {
      const m = s.metrics ?? { mse: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: 0, bytesIn: 0, bytesOut: 0, seconds: 0 };
      tensors.push({
        name,
        dtype: s.dtype,
        shape: s.shape,
        numel: numel(s.shape),
        method: s.method,
        bits: isQuantized(s) ? s.bits : DTYPE_SIZE[s.dtype] * 8,
        granularity: codecOf(s, { file: ckpt.path, tensor: name }).granularity(s),
        ...m,
        ...(s.rule ? { rule: ruleLabel(s.rule) } : {}),
      });
    }
    return { input: ckpt.path, tensors, total: totals(tensors) };
  } finally {
    ckpt.close();
  }
}
