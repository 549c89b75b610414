/**
 * Per-tensor and whole-model metrics, their totals, the summary table, and the report file (--report FILE.html or
 * FILE.json: settings, rate–distortion points, histograms collected while streaming; docs/REPORT.md). The JSON
 * shapes are stable.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import { writeFileAtomic } from './atomic.js';
import type { TensorRef } from './checkpoint.js';
import type { Codec, DecodeJob, TensorSource, TensorTask } from './codecs/codec.js';
import { DTYPE_SIZE, isFloatDtype } from './dtype.js';
import { ArgumentError, fromNative } from './errors.js';
import { isQuantized, type QuantizedScheme, type StoredMetrics, type TensorScheme } from './format.js';
import { decodeEntry } from './codecs/rowmean.js';
import type { Cancel, TensorSink } from './job.js';
import { loadNative } from './load.js';
import { renderReportHtml } from './report-html.js';

export interface TensorReport extends StoredMetrics {
  name: string;
  dtype: string;
  shape: number[];
  /** 'keep' for tensors stored as they were. */
  method: string;
  /** Bits per code; for kept tensors the dtype's bits. */
  bits: number;
  granularity: 'tensor' | 'row' | 'group' | 'network' | 'block' | null;
  /** Elements. */
  numel: number;
  /** Where the bandwidth-bound passes ran ('cpu' or 'cuda'); absent for kept tensors and in files. */
  device?: string;
  /** The recipe rule that chose its method and options ("preset q4_k_m #2"); absent without a recipe. */
  rule?: string;
}

export interface TotalReport extends StoredMetrics {
  tensors: number;
  quantizedTensors: number;
  numel: number;
  /** MSE and SQNR over the quantized tensors only (`mse` is over every weight; `sqnrDb` equals quantizedSqnrDb). */
  quantizedMse: number;
  quantizedSqnrDb: number | null;
  /** bytesIn / bytesOut over every tensor. */
  compressionRatio: number;
  /** Over the entropy-coded tensors (weighted by weights): H and L of the codes, bits per weight. */
  entropy?: number;
  avgCodeLength?: number;
}

export interface Report {
  input: string;
  output?: string;
  tensors: TensorReport[];
  total: TotalReport;
  /** Things the caller should know (e.g. tensors without importance weights). */
  warnings?: string[];
}

export function sqnrDb(signal: number, sse: number): number | null {
  if (sse <= 0) return null; // exact: infinite SQNR (JSON has no Infinity)
  if (signal <= 0) return -Infinity;
  return 10 * Math.log10(signal / sse);
}

/** Totals. Sums of squared error and signal are recovered from each tensor's mse, sqnr and numel. */
export function totals(tensors: TensorReport[], seconds?: number): TotalReport {
  let ne = 0, he = 0, le = 0;
  let n = 0, nq = 0, sse = 0, sseQ = 0, sigQ = 0, bytesIn = 0, bytesOut = 0, secs = 0, maxErr = 0, q = 0;
  for (const t of tensors) {
    n += t.numel;
    bytesIn += t.bytesIn;
    bytesOut += t.bytesOut;
    secs += t.seconds;
    maxErr = Math.max(maxErr, t.maxAbsErr);
    const e = t.mse * t.numel;
    const s = t.sqnrDb === null ? 0 : e * 10 ** (t.sqnrDb / 10);
    sse += e;
    if (t.entropy !== undefined) {
      ne += t.numel;
      he += t.entropy * t.numel;
      le += (t.avgCodeLength ?? 0) * t.numel;
    }
    if (t.method !== 'keep') {
      q++;
      nq += t.numel;
      sseQ += e;
      sigQ += s;
    }
  }
  return {
    tensors: tensors.length,
    quantizedTensors: q,
    numel: n,
    mse: n ? sse / n : 0,
    // Kept tensors add no error; SQNR is taken over the quantized tensors, whose signal the file records.
    sqnrDb: sseQ > 0 ? sqnrDb(sigQ, sseQ) : null,
    quantizedMse: nq ? sseQ / nq : 0,
    quantizedSqnrDb: sseQ > 0 ? sqnrDb(sigQ, sseQ) : null,
    maxAbsErr: maxErr,
    bitsPerWeight: n ? (bytesOut * 8) / n : 0,
    bytesIn,
    bytesOut,
    seconds: seconds ?? secs,
    compressionRatio: bytesOut ? bytesIn / bytesOut : 0,
    ...(ne ? { entropy: he / ne, avgCodeLength: le / ne } : {}),
  };
}

