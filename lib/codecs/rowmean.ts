/**
 * Row-mean (row-sum) preservation, for every quantizing codec (issue #10 §4; docs/FORMAT.md "Row offsets").
 *
 * A layer's output error is Σ_i e_i x_i over a row's weight errors e_i; with inputs of mean μ ≠ 0 (after a ReLU,
 * or pixels) the part μ Σ_i e_i adds up coherently over the row, however small each e_i. Exact per-row k-means keeps
 * Σ_i e_i = 0 by construction (its levels are cell means); block scales and shared tables do not. After a codec has
 * encoded a tensor, the tensor is decoded (in memory, F32), and each row r of `cols` weights gets the offset
 *   o_r = (Σ_i x_i − Σ_i x̂_i) / cols        (sums in F64)
 * stored as one tensor `<name>.__wp_row_offset` of shape [rows] (F16 codes times a power-of-two `rowOffsetScale`
 * D in the scheme, D chosen so the largest offset sits near 2^14; F32 with no scale when the offsets span more than
 * F16's normal range) and added at decode: o_r = fl32(code_r × D), x̂'_i = fl32(x̂_i + o_r). That is the MSE-optimal constant per row, so the
 * weight error can only fall (up to rounding), and each row's decoded sum equals the original's within the offset's
 * rounding: |Σ x̂' − Σ x| ≤ cols · (|o_r − stored o_r| + ½ ulp_F32 of the decoded values).
 * Cost: 16 (or 32) bits per row, counted in the bits per weight.
 *
 * Option `preserveMean` ('auto' | 'on' | 'off'; --preserve-mean): 'auto' is on for the block codec (measured on
 * the real TF.js models, bench/network: +0.3 to +3 dB output SQNR at 4 bits) and off for the scalar and vector
 * codecs (exact k-means already keeps row sums; PQ's codewords are means too).
 */
import { DTYPE_SIZE, numel } from '../dtype.js';
import { FormatError } from '../errors.js';
import type { Checkpoint, TensorRef } from '../checkpoint.js';
import type { QuantizedScheme, StoredMetrics } from '../format.js';
import type { TensorSink } from '../job.js';
import { loadNative } from '../load.js';
import { option } from '../methods/options.js';
import type { Codec, DecodeJob, EncodeJob, EncodeResult, TaskOptions, TensorSource, TensorTask } from './codec.js';

export const PRESERVE_MEAN = option({
  name: 'preserveMean', type: 'enum', values: ['auto', 'on', 'off'], default: 'auto', defaultDoc: 'auto: on for the block codec, off for scalar and vector',
  doc: "correct each row's mean error with a per-row offset added at decode (16 bits per row)", flag: '--preserve-mean', metavar: 'auto|on|off',
});

/** The codecs whose 'auto' is on (bench/network: the block format loses output SQNR to row-mean errors). */
const ON_BY_DEFAULT = new Set(['block']);

export function rowOffsetName(tensor: string): string {
  return `${tensor}.__wp_row_offset`;
}

/** Whether a task stores row offsets. */
export function preservesMean(task: TensorTask): boolean {
  if (task.codec === 'keep') return false;
  const v = (task.options as TaskOptions & { preserveMean?: string }).preserveMean ?? 'auto';
  return v === 'on' || (v === 'auto' && ON_BY_DEFAULT.has(task.codec));
}

/** Rows and row length of a shape (a 1-D tensor is one row; docs/FORMAT.md). */
export function rowsOf(shape: readonly number[]): { rows: number; cols: number } {
  const n = numel(shape);
  if (shape.length < 2 || n === 0) return { rows: n === 0 ? 0 : 1, cols: n };
  return { rows: shape[0], cols: n / shape[0] };
}

/** Header and data bytes that row offsets add to a task's output, at most. */
export function rowOffsetBytes(t: TensorRef): { header: number; data: number } {
  return { header: 240 + t.name.length * 2, data: rowsOf(t.shape).rows * 4 + 8 };
}

/** A sink that keeps what a codec stores (for the in-memory decode) and passes it on. */
export class CapturingSink implements TensorSink {
  readonly stored = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  constructor(private readonly inner: TensorSink) {}
  async add(name: string, dtype: string, shape: number[], data: Uint8Array): Promise<void> {
    this.stored.set(name, { dtype, shape, data });
    await this.inner.add(name, dtype, shape, data);
  }
}

