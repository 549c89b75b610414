/**
 * decode(): a weightpress checkpoint (one file, or shards and an index) back to dense safetensors that any reader
 * loads, sharded the same way when large. inspect(): its report. Both drive the codecs (lib/codecs/) through their
 * interface only.
 */
import { Checkpoint } from './checkpoint.js';
import { codecOf } from './codecs/registry.js';
import { DTYPE_SIZE, isFloatDtype, numel } from './dtype.js';
import { FormatError, fromNative } from './errors.js';
import { FORMAT_KEY, isQuantized, type FileScheme } from './format.js';
import { Cancel, reportProgress } from './job.js';
import { totals, type Report, type TensorReport } from './report.js';
import { ShardWriter, ensureDir, groupBySize, indexName, outputTarget, readScheme, removeIfEmpty, shardNames } from './shards.js';
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

/** The scheme of a weightpress checkpoint, every entry checked by its codec against the stored tensors. */
function checkedScheme(ckpt: Checkpoint): FileScheme {
  const scheme = readScheme(ckpt);
  for (const [name, s] of Object.entries(scheme.tensors)) {
    const where = { file: ckpt.path, tensor: name };
    const codec = codecOf(s, where);
    codec.parse(s, (p) => new FormatError(`scheme: ${p}`, where));
    codec.check(ckpt, name, s);
  }
  return scheme;
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
    // Shards of at most maxShardSize bytes, in write order (a tensor larger than that gets one of its own).
    const groups = groupBySize(order, bytesOf, o.maxShardSize);
    const { dir, base, isDir } = outputTarget(output);
    if (isDir) created = ensureDir(dir);
    const files = shardNames(base, groups.length);
    const headerBase = 1024 + JSON.stringify(metadata).length * 1.2;
    writer = new ShardWriter(
      dir,
      groups.map((g, k) => ({ file: files[k], reserve: headerBase + g.reduce((a, n) => a + 2 * n.length + 128, 0) })),
      [ckpt.path, ...ckpt.files],
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
          dense = await codecOf(s, { file: ckpt.path, tensor: name }).decode(name, s, dt, djob);
          if (djob.saturated > before) warnings.push(`tensor "${name}": ${djob.saturated - before} values beyond ${dt}'s range saturated to its largest finite value`);
        } catch (e) {
          throw fromNative(e, { file: ckpt.path, tensor: name }, at);
        }
        await sink.add(name, dt, s.shape, dense);
        bytesDone += dense.byteLength;
        reportProgress(o.onProgress, { phase: 'decode', tensor: name, index: ++index, count: names.length, bytesDone, bytesTotal });
      }
    }
    cancel.check(ckpt.path);
    const out = await writer.finish(() => metadata, indexName(base));
    return { input: ckpt.path, output: out, tensors: names.length, bytesOut: bytesTotal, seconds: (performance.now() - started) / 1000, saturated: djob.saturated, warnings };
  } catch (e) {
    writer?.abort();
    removeIfEmpty(created, outputTarget(output).dir);
    throw e;
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
      });
    }
    return { input: ckpt.path, tensors, total: totals(tensors) };
  } finally {
    ckpt.close();
  }
}