function fmtBytes(b: number): string {
  if (b >= 1 << 30) return `${(b / (1 << 30)).toFixed(2)} GiB`;
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(2)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b} B`;
}

/** The summary table printed by the CLI. */
export function formatTable(r: Report, maxRows = 40): string {
  const head = ['tensor', 'dtype', 'shape', 'method', 'bits', 'gran', 'SQNR dB', 'MSE', 'max|err|', 'bpw', 'in', 'out', 's'];
  const rows: string[][] = [];
  const shown = r.tensors.length > maxRows ? r.tensors.filter((t) => t.method !== 'keep').slice(0, maxRows) : r.tensors;
  // A recipe's run: the rule that chose each tensor's method and options, as the last column.
  const ruled = r.tensors.some((t) => t.rule);
  if (ruled) head.push('rule');
  for (const t of shown) {
    rows.push([
      t.name, t.dtype, t.shape.join('x'), t.method, String(t.bits), t.granularity ?? '-',
      t.sqnrDb === null ? 'exact' : t.sqnrDb.toFixed(2), t.mse.toExponential(3), t.maxAbsErr.toExponential(2),
      t.bitsPerWeight.toFixed(3), fmtBytes(t.bytesIn), fmtBytes(t.bytesOut), t.seconds.toFixed(3),
      ...(ruled ? [t.rule ?? '-'] : []),
    ]);
  }
  const T = r.total;
  const sep = head.map(() => '');
  rows.push(sep);
  rows.push([
    `total (${T.tensors} tensors, ${T.quantizedTensors} quantized)`, '', '', '', '', '',
    T.sqnrDb === null ? 'exact' : T.sqnrDb.toFixed(2), T.mse.toExponential(3), T.maxAbsErr.toExponential(2),
    T.bitsPerWeight.toFixed(3), fmtBytes(T.bytesIn), fmtBytes(T.bytesOut), T.seconds.toFixed(3),
    ...(ruled ? [''] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 6 || i >= 13 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of rows) out.push(row === sep ? widths.map((w) => '-'.repeat(w)).join('  ') : line(row));
  if (shown.length < r.tensors.length) out.push(`(${r.tensors.length - shown.length} more tensors not shown; --json lists all)`);
  if (T.quantizedSqnrDb !== null) out.push(`quantized tensors only: SQNR ${T.quantizedSqnrDb.toFixed(2)} dB, MSE ${T.quantizedMse.toExponential(3)}`);
  return out.join('\n');
}

/** The --json object: {tensors: [...], total: {...}} with the documented fields. */
export function toJson(r: Report): object {
  return {
    input: r.input,
    ...(r.output ? { output: r.output } : {}),
    tensors: r.tensors.map(tensorJson),
    total: r.total,
    ...(r.warnings ? { warnings: r.warnings } : {}),
  };
}

// ---- The report file (--report FILE.html | FILE.json): docs/REPORT.md ------------------------------------------

/** Bins of every histogram in a report file: fixed, so that collecting one costs O(BINS) memory whatever the tensor. */
export const HISTOGRAM_BINS = 256;
/** Tensors a report file draws when the caller names none: the largest quantized ones. */
export const DEFAULT_REPORT_TENSORS = 4;

/**
 * One chosen tensor's histograms (docs/REPORT.md, "histograms"): counts of its weights and of their decoded values
 * in BINS equal bins over [min, max] (value x in bin floor((x − min) · BINS / (max − min)); max in the last bin),
 * and the learned levels where the codec has levels in the weights' domain.
 */
export interface ReportHistogram {
  tensor: string;
  codec: string;
  method: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** `clipped`: the range is the weights' 0.05 %–99.95 % quantiles (to 1/65536 of their range), not their min and max, because the tails would squeeze the rest into a few bins. */
  bins: { count: number; min: number; max: number; clipped: boolean };
  /** Counts of the input weights per bin; those below min and above max (clipped) counted apart; `nonFinite`: inf and NaN. */
  weights: number[];
  weightsBelow: number;
  weightsAbove: number;
  nonFinite: number;
  /** Counts of the decoded weights per bin (null for a kept tensor), and those below min and above max. */
  decoded: number[] | null;
  decodedBelow: number;
  decodedAbove: number;
  /**
   * The codebook drawn over the histogram: the levels (ascending, as stored, F16 codebooks widened) of slice
   * `slice` of `slices` (a slice: `sliceSize` consecutive weights sharing one codebook); null when the codec stores
   * no levels in the weights' domain (block: a table scaled per block; vector: centroids of subvectors; keep).
   */
  levels: number[] | null;
  slice?: number;
  slices?: number;
  sliceSize?: number;
  /** With per-row or per-group codebooks: counts of slice `slice`'s own weights, in the same bins. */
  sliceWeights?: number[];
  /** What is drawn and why, in one sentence. */
  note: string;
}

/** The report file's document (--report FILE.json writes it as it is; FILE.html draws it). Schema: docs/REPORT.md. */
export interface ReportDocument {
  format: 'weightpress-report';
  version: 1;
  weightpress: string;
  created: string;
  input: string;
  output?: string;
  /** The run's options (resolved, with defaults): the job's, the codec's and the method's; callbacks left out. */
  settings: Record<string, unknown>;
  /** quantize --json's tensor rows, each with the codec that stored it. */
  tensors: (ReturnType<typeof tensorJson> & { codec: string })[];
  total: TotalReport;
  /** Rate–distortion points: each quantized tensor with a finite SQNR, and the run's total (bits per weight over every stored byte, SQNR over the quantized tensors). */
  rateDistortion: { points: { tensor: string; bitsPerWeight: number; sqnrDb: number }[]; total: { bitsPerWeight: number; sqnrDb: number | null } };
  histograms: ReportHistogram[];
  warnings: string[];
}

function tensorJson(t: TensorReport) {
  return {
    name: t.name, dtype: t.dtype, shape: t.shape, method: t.method, bits: t.bits, granularity: t.granularity,
    mse: t.mse, sqnrDb: t.sqnrDb, maxAbsErr: t.maxAbsErr, bitsPerWeight: t.bitsPerWeight,
    bytesIn: t.bytesIn, bytesOut: t.bytesOut, seconds: t.seconds, numel: t.numel, ...(t.device ? { device: t.device } : {}), ...(t.rule ? { rule: t.rule } : {}),
    ...(t.entropy !== undefined
      ? { entropy: t.entropy, avgCodeLength: t.avgCodeLength, compressionRatio: t.compressionRatio, paperCompressionRatio: t.paperCompressionRatio }
      : {}),
    ...(t.layerOutputError ? { layerOutputError: t.layerOutputError } : {}),
    ...(t.rank ? { rank: t.rank } : {}),
  };
}

/**
 * The report file's document for a finished run: `r` (quantize()'s report), the codec of each tensor, the run's
 * settings and the histograms collected while streaming (HistogramCollector).
 */
export function reportDocument(
  r: Report,
  extra: { version: string; settings: Record<string, unknown>; codecOf: (tensor: string) => string; histograms: ReportHistogram[]; created?: Date },
): ReportDocument {
  const points = r.tensors
    .filter((t) => t.method !== 'keep' && t.sqnrDb !== null && Number.isFinite(t.sqnrDb))
    .map((t) => ({ tensor: t.name, bitsPerWeight: t.bitsPerWeight, sqnrDb: t.sqnrDb as number }));
  return {
    format: 'weightpress-report',
    version: 1,
    weightpress: extra.version,
    created: (extra.created ?? new Date()).toISOString(),
    input: r.input,
    ...(r.output ? { output: r.output } : {}),
    settings: extra.settings,
    tensors: r.tensors.map((t) => ({ ...tensorJson(t), codec: extra.codecOf(t.name) })),
    total: r.total,
    rateDistortion: { points, total: { bitsPerWeight: r.total.bitsPerWeight, sqnrDb: r.total.quantizedSqnrDb } },
    histograms: extra.histograms,
    warnings: r.warnings ?? [],
  };
}

/** Elements converted to F32 at a time while histogramming (bounded memory whatever the tensor). */
const CHUNK = 1 << 20;

/** Calls `fn` with the tensor's values as F32, a chunk at a time (a view of the bytes when they are aligned F32). */
async function eachF32(bytes: Uint8Array, dtype: string, name: string, fn: (v: Float32Array) => void): Promise<void> {
  const size = DTYPE_SIZE[dtype];
  const n = Math.floor(bytes.byteLength / size);
  if (dtype === 'F32' && bytes.byteOffset % 4 === 0) {
    for (let i = 0; i < n; i += CHUNK) fn(new Float32Array(bytes.buffer, bytes.byteOffset + i * 4, Math.min(CHUNK, n - i)));
    return;
  }
  const buf = new Float32Array(Math.min(CHUNK, n));
  const native = loadNative();
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    await native.convert(bytes.subarray(i * size, (i + m) * size), dtype, 'F32', new Uint8Array(buf.buffer, 0, m * 4), name, true);
    fn(buf.subarray(0, m));
  }
}

/** Fixed bins over [min, max]: counts of the values in it; those below and above are counted apart. */
class Bins {
  readonly counts: Float64Array;
  below = 0;
  above = 0;
  nonFinite = 0;
  private readonly scale: number;
  constructor(
    readonly min: number,
    readonly max: number,
    count = HISTOGRAM_BINS,
  ) {
    this.counts = new Float64Array(count);
    this.scale = count / (max - min);
  }
  add(v: Float32Array): void {
    const { counts, min, max, scale } = this;
    const last = counts.length - 1;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (x >= min && x <= max) counts[Math.min(last, Math.floor((x - min) * scale))]++;
      else if (x - x !== 0) this.nonFinite++; // inf, NaN
      else if (x < min) this.below++;
      else this.above++;
    }
  }
  list(): number[] {
    return Array.from(this.counts);
  }
}

/** Fine bins used to find the tails: the bins clip to [P(TAIL), P(1 − TAIL)] when that is under half the range. */
const FINE_BINS = 65536;
const TAIL = 0.0005;

/** The stored parts of one tensor as a codec writes them: passed on to the output, and kept (copied) for decoding. */
class Captured implements TensorSource {
  private readonly parts = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  constructor(
    readonly path: string,
    private readonly file: string,
  ) {}
  sink(out: TensorSink): TensorSink {
    return {
      add: async (name, dtype, shape, data) => {
        await out.add(name, dtype, shape, data);
        this.parts.set(name, { dtype, shape: [...shape], data: data.slice() });
      },
    };
  }
  has(name: string): boolean {
    return this.parts.has(name);
  }
  info(name: string): TensorRef {
    const p = this.parts.get(name);
    if (!p) throw new Error(`internal: the codec wrote no tensor "${name}"`);
    const numel = p.shape.reduce((a, b) => a * b, 1);
    return { name, dtype: p.dtype, shape: p.shape, numel, byteLength: p.data.byteLength, file: this.file };
  }
  bytes(name: string): Uint8Array {
    return this.parts.get(name)?.data ?? new Uint8Array(0);
  }
}

/**
 * Collects the report file's histograms while quantize() streams: for each chosen tensor, before its codec runs,
 * the weights' histogram (the tensor is in memory then), and after it, the decoded values' histogram (decoded from
 * the parts the codec just wrote, kept aside as it wrote them) and, for the scalar codec, the codebook of one slice.
 * Memory: HISTOGRAM_BINS counts per chosen tensor, plus, while one tensor is worked on, its stored parts and its
 * decoded values in its own dtype. No second pass over the checkpoint.
 */
export class HistogramCollector {
  private readonly chosen: Set<string>;
  private readonly order: Map<string, number>;
  private readonly done: ReportHistogram[] = [];

  /**
   * `tasks`: the plan's. `patterns`: name patterns (compiled by the caller) choosing float tensors, quantized or
   * kept; none: the DEFAULT_REPORT_TENSORS largest quantized tensors.
   */
  constructor(tasks: readonly TensorTask[], patterns: readonly RegExp[]) {
    this.order = new Map(tasks.map((t, i) => [t.tensor.name, i]));
    const float = tasks.filter((t) => isFloatDtype(t.tensor.dtype) && t.tensor.numel > 0);
    const picked = patterns.length
      ? float.filter((t) => patterns.some((re) => re.test(t.tensor.name)))
      : float
          .filter((t) => t.codec !== 'keep')
          .sort((a, b) => b.tensor.numel - a.tensor.numel || this.order.get(a.tensor.name)! - this.order.get(b.tensor.name)!)
          .slice(0, DEFAULT_REPORT_TENSORS);
    this.chosen = new Set(picked.map((t) => t.tensor.name));
  }

  /** The histograms collected so far, in the input's order of tensors. */
  histograms(): ReportHistogram[] {
    return [...this.done].sort((a, b) => this.order.get(a.tensor)! - this.order.get(b.tensor)!);
  }

  /** For a chosen tensor, what to call around its encode; undefined for the others. */
  watch(task: TensorTask): TensorWatch | undefined {
    return this.chosen.has(task.tensor.name) ? new TensorWatch(task, (h) => this.done.push(h)) : undefined;
  }
}

/** One chosen tensor's collection: before() with its input bytes, sink() around the output, after() with its scheme. */
export class TensorWatch {
  private weights?: Bins;
  private slice?: Bins;
  private clipped = false;
  private readonly captured: Captured;

  constructor(
    private readonly task: TensorTask,
    private readonly push: (h: ReportHistogram) => void,
  ) {
    this.captured = new Captured(`${task.tensor.file} (stored parts of "${task.tensor.name}")`, task.tensor.file);
  }

  /** The weights' histogram, from the input tensor's bytes (two passes over the in-memory tensor: range, counts). */
  async before(data: Uint8Array): Promise<void> {
    const t = this.task.tensor;
    let min = Infinity, max = -Infinity;
    await eachF32(data, t.dtype, t.name, (v) => {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (x - x !== 0) continue; // inf, NaN
        if (x < min) min = x;
        if (x > max) max = x;
      }
    });
    if (!(min <= max)) min = max = 0; // no finite weight
    if (min === max) {
      const pad = Math.abs(min) * 0.01 || 1;
      min -= pad;
      max += pad;
    }
    // Heavy tails (an LLM's outlier columns) would squeeze the bulk into a bin or two: find the TAIL quantiles on
    // fine bins, and clip to them (widened to fine-bin edges) when they span under half the range.
    const fine = new Bins(min, max, FINE_BINS);
    await eachF32(data, t.dtype, t.name, (v) => fine.add(v));
    const finite = t.numel - fine.nonFinite - fine.below - fine.above;
    const fw = (max - min) / FINE_BINS;
    let lo = 0, hi = FINE_BINS - 1;
    for (let c = 0; lo < FINE_BINS - 1 && (c += fine.counts[lo]) <= finite * TAIL; ) lo++;
    for (let c = 0; hi > 0 && (c += fine.counts[hi]) <= finite * TAIL; ) hi--;
    if (hi >= lo && (hi + 1 - lo) * 2 < FINE_BINS) {
      this.clipped = true;
      [min, max] = [min + lo * fw, min + (hi + 1) * fw];
    }
    this.weights = new Bins(min, max);
    await eachF32(data, t.dtype, t.name, (v) => this.weights!.add(v));
    const l = this.task.layout as { granularity?: string; sliceSize?: number };
    if (this.task.codec === 'scalar' && (l.granularity === 'row' || l.granularity === 'group') && l.sliceSize) {
      this.slice = new Bins(min, max);
      await eachF32(data.subarray(0, l.sliceSize * DTYPE_SIZE[t.dtype]), t.dtype, t.name, (v) => this.slice!.add(v));
    }
  }

  /** The sink the codec writes to: `out`, with the stored parts kept for after(). */
  sink(out: TensorSink): TensorSink {
    return this.captured.sink(out);
  }

  /** The decoded values' histogram and the levels, once the codec has written the tensor. */
  async after(scheme: TensorScheme, codec: Codec, threads: number, cancel: Cancel): Promise<void> {
    const t = this.task.tensor;
    const w = this.weights;
    if (!w) throw new Error('internal: TensorWatch.after() before before()');
    const kept = this.task.codec === 'keep';
    let decoded: Bins | undefined;
    if (!kept) {
      decoded = new Bins(w.min, w.max);
      const job: DecodeJob = { ckpt: this.captured, threads, cancel, allowOverflow: true, saturated: 0 };
      // As decode() gives it: with the row offsets (--preserve-mean), rounded once to the tensor's dtype.
      const dense = isQuantized(scheme) ? await decodeEntry(codec, t.name, scheme, t.dtype, job) : await codec.decode(t.name, scheme, t.dtype, job);
      await eachF32(dense, t.dtype, t.name, (v) => decoded!.add(v));
    }
    let levels: number[] | null = null;
    let note: string;
    const s = scheme as QuantizedScheme;
    const slices = s.slices ?? 1;
    if (this.task.codec === 'scalar') {
      const cb = this.captured.info(s.codebook);
      const k = cb.shape[1];
      const row = this.captured.bytes(s.codebook).subarray(0, k * DTYPE_SIZE[cb.dtype]);
      const out = new Float32Array(k);
      try {
        await loadNative().convert(row, cb.dtype, 'F32', new Uint8Array(out.buffer), s.codebook, true);
      } catch (e) {
        throw fromNative(e, { file: t.file, tensor: t.name });
      }
      levels = Array.from(out);
      note =
        slices === 1
          ? `the ${k} levels of the tensor's codebook over the histogram of its weights and of their decoded values`
          : `the ${k} levels of the codebook of ${s.granularity} 0 (one of ${slices} codebooks, one per ${s.granularity === 'row' ? 'row' : `group of ${s.sliceSize} weights`}) over the histograms of all weights, of ${s.granularity} 0's weights and of the decoded values`;
    } else if (kept) note = 'kept as it is: the histogram of its weights; no levels';
    else if (this.task.codec === 'block')
      note = "the block codec's levels are its learned table scaled per block, so there is no one set of levels to draw: the histogram of the decoded values shows where they fall";
    else if (this.task.codec === 'vector')
      note = 'vector quantization has no scalar levels (its codebook holds centroids of subvectors): the histogram of the decoded values shows the values it reproduces';
    else note = `the ${this.task.codec} codec stores no one set of levels: the histogram of the decoded values shows where they fall`;
    this.push({
      tensor: t.name,
      codec: this.task.codec,
      method: this.task.method,
      dtype: t.dtype,
      shape: t.shape,
      numel: t.numel,
      bins: { count: HISTOGRAM_BINS, min: w.min, max: w.max, clipped: this.clipped },
      weights: w.list(),
      weightsBelow: w.below,
      weightsAbove: w.above,
      nonFinite: w.nonFinite,
      decoded: decoded ? decoded.list() : null,
      decodedBelow: decoded?.below ?? 0,
      decodedAbove: decoded?.above ?? 0,
      levels,
      ...(levels ? { slice: 0, slices, sliceSize: s.sliceSize } : {}),
      ...(levels && this.slice ? { sliceWeights: this.slice.list() } : {}),
      note,
    });
  }
}