/** The stored tensors of one entry as a read-only checkpoint, for the codec's own decode. */
function memoryCheckpoint(path: string, stored: CapturingSink['stored']): Checkpoint {
  const get = (name: string) => {
    const e = stored.get(name);
    if (!e) throw new FormatError(`stored tensor "${name}" missing`, { file: path, tensor: name });
    return e;
  };
  const m = {
    path,
    has: (name: string) => stored.has(name),
    bytes: (name: string) => get(name).data,
    info: (name: string): TensorRef => {
      const e = get(name);
      return { name, file: path, dtype: e.dtype, shape: e.shape, numel: numel(e.shape), byteLength: e.data.byteLength } as TensorRef;
    },
    advise: () => {},
    check: () => {},
  };
  return m as unknown as Checkpoint;
}

/**
 * Calls f(x, first) for consecutive runs of whole rows of the source tensor as F32 (`x[k]` is element first + k):
 * views when the tensor is F32, else converted a chunk of about 2^20 elements at a time, so that no F32 copy of the
 * whole source is held beside the decode.
 */
async function forSourceRows(ckpt: Checkpoint, t: TensorRef, cols: number, f: (x: Float32Array, first: number) => void): Promise<void> {
  const b = ckpt.bytes(t.name);
  if (t.dtype === 'F32' && b.byteOffset % 4 === 0) return f(new Float32Array(b.buffer, b.byteOffset, t.numel), 0);
  const size = DTYPE_SIZE[t.dtype];
  const step = Math.max(1, Math.floor(2 ** 20 / cols)) * cols;
  const scratch = new Float32Array(Math.min(step, t.numel));
  for (let first = 0; first < t.numel; first += step) {
    const n = Math.min(step, t.numel - first);
    const x = scratch.subarray(0, n);
    await loadNative().convert(b.subarray(first * size, (first + n) * size), t.dtype, 'F32', new Uint8Array(x.buffer, 0, n * 4), t.name, true);
    f(x, first);
  }
}

const F16_MIN_NORMAL = 2 ** -14, F16_MAX = 65504;

/**
 * After `codec` encoded `task` into `sink` (result `r`): computes the row offsets, stores them, and returns the
 * result with the scheme naming them and the metrics of the corrected decode (error, bits per weight, bytes).
 */
export async function addRowOffsets(task: TensorTask, job: EncodeJob, codec: Codec, r: EncodeResult, sink: CapturingSink, out: TensorSink): Promise<EncodeResult> {
  const t = task.tensor;
  const s = r.scheme as QuantizedScheme;
  const { rows, cols } = rowsOf(t.shape);
  if (!rows || !cols) return r;
  const djob: DecodeJob = { ckpt: memoryCheckpoint(job.ckpt.path, sink.stored), threads: job.threads, cancel: job.cancel, allowOverflow: true, saturated: 0 };
  const dec = await codec.decode(t.name, s, 'F32', djob);
  const xh = new Float32Array(dec.buffer, dec.byteOffset, t.numel);
  const off = new Float64Array(rows);
  await forSourceRows(job.ckpt, t, cols, (x, first) => {
    for (let i = first / cols, end = (first + x.length) / cols; i < end; i++) {
      let d = 0;
      for (let j = i * cols, e = j + cols; j < e; j++) d += x[j - first] - xh[j];
      off[i] = d / cols;
    }
  });
  // F16 codes times a power-of-two scale D (so that the largest offset sits near 2^14, whatever the weights'
  // magnitude); F32 (D = 1) when a nonzero offset would still fall below F16's normal range.
  let max = 0, min = Infinity;
  for (const o of off) {
    const a = Math.abs(o);
    if (a > max) max = a;
    if (a > 0 && a < min) min = a;
  }
  const scale = max > 0 ? 2 ** (Math.floor(Math.log2(max)) - 14) : 1;
  const f16 = max === 0 || (min / scale >= F16_MIN_NORMAL && max / scale <= F16_MAX && Number.isFinite(scale) && scale > 0);
  const dtype = f16 ? 'F16' : 'F32';
  const D = f16 ? scale : 1;
  const bytes = new Uint8Array(rows * DTYPE_SIZE[dtype]);
  const scaled = Float32Array.from(off, (o) => o / D);
  await loadNative().convert(new Uint8Array(scaled.buffer), 'F32', dtype, bytes, t.name);
  // The offsets as the decoder forms them (fl32(code × D), exact: D is a power of two), and the corrected decode's
  // error (as the decoder computes it: fl32(x̂ + o)).
  const stored = new Float32Array(rows);
  await loadNative().convert(bytes, dtype, 'F32', new Uint8Array(stored.buffer), t.name);
  for (let i = 0; i < rows; i++) stored[i] = Math.fround(stored[i] * D);
  let sse = 0, sig = 0, maxAbs = 0;
  await forSourceRows(job.ckpt, t, cols, (x, first) => {
    for (let i = first / cols, end = (first + x.length) / cols; i < end; i++) {
      const o = stored[i];
      for (let j = i * cols, e = j + cols; j < e; j++) {
        const v = Math.fround(xh[j] + o), d = x[j - first] - v;
        if (!Number.isFinite(v)) throw new FormatError(`row ${i}: the mean-corrected value is not finite`, { file: t.file, tensor: t.name });
        sse += d * d;
        sig += x[j - first] ** 2;
        if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
      }
    }
  });
  const name = rowOffsetName(t.name);
  await out.add(name, dtype, [rows], bytes);
  const m0 = r.metrics;
  const metrics: StoredMetrics = {
    ...m0,
    mse: sse / t.numel,
    sqnrDb: sse > 0 ? 10 * Math.log10(sig / sse) : null,
    maxAbsErr: maxAbs,
    bitsPerWeight: m0.bitsPerWeight + (bytes.byteLength * 8) / t.numel,
    bytesOut: m0.bytesOut + bytes.byteLength,
  };
  if (m0.compressionRatio !== undefined) metrics.compressionRatio = m0.bytesIn / metrics.bytesOut;
  return { scheme: { ...s, rowOffset: name, rowOffsetDtype: dtype, ...(D !== 1 ? { rowOffsetScale: D } : {}), metrics }, metrics, report: r.report };
}

