/**
 * Codec 'vector': product quantization (PQ, Jégou et al. 2011) and LR²VQ (Zhu, Zhou & Zhong 2022, arXiv 2211.11397)
 * of a weight matrix [rows, cols] (a tensor of more dimensions is [shape[0], the rest]). Each row is cut into
 * P = ceil(cols / M) subvectors of M consecutive weights (the last one padded, never decoded); optional per-row scales
 * (the row's RMS) normalise rows first; each group of codebookRows rows (default: the whole tensor) has a codebook of
 * K codewords; a subvector is stored as the index of its codeword, bit-packed (ceil(log2 K) bits) or entropy-coded.
 * LR²VQ's codewords have dk < M values and are decoded through a projection [dk, M] learned per tensor.
 * Stored: codebook [groups, K, dk], projection [dk, M] (lr2vq), scales [rows] (rowScale), indices.
 * Decoder: docs/FORMAT.md "Vector-quantized tensors"; the native core: native/core/vq/product.h.
 */
import type { TensorRef } from '../checkpoint.js';
import { DTYPE_SIZE, numel } from '../dtype.js';
import { FormatError, fromNative } from '../errors.js';
import { codebookName, scalesName, type QuantizedScheme, type StoredMetrics, type TensorScheme } from '../format.js';
import { loadNative } from '../load.js';
import { option } from '../methods/options.js';
import { findMethod } from '../methods/registry.js';
import { CODEBOOK_DTYPE } from './scalar.js';
import type { Codec, DecodeJob, EncodeJob, EncodeResult, TaskOptions, TensorTask } from './codec.js';
import { entryBytes } from './codec.js';
import { checkCodes, codeBytes, codeNames, importanceFor, loadCodes, metricsOf, parseCodes, storeCodes } from './codes.js';
import { PRESERVE_MEAN } from './rowmean.js';

export const SUBVECTOR = option({
  name: 'subvector', type: 'int', min: 1, max: 16, default: 8, unit: 'weights',
  doc: 'weights per subvector M (consecutive along a row; a row length M does not divide is padded)', flag: '--subvector', metavar: 'M',
});
export const CENTROIDS = option({
  name: 'centroids', type: 'int', min: 2, max: 65536, default: 256, unit: 'codewords',
  doc: 'codewords K per codebook; indices take ceil(log2 K) bits (entropy coding needs K <= 256)', flag: '--centroids', metavar: 'K',
});
export const ROW_SCALE = option({
  name: 'rowScale', type: 'boolean', default: false,
  doc: 'divide each row by its RMS (stored F16, or F32 out of F16 range) before clustering', flag: '--row-scale',
});
export const CODEBOOK_ROWS = option({
  name: 'codebookRows', type: 'int', min: 0, max: 2 ** 40, default: 0, defaultDoc: '0: one codebook per tensor', unit: 'rows',
  doc: 'rows per codebook (each group of rows gets its own codebook)', flag: '--codebook-rows', metavar: 'R',
});

/** The vector codec's stored names: codebook, projection, scales and the indices. */
export function projectionName(tensor: string): string {
  return `${tensor}.__wp_projection`;
}

/** The vector codec's fields of a scheme entry (QuantizedScheme.vector). */
export interface VectorFields {
  subvector: number;
  centroids: number;
  /** Codeword length: M for PQ, the projection's rank dk for LR²VQ. */
  rank: number;
  rows: number;
  cols: number;
  /** Rows per codebook (= rows for one codebook per tensor). */
  codebookRows: number;
  /** Names of the projection [rank, subvector] and the row scales [rows], when stored. */
  projection?: string;
  scales?: string;
}

type VectorScheme = QuantizedScheme & { codec: 'vector'; vector: VectorFields };

/** The matrix view of a tensor: shape[0] rows (1 for a 0-/1-D tensor) of numel / rows weights. */
export function matrixOf(t: Pick<TensorRef, 'shape' | 'numel'>): { rows: number; cols: number } {
  const rows = t.shape.length > 1 ? t.shape[0] : 1;
  return { rows, cols: rows ? t.numel / rows : 0 };
}

/** Index bits for K codewords. */
export function indexBits(k: number): number {
  return Math.max(1, Math.ceil(Math.log2(k)));
}