/** Same device and inode (a hard link, or the path through a symlink). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a), y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Checks a report file path before any work: it ends in .html/.htm or .json, its directory exists, it is a regular
 * file or nothing yet, and it is neither an input nor one of the output's files (`outputs`, paths). Throws
 * ArgumentError naming the option and the file.
 */
export function checkReportFile(file: string, inputs: string[], outputs: string[]): void {
  const p = resolve(file);
  if (!/\.(html?|json)$/i.test(p)) throw new ArgumentError(`option report: must be a path ending in .html or .json, got ${JSON.stringify(file)}`, { file });
  let dir;
  try {
    dir = statSync(dirname(p));
  } catch {
    dir = undefined;
  }
  if (!dir?.isDirectory()) throw new ArgumentError(`option report: the directory ${dirname(p)} does not exist`, { file: p });
  let st;
  try {
    st = statSync(p);
  } catch {
    st = undefined; // nothing there yet (or a dangling symlink: the writer refuses it)
  }
  if (st && !st.isFile()) throw new ArgumentError(`option report: ${p} is not a regular file`, { file: p });
  const input = inputs.find((i) => sameFile(i, p));
  if (input) throw new ArgumentError(`option report: ${p} is the input ${input}; write the report elsewhere`, { file: p });
  if (outputs.some((o) => resolve(o) === p || sameFile(o, p))) throw new ArgumentError(`option report: ${p} is the quantized output; write the report elsewhere`, { file: p });
}

/** Writes the report file atomically: `doc` as JSON (a path ending .json) or the self-contained HTML page. */
export async function writeReport(file: string, doc: ReportDocument): Promise<void> {
  const text = /\.json$/i.test(file) ? JSON.stringify(doc, null, 1) + '\n' : renderReportHtml(doc);
  await writeFileAtomic(resolve(file), text);
}
