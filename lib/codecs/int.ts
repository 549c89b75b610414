/**
 * Codec 'int': integer codes with a scale (and, asymmetric, a zero point) per group of weights along a row: the
 * INT4/INT8 "W4A16"/"W8A16" format of GPTQ/AWQ-style kernels and of compressed-tensors' pack-quantized layout
 * (lib/compressed-tensors.ts exports it). A weight decodes to s × (u − z), u its b-bit code, s the group's scale
 * (F16 by default), z = 2^(b−1) (symmetric) or the group's stored b-bit zero point (asymmetric). Encoding is
 * round-to-nearest with a min-max or MSE-optimal scale per group (uniform's `step`), weighted by the importance
 * when one is given (native/core/intq.cpp). Only the uniform method's results are stored with it (its grid is
 * what the format can hold); it is that method's default with granularity 'group'.
 *
 * Granularity 'group': groups of groupSize weights along each row (the last group of a row is shorter when
 * groupSize does not divide the row); 'row': one scale per row (compressed-tensors' "channel" strategy); 'tensor':
 * one scale for the tensor (read as one row); 'network' is planned as 'tensor', with a warning.
 * Stored: the scales [rows, groups per row] in scaleDtype, the zero points (asymmetric; U8, b bits each, LSB
 * first), and the codes (packed, or an entropy-coded stream). Format: docs/FORMAT.md, "Integer group tensors".
 */
import { DTYPE_SIZE, numel } from '../dtype.js';
import { FormatError, fromNative } from '../errors.js';
import { scalesName, type QuantizedScheme, type TensorScheme } from '../format.js';
import { loadNative } from '../load.js';
import { option } from '../methods/options.js';
import type { NativeIntParams, NativeIntSizes } from '../native.js';
import type { Codec, EncodeResult, TaskOptions } from './codec.js';
import { entryBytes } from './codec.js';
import { checkCodes, codeBytes, codeNames, importanceFor, loadCodes, metricsOf, packBitsOf, parseCodes, storeCodes } from './codes.js';
import { GRANULARITY, GROUP_SIZE } from './scalar.js';
import { PRESERVE_MEAN } from './rowmean.js';

export const SCALE_DTYPE = option({
  name: 'scaleDtype', type: 'enum', values: ['F16', 'BF16', 'F32'], default: 'F16',
  doc: "codec 'int': dtype of the group scales (the flag takes f16 | bf16 | f32 too); F16 scales outside F16's normal range fall back to F32 for that tensor, with a warning",
  flag: '--scale-dtype', metavar: 'D', parseFlag: (v) => v.toUpperCase(),
});

/** The name of the zero-point tensor of `tensor` (asymmetric int codec). */
export function zerosName(tensor: string): string {
  return `${tensor}.__wp_zeros`;
}

/** The int codec's fields of a scheme entry. */
export interface IntFields {
  /** Row length: numel / shape[0] (a 0-/1-D tensor is one row). */
  cols: number;
  /** Weights per group along a row (= cols with granularity 'row'). */
  groupSize: number;
  symmetric: boolean;
  scaleDtype: 'F16' | 'BF16' | 'F32';
  /** The scales tensor, [rows, ceil(cols / groupSize)] of scaleDtype. */
  scales: string;
  /** Asymmetric: the zero points, U8 [ceil(groups × bits / 8)] (b bits each, LSB first); null when symmetric. */
  zeros: string | null;
}
export type IntScheme = Omit<QuantizedScheme, 'codebook' | 'codebookDtype'> & { codec: 'int'; int: IntFields };

/** Rows and row length of a tensor: shape[0] rows (1 for a 0-/1-D tensor) of numel / rows weights. */
function colsOf(t: { shape: number[]; numel: number }): number {
  return t.shape.length >= 2 && t.shape[0] > 0 ? t.numel / t.shape[0] : Math.max(1, t.numel);
}