interface VectorLayout {
  rows: number;
  cols: number;
  positions: number;
  groups: number;
  codebookRows: number;
  /** Codeword length planned (rank 'auto': M, the most it can be). */
  rank: number;
  bits: number;
  bytes: number;
}

function layoutOf(task: TensorTask): VectorLayout {
  return task.layout as unknown as VectorLayout;
}

/** The rank option of a method that takes one (lr2vq): a number, or 'auto' (-1); 0 (PQ) for the others. */
function rankOf(o: TaskOptions): number {
  if (!findMethod(o.method)?.options.some((s) => s.name === 'rank')) return 0;
  const r = (o as { rank?: number | 'auto' }).rank;
  return r === undefined ? 0 : r === 'auto' ? -1 : r;
}

/** Bytes of the stored parts, upper bounds where the encode decides (rank 'auto', F16 scales, entropy coding). */
function sizes(t: TensorRef, o: TaskOptions, l: Omit<VectorLayout, 'bytes'>): number {
  const e = DTYPE_SIZE[o.codebookDtype];
  const book = l.groups * o.centroids * l.rank * e;
  const proj = rankOf(o) !== 0 ? l.rank * o.subvector * e : 0;
  const scales = o.rowScale ? l.rows * 4 : 0;
  const count = l.rows * l.positions;
  // Entropy-coded (docs/ENTROPY.md): a code length averages at most log2 K + 1 bits, plus the 48-byte header, the
  // code table (at most 2 bytes per symbol) and 48 bytes per chunk of 65,536 symbols.
  const codes = o.entropy === 'none' ? codeBytes(count, l.bits) : Math.ceil((count * (l.bits + 1)) / 8) + 64 + 2 * o.centroids + 48 * Math.ceil(count / 65536);
  return Math.ceil((book + proj + scales + codes) / 8) * 8;
}