/**
 * A stored entry decoded to `dtype` with its row offsets, if it has any: decoded in F32, the offsets added in F32
 * (fl32(x̂ + o)), then rounded once to `dtype` (saturated values counted in job.saturated). Used by decode() and by
 * the report file, so both see the same values.
 */
export async function decodeEntry(codec: Codec, name: string, s: QuantizedScheme, dtype: string, job: DecodeJob): Promise<Uint8Array> {
  if (s.rowOffset === undefined) return codec.decode(name, s, dtype, job);
  const f32 = await codec.decode(name, s, 'F32', job);
  await applyRowOffsets(job.ckpt, s, f32);
  if (dtype === 'F32') return f32;
  const dense = new Uint8Array(numel(s.shape) * DTYPE_SIZE[dtype as keyof typeof DTYPE_SIZE]);
  job.saturated += await loadNative().convert(f32, 'F32', dtype, dense, name, job.allowOverflow);
  return dense;
}

/** Adds a stored entry's row offsets to its F32 decode (in place). */
export async function applyRowOffsets(ckpt: TensorSource, s: QuantizedScheme, dense: Uint8Array): Promise<void> {
  const { rows, cols } = rowsOf(s.shape);
  const b = ckpt.bytes(s.rowOffset!);
  const o = new Float32Array(rows);
  await loadNative().convert(b, s.rowOffsetDtype!, 'F32', new Uint8Array(o.buffer), s.rowOffset);
  const D = s.rowOffsetScale ?? 1;
  if (D !== 1) for (let i = 0; i < rows; i++) o[i] = Math.fround(o[i] * D);
  const x = new Float32Array(dense.buffer, dense.byteOffset, rows * cols);
  for (let i = 0; i < rows; i++) {
    const v = o[i];
    if (v === 0) continue;
    if (!Number.isFinite(v)) throw new FormatError(`row offset ${i} is not finite`, { file: ckpt.path, tensor: s.rowOffset });
    for (let j = i * cols, e = j + cols; j < e; j++) {
      x[j] += v;
      if (!Number.isFinite(x[j])) throw new FormatError(`element ${j}: the decoded value plus its row offset overflows F32`, { file: ckpt.path, tensor: s.rowOffset });
    }
  }
}

/** Checks an entry's row-offset fields against the file (called for every entry that names one). */
export function checkRowOffsets(ckpt: Checkpoint, name: string, s: QuantizedScheme): void {
  const where = { file: ckpt.path, tensor: name };
  if (typeof s.rowOffset !== 'string' || (s.rowOffsetDtype !== 'F16' && s.rowOffsetDtype !== 'F32'))
    throw new FormatError('scheme: rowOffset must name a tensor and rowOffsetDtype be F16 or F32', where);
  const D = s.rowOffsetScale;
  if (D !== undefined && !(typeof D === 'number' && D > 0 && Number.isFinite(D) && 2 ** Math.round(Math.log2(D)) === D))
    throw new FormatError('scheme: rowOffsetScale must be a positive finite power of two', where);
  if (!ckpt.has(s.rowOffset)) throw new FormatError(`scheme names "${s.rowOffset}", which the file does not hold`, where);
  const i = ckpt.info(s.rowOffset);
  const { rows } = rowsOf(s.shape);
  if (i.dtype !== s.rowOffsetDtype || i.shape.length !== 1 || i.shape[0] !== rows)
    throw new FormatError(`row offsets "${s.rowOffset}" are ${i.dtype} ${JSON.stringify(i.shape)}, expected ${s.rowOffsetDtype} [${rows}]`, where);
}