/** The native parameters of the int format for these options. */
export function intParams(o: Pick<TaskOptions, 'bits' | 'symmetric' | 'step' | 'scaleDtype'>, groupSize: number, extra: Partial<NativeIntParams> = {}): NativeIntParams {
  return { bits: o.bits, groupSize, symmetric: o.symmetric, step: o.step, scaleDtype: o.scaleDtype, ...extra };
}

function storedParams(s: IntScheme, packBits?: number): NativeIntParams {
  return { bits: s.bits, groupSize: s.int.groupSize, symmetric: s.int.symmetric, scaleDtype: s.int.scaleDtype, ...(packBits ? { packBits } : {}) };
}

interface IntLayout {
  cols: number;
  groupSize: number;
  sizes: NativeIntSizes;
}

function layoutOf(t: { layout: Record<string, unknown> }): IntLayout {
  return t.layout as unknown as IntLayout;
}

export const intCodec = {
  name: 'int' as const,
  /** Its levels always include 0 (zero points within the code range, compressed-tensors' convention). */
  zeroLevel: true,
  summary: 'integer codes with a scale (and zero point) per group of weights: INT4/INT8 as GPTQ/AWQ kernels and compressed-tensors store them (uniform only)',
  options: [GRANULARITY, GROUP_SIZE, SCALE_DTYPE, PRESERVE_MEAN],
  phase: 'quantize' as const,
  placement: 'first',
  storedNames: (name) => [scalesName(name), zerosName(name), ...codeNames(name)],

  checkOptions(o) {
    if (o.bits < 2) return "the int codec stores 2- to 8-bit codes (bits 1 is the scalar codec's)";
    return undefined;
  },

  plan(t, o) {
    // One scale for all tensors is not this format's: one per tensor instead (a tensor's scale is its own).
    if (o.granularity === 'network')
      return { fallback: { codec: 'int', options: { granularity: 'tensor' } }, warning: `tensor "${t.name}": the int codec has a scale per tensor at most, not one for the network: a scale per tensor` };
    const cols = o.granularity === 'tensor' ? Math.max(1, t.numel) : colsOf(t);
    const groupSize = o.granularity === 'group' ? Math.min(o.groupSize, cols) : cols;
    const sizes = loadNative().intSizes(t.numel, cols, intParams(o, groupSize, packBitsOf(o) ? { packBits: 8 } : {}));
    // Never larger than keeping the tensor (tiny groups, tiny tensors): kept, with a warning. Counted as written:
    // F32 scales (the fallback), the zero points, the packed codes, padded to 8 bytes.
    const src = DTYPE_SIZE[t.dtype] * 8;
    const bytes = Math.ceil((sizes.groups * 4 + (o.symmetric ? 0 : codeBytes(sizes.groups, o.bits)) + codeBytes(t.numel, o.bits)) / 8) * 8;
    const bpw = (bytes * 8) / Math.max(1, t.numel);
    if (bpw > src)
      return {
        fallback: { codec: 'keep', options: {} },
        warning: `tensor "${t.name}": ${o.bits}-bit codes with a scale per ${groupSize} weights would take up to ${bpw.toFixed(2)} bits per weight, more than keeping it (${t.dtype}, ${src}): kept as it is`,
      };
    const layout: IntLayout = { cols, groupSize, sizes };
    return { layout: layout as unknown as Record<string, unknown> };
  },

  headerBytes: (task) => 3 * entryBytes(task.tensor) + 600,
  outputBytes(task) {
    const { sizes } = layoutOf(task);
    // F32 scales (the fallback) at most, and the codes padded.
    return sizes.groups * 4 + sizes.zerosBytes + sizes.codesBytes + 24;
  },

  async encode(task, job, method): Promise<EncodeResult> {
    const { ckpt } = job;
    const o = task.options;
    const t = task.tensor;
    const { cols, groupSize } = layoutOf(task);
    const native = loadNative();
    const importance = await importanceFor(job, t);
    let scaleDtype = o.scaleDtype;
    const packBits = packBitsOf(o);
    const at = new Error();
    let f16Precision = false;
    const run = async (sd: 'F16' | 'BF16' | 'F32') => {
      const params = intParams({ ...o, scaleDtype: sd }, groupSize, { threads: job.threads, ...(packBits ? { packBits } : {}), ...(f16Precision ? { f16Precision } : {}) });
      const sz = native.intSizes(t.numel, cols, params);
      const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), zeros = new Uint8Array(sz.zerosBytes);
      const stats = await native.intQuantize({ data: ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, cols, name: t.name, importance }, params, codes, scales, zeros, job.cancel.flag, job.onTensorProgress);
      return { sz, codes, scales, zeros, stats };
    };
    let r;
    try {
      try {
        r = await run(scaleDtype);
      } catch (e) {
        // A group scale outside F16's normal range (E_RANGE): the documented fallback is F32 scales for this tensor,
        // holding F16's 11 significant bits (the values F16 would hold, scaled by a power of two: scaling the
        // weights by 2^k scales the stored tensor by 2^k, whichever dtype the scales take).
        const err = fromNative(e, { file: t.file, tensor: t.name }, at);
        if (err.code !== 'E_RANGE' || scaleDtype !== 'F16') throw err;
        scaleDtype = 'F32';
        f16Precision = true;
        r = await run(scaleDtype);
        job.warnings.push(`tensor "${t.name}": ${err.message}; stored with F32 scales (of F16 precision) instead`);
      }
    } catch (e) {
      throw fromNative(e, { file: t.file, tensor: t.name }, at);
    }
    const { sz, codes, scales, zeros, stats } = r;
    const scName = scalesName(t.name);
    const scaleBytes = sz.groups * DTYPE_SIZE[scaleDtype];
    await job.out.add(scName, scaleDtype, [sz.rows, sz.groupsPerRow], scales.subarray(0, scaleBytes));
    let head = scaleBytes;
    const zName = o.symmetric ? null : zerosName(t.name);
    if (zName) {
      const zb = codeBytes(sz.groups, o.bits);
      await job.out.add(zName, 'U8', [zb], zeros.subarray(0, zb));
      head += zb;
    }
    const codesOut = await storeCodes(job, o, t, codes.subarray(0, packBits ? t.numel : codeBytes(t.numel, o.bits)), head);
    ckpt.advise(t.name, 'dontneed');
    const granularity = o.granularity === 'row' || o.granularity === 'tensor' ? o.granularity : 'group';
    const metrics = metricsOf(t, stats, head + codesOut.bytes, codesOut.coded, 2 * sz.groups);
    if (stats.zeroGroups) job.warnings.push(`tensor "${t.name}": ${stats.zeroGroups} of ${sz.groups} groups are all zeros (stored with scale 0)`);
    const scheme: IntScheme = {
      codec: 'int',
      method: o.method,
      bits: o.bits,
      granularity,
      ...(granularity === 'group' ? { groupSize: o.groupSize } : {}),
      sliceSize: groupSize,
      slices: sz.groups,
      dtype: t.dtype,
      shape: t.shape,
      ...codesOut.scheme,
      int: { cols, groupSize, symmetric: o.symmetric, scaleDtype, scales: scName, zeros: zName },
      params: { solver: 'rtn', ...method.recordedParams(o), ...(o.importance !== undefined ? { importance: o.importanceKind } : {}) },
      metrics,
    };
    return {
      scheme: scheme as unknown as TensorScheme,
      metrics,
      report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits: o.bits, granularity, numel: t.numel, ...m, device: 'cpu' }),
    };
  },

  parse(s0, bad) {
    const s = s0 as unknown as IntScheme;
    const f = s.int;
    if (s.bits < 2 || s.bits > 8) throw bad(`bits must be 2-8, got ${s.bits}`);
    if (!['group', 'row', 'tensor'].includes(s.granularity)) throw bad(`granularity must be group, row or tensor, got ${JSON.stringify(s.granularity)}`);
    if (!f || typeof f !== 'object' || !Number.isSafeInteger(f.cols) || f.cols < 1 || !Number.isSafeInteger(f.groupSize) || f.groupSize < 1 || typeof f.symmetric !== 'boolean' || typeof f.scales !== 'string')
      throw bad('int entry needs int {cols, groupSize, symmetric, scaleDtype, scales, zeros}');
    if (!['F16', 'BF16', 'F32'].includes(f.scaleDtype)) throw bad(`int.scaleDtype must be F16, BF16 or F32, got ${JSON.stringify(f.scaleDtype)}`);
    if (f.symmetric ? f.zeros !== null : typeof f.zeros !== 'string') throw bad(f.symmetric ? 'a symmetric int entry has zeros null' : 'an asymmetric int entry names its zeros tensor');
    const n = numel(s.shape);
    const cols = s.granularity === 'tensor' ? Math.max(1, n) : colsOf({ shape: s.shape, numel: n });
    if (n > 0 && f.cols !== cols) throw bad(`int.cols is ${f.cols}, but granularity ${s.granularity} of shape ${JSON.stringify(s.shape)} gives rows of ${cols}`);
    if (f.groupSize > f.cols || (s.granularity !== 'group' && f.groupSize !== f.cols)) throw bad(`int.groupSize ${f.groupSize} does not fit rows of ${f.cols} with granularity ${s.granularity}`);
    if (s.sliceSize !== f.groupSize) throw bad(`sliceSize must be int.groupSize (${f.groupSize})`);
    const groups = n ? (n / f.cols) * Math.ceil(f.cols / f.groupSize) : 0;
    if (s.slices !== groups) throw bad(`slices must be the number of groups, ${groups}`);
    parseCodes(s as unknown as QuantizedScheme, bad);
  },

  check(ckpt, name, s0) {
    const s = s0 as unknown as IntScheme;
    const file = ckpt.path;
    const f = s.int;
    const rows = f.cols ? numel(s.shape) / f.cols : 0;
    const want = [rows, Math.ceil(f.cols / f.groupSize)];
    if (!ckpt.has(f.scales)) throw new FormatError(`scheme names "${f.scales}", which the file does not hold`, { file, tensor: name });
    const sc = ckpt.info(f.scales);
    if (sc.dtype !== f.scaleDtype || sc.shape.length !== 2 || sc.shape[0] !== want[0] || sc.shape[1] !== want[1])
      throw new FormatError(`scales "${f.scales}" are ${sc.dtype} ${JSON.stringify(sc.shape)}, expected ${f.scaleDtype} ${JSON.stringify(want)}`, { file, tensor: name });
    if (f.zeros !== null) {
      if (!ckpt.has(f.zeros)) throw new FormatError(`scheme names "${f.zeros}", which the file does not hold`, { file, tensor: name });
      const z = ckpt.info(f.zeros);
      const need = codeBytes(s.slices, s.bits);
      if (z.dtype !== 'U8' || z.shape.length !== 1 || z.numel !== need)
        throw new FormatError(`zero points "${f.zeros}" are ${z.dtype} ${JSON.stringify(z.shape)}, expected U8 [${need}]`, { file, tensor: name });
    }
    checkCodes(ckpt, name, s as unknown as QuantizedScheme);
  },

  async decode(name, s0, dtype, job) {
    const s = s0 as unknown as IntScheme;
    const n = numel(s.shape);
    const dense = new Uint8Array(n * DTYPE_SIZE[dtype]);
    const { codes, packBits } = await loadCodes(job.ckpt, s as unknown as QuantizedScheme, job.threads, job.cancel.flag);
    job.saturated += await loadNative().intDequantize(
      { codes, scales: job.ckpt.bytes(s.int.scales), zeros: s.int.zeros ? job.ckpt.bytes(s.int.zeros) : null, numel: n, cols: s.int.cols, name, allowOverflow: job.allowOverflow },
      storedParams(s, packBits),
      dtype,
      dense,
      job.threads,
      job.cancel.flag,
    );
    return dense;
  },

  granularity: (s) => (s as QuantizedScheme).granularity,
} satisfies Codec;