export const vectorCodec = {
  name: 'vector' as const,
  summary: 'vector quantization: a codebook of K codewords for subvectors of M weights (methods pq, lr2vq); packed or entropy-coded indices',
  options: [SUBVECTOR, CENTROIDS, ROW_SCALE, CODEBOOK_ROWS, CODEBOOK_DTYPE, PRESERVE_MEAN],
  // F16 codebooks were measured lossless for scalar codebooks only (bench/RESULTS.md, issue 16); codewords stay F32.
  defaults: { codebookDtype: 'F32' },
  phase: 'quantize' as const,
  placement: 'first',
  checkOptions(o) {
    if (rankOf(o) > o.subvector) return `rank ${rankOf(o)} exceeds the subvector length ${o.subvector}`;
    if (o.entropy !== 'none' && o.centroids > 256) return `entropy coding takes at most 256 codewords, not ${o.centroids}: give entropy 'none' or fewer centroids`;
    if (o.rate !== undefined && o.entropy === 'none') return 'rate (entropy-constrained vector quantization) needs entropy-coded indices: give entropy huffman or ans';
    if (o.calibration !== undefined && o.centroids > 4096)
      return `calibration takes at most 4096 centroids (its assignment step costs rows x cols x centroids per round), not ${o.centroids}`;
    if (o.rate !== undefined && o.calibration !== undefined) return 'rate and calibration cannot be combined (the layer-output refinement does not keep the indices\' entropy)';
    return undefined;
  },
  storedNames: (name) => [codebookName(name), projectionName(name), scalesName(name), ...codeNames(name)],

  plan(t, o) {
    const { rows, cols } = matrixOf(t);
    const m = o.subvector;
    const k = o.centroids;
    const rank = rankOf(o);
    const positions = Math.ceil(cols / m);
    const codebookRows = o.codebookRows ? Math.min(o.codebookRows, rows) : rows;
    const groups = codebookRows ? Math.ceil(rows / codebookRows) : 0;
    const l = { rows, cols, positions, groups, codebookRows, rank: rank > 0 ? rank : m, bits: indexBits(k) };
    const keep = { fallback: { codec: 'keep', options: {} } };
    if (!rows || !cols || codebookRows * positions < k)
      return { ...keep, warning: `tensor "${t.name}" [${t.shape}]: ${codebookRows * positions} subvectors of ${m} per codebook, fewer than ${k} centroids: kept as it is` };
    const bytes = sizes(t, o, l);
    if (bytes >= t.byteLength)
      return { ...keep, warning: `tensor "${t.name}" [${t.shape}]: vector codes would take ${bytes} bytes, not less than its ${t.byteLength}: kept as it is` };
    return { layout: { ...l, bytes } as unknown as Record<string, unknown> };
  },

  headerBytes: (task) => 5 * entryBytes(task.tensor) + 1400 + 60 * task.options.subvector,
  outputBytes: (task) => layoutOf(task).bytes,

  async encode(task: TensorTask, job: EncodeJob, method): Promise<EncodeResult> {
    const o = task.options;
    const t = task.tensor;
    const l = layoutOf(task);
    const native = loadNative();
    const ctx = { file: t.file, tensor: t.name };
    const bytes = job.ckpt.bytes(t.name);
    let w: Float32Array;
    const at = new Error();
    try {
      if (t.dtype === 'F32' && bytes.byteOffset % 4 === 0) w = new Float32Array(bytes.buffer, bytes.byteOffset, t.numel);
      else {
        w = new Float32Array(t.numel);
        await native.convert(bytes, t.dtype, 'F32', new Uint8Array(w.buffer), t.name);
      }
    } catch (e) {
      throw fromNative(e, ctx, at);
    }
    const importance = await importanceFor(job, t);
    let gram: Float32Array | undefined;
    if (method.calibration && job.calibration) {
      gram = (await job.calibration.gramFor(t))?.h;
      if (!gram) job.warnings.push(`no calibration for tensor "${t.name}" in ${job.calibration.file}: its weight error is minimised`);
    }
    const rank = rankOf(o);
    let codebookDtype = o.codebookDtype;
    const run = (f16: boolean) =>
      native.vqEncode(
        { w, rows: l.rows, cols: l.cols, importance, gram, name: t.name },
        { m: o.subvector, k: o.centroids, rank, rowScale: o.rowScale, groupRows: l.codebookRows, maxIter: (o as { iterations?: number }).iterations ?? 20, seed: o.seed, f16, threads: job.threads, ...(o.rate !== undefined ? { rate: o.rate } : {}) },
        job.cancel.flag,
        job.onTensorProgress,
      );
    let r;
    try {
      try {
        r = await run(codebookDtype === 'F16');
      } catch (e) {
        // Codewords outside F16's range (E_RANGE): the documented fallback is F32 codebooks, with a warning.
        const err = fromNative(e, ctx, at);
        if (err.code !== 'E_RANGE' || codebookDtype !== 'F16') throw err;
        codebookDtype = 'F32';
        r = await run(false);
        job.warnings.push(`tensor "${t.name}": ${err.message}; stored with F32 codebooks instead of F16`);
      }
    } catch (e) {
      throw fromNative(e, ctx, at);
    }
    const f16 = codebookDtype === 'F16';
    const dk = r.rank;
    // The stored parts, widest dtype first so that every tensor starts aligned for its dtype; the indices last,
    // padded so that the entry ends 8-byte aligned.
    const parts: { name: string; dtype: 'F32' | 'F16'; shape: number[]; values: Float32Array }[] = [
      { name: codebookName(t.name), dtype: codebookDtype, shape: [l.groups, o.centroids, dk], values: r.codebooks },
    ];
    if (r.projection) parts.push({ name: projectionName(t.name), dtype: codebookDtype, shape: [dk, o.subvector], values: r.projection });
    if (r.scales) parts.push({ name: scalesName(t.name), dtype: r.scalesF32 || !f16 ? 'F32' : 'F16', shape: [l.rows], values: r.scales });
    parts.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype]);
    let head = 0;
    for (const p of parts) {
      const data = p.dtype === 'F32' ? new Uint8Array(p.values.buffer, p.values.byteOffset, p.values.byteLength) : new Uint8Array(p.values.length * 2);
      if (p.dtype === 'F16') await native.convert(new Uint8Array(p.values.buffer, p.values.byteOffset, p.values.byteLength), 'F32', 'F16', data, p.name);
      await job.out.add(p.name, p.dtype, p.shape, data);
      head += data.byteLength;
    }
    const count = l.rows * l.positions;
    const bits = indexBits(o.centroids);
    const packed = o.entropy === 'none' ? native.packIndices(r.codes, bits) : Uint8Array.from(r.codes);
    const codesOut = await storeCodes(job, { ...o, bits }, { ...t, numel: count }, packed, head);
    // Metrics of what the decoder gives: the stored parts decoded as docs/FORMAT.md says.
    const dense = new Float32Array(t.numel);
    await native.vqDecode(
      { rows: l.rows, cols: l.cols, m: o.subvector, k: o.centroids, dk, groupRows: l.codebookRows, codes: r.codes, codebooks: r.codebooks, projection: r.projection, scales: r.scales },
      dense,
      job.threads,
      job.cancel.flag,
    );
    let sse = 0;
    let signal = 0;
    let maxAbsErr = 0;
    for (let i = 0; i < t.numel; i++) {
      const e = w[i] - dense[i];
      sse += e * e;
      signal += w[i] * w[i];
      maxAbsErr = Math.max(maxAbsErr, Math.abs(e));
    }
    job.ckpt.advise(t.name, 'dontneed');
    const bytesOut = head + codesOut.bytes;
    // The coder's entropy and code length are per index; the metrics give them per weight (count / numel indices each).
    const perWeight = count / t.numel;
    const coded = codesOut.coded ? { ...codesOut.coded, entropy: codesOut.coded.entropy * perWeight, avgCodeLength: codesOut.coded.avgCodeLength * perWeight } : undefined;
    const metrics: StoredMetrics = metricsOf(t, { n: t.numel, sse, signal, maxAbsErr }, bytesOut, coded, l.groups * o.centroids * dk);
    if (r.outputError !== undefined) metrics.layerOutputError = { initial: r.outputErrorInitial!, final: r.outputError };
    // The file stores the chosen rank only: the estimate's sampled clustering errors depend in their last bits on the
    // distance kernel this CPU runs (AVX2 or not; vqKernelIsa), and a file must not (the same input and options give
    // a byte-identical file). The run's report carries the estimate.
    const stored: StoredMetrics = rank !== 0 ? { ...metrics, rank: { chosen: dk } } : metrics;
    if (rank !== 0) metrics.rank = { chosen: dk, ...(r.estimate.length ? { estimate: r.estimate } : {}) };
    const granularity = l.codebookRows < l.rows ? 'group' : 'tensor';
    const fields: VectorFields = {
      subvector: o.subvector,
      centroids: o.centroids,
      rank: dk,
      rows: l.rows,
      cols: l.cols,
      codebookRows: l.codebookRows,
      ...(r.projection ? { projection: projectionName(t.name) } : {}),
      ...(r.scales ? { scales: scalesName(t.name) } : {}),
    };
    const scheme: VectorScheme = {
      codec: 'vector',
      method: o.method,
      bits,
      granularity,
      sliceSize: l.codebookRows * l.cols,
      slices: l.groups,
      dtype: t.dtype,
      shape: t.shape,
      ...codesOut.scheme,
      codebook: codebookName(t.name),
      codebookDtype,
      vector: fields,
      params: { solver: method.solver(o), ...method.recordedParams(o), ...(gram ? { calibration: true } : {}) },
      metrics: stored,
    };
    return {
      scheme,
      metrics,
      report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits, granularity, numel: t.numel, ...m, device: 'cpu' }),
    };
  },

  parse(s0, bad) {
    const s = s0 as VectorScheme;
    const v = s.vector;
    const int = (x: unknown, lo: number, hi: number) => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;
    if (!v || typeof v !== 'object') throw bad('vector entry needs its "vector" fields');
    if (!int(v.subvector, 1, 16) || !int(v.centroids, 2, 65536) || !int(v.rank, 1, v.subvector) || !int(v.rows, 0, 2 ** 48) || !int(v.cols, 0, 2 ** 48) || !int(v.codebookRows, 0, v.rows))
      throw bad('vector fields subvector (1-16), centroids (2-65536), rank (1-subvector), rows, cols, codebookRows (<= rows) must be integers in range');
    if (v.rows > 0 && v.codebookRows < 1) throw bad('codebookRows must be at least 1');
    if (v.rows * v.cols !== numel(s.shape)) throw bad(`rows x cols = ${v.rows * v.cols} does not match the shape's ${numel(s.shape)} elements`);
    if (s.bits !== indexBits(v.centroids)) throw bad(`bits must be ceil(log2 centroids) = ${indexBits(v.centroids)}`);
    if (v.rank < v.subvector && typeof v.projection !== 'string') throw bad('rank below the subvector length needs a projection');
    if (v.scales !== undefined && typeof v.scales !== 'string') throw bad('scales must name a tensor');
    if (s.codebookDtype !== 'F32' && s.codebookDtype !== 'F16') throw bad('codebookDtype must be F32 or F16');
    if (typeof s.codebook !== 'string') throw bad('codebook must name a tensor');
    if (s.slices !== groupsOf(v)) throw bad(`slices must be the number of codebooks, ${groupsOf(v)}`);
    parseCodes(s, bad);
  },

  check(ckpt, name, s0) {
    const s = s0 as VectorScheme;
    const v = s.vector;
    const file = ckpt.path;
    const want = (tname: string, dtypes: string[], shape: number[]) => {
      if (!ckpt.has(tname)) throw new FormatError(`scheme names "${tname}", which the file does not hold`, { file, tensor: name });
      const i = ckpt.info(tname);
      if (!dtypes.includes(i.dtype) || i.shape.length !== shape.length || i.shape.some((d, j) => d !== shape[j]))
        throw new FormatError(`"${tname}" is ${i.dtype} [${i.shape}], expected ${dtypes.join(' or ')} [${shape}]`, { file, tensor: name });
    };
    want(s.codebook, [s.codebookDtype], [groupsOf(v), v.centroids, v.rank]);
    if (v.projection !== undefined) want(v.projection, [s.codebookDtype], [v.rank, v.subvector]);
    if (v.scales !== undefined) want(v.scales, ['F16', 'F32'], [v.rows]);
    checkCodes(ckpt, name, s, v.rows * Math.ceil(v.cols / v.subvector));
  },

  async decode(name: string, s0: TensorScheme, dtype: string, job: DecodeJob) {
    const s = s0 as VectorScheme;
    const v = s.vector;
    const native = loadNative();
    const count = v.rows * Math.ceil(v.cols / v.subvector);
    const f32 = async (tname: string) => {
      const info = job.ckpt.info(tname);
      const out = new Float32Array(info.numel);
      await native.convert(job.ckpt.bytes(tname), info.dtype, 'F32', new Uint8Array(out.buffer), tname);
      return out;
    };
    const { codes: raw, packBits } = await loadCodes(job.ckpt, s, job.threads, job.cancel.flag, count);
    let codes: Uint32Array;
    try {
      codes = packBits ? Uint32Array.from(raw) : native.unpackIndices(raw, count, s.bits);
    } catch (e) {
      throw fromNative(e, { file: job.ckpt.path, tensor: name });
    }
    const dense = new Float32Array(v.rows * v.cols);
    try {
      await native.vqDecode(
        {
          rows: v.rows, cols: v.cols, m: v.subvector, k: v.centroids, dk: v.rank, groupRows: v.codebookRows, codes,
          codebooks: await f32(s.codebook),
          projection: v.projection !== undefined ? await f32(v.projection) : undefined,
          scales: v.scales !== undefined ? await f32(v.scales) : undefined,
        },
        dense,
        job.threads,
        job.cancel.flag,
      );
    } catch (e) {
      throw fromNative(e, { file: job.ckpt.path, tensor: name });
    }
    if (dtype === 'F32') return new Uint8Array(dense.buffer);
    const out = new Uint8Array(dense.length * DTYPE_SIZE[dtype]);
    job.saturated += await native.convert(new Uint8Array(dense.buffer), 'F32', dtype, out, name, job.allowOverflow);
    return out;
  },

  granularity: (s) => (s as QuantizedScheme).granularity,
} satisfies Codec;

function groupsOf(v: VectorFields): number {
  return v.codebookRows ? Math.ceil(v.rows / v.codebookRows) : 0;
}
