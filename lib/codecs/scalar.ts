/**
 * Codec 'scalar': one scalar codebook (2^bits levels, F32 or F16) per slice of consecutive weights: the whole
 * tensor, a row (output channel), a group of groupSize weights, or one codebook for every quantized tensor
 * ('network', the all-layers mode of Choi et al. 2017 §5). Stored: the codebook [slices, 2^bits] and the codes
 * (packed, or an entropy-coded stream). Format: docs/FORMAT.md, "Quantized tensors".
 */
import type { TensorRef } from '../checkpoint.js';
import { DTYPE_SIZE, numel } from '../dtype.js';
import { ArgumentError, fromNative } from '../errors.js';
import { codebookName, type QuantizedScheme, type TensorScheme } from '../format.js';
import { loadNative } from '../load.js';
import type { NativeQuantizeParams } from '../native.js';
import { option } from '../methods/options.js';
import type { CalibratedFit, MethodEntry } from '../methods/registry.js';
import type { Codec, EncodeJob, EncodeResult, GivenQuantizers, TaskOptions, TensorTask } from './codec.js';
import { entryBytes } from './codec.js';
import { checkCodebook, checkCodes, codeBytes, codeNames, entropyCode, importanceFor, loadCodes, metricsOf, packBitsOf, paddedStreamBytes, parseCodebook, parseCodes, storeCodes, type Coded } from './codes.js';
import { PRESERVE_MEAN } from './rowmean.js';

// The scalar codec's options.
export const GRANULARITY = option({
  name: 'granularity', type: 'enum', values: ['tensor', 'row', 'group', 'network', 'block'], default: 'row', defaultDoc: 'row; ecsq methods: tensor',
  doc: "one codebook per tensor, per output row, per group of --group-size weights, or one for all quantized tensors together (Choi et al.'s all-layers mode)",
  flag: '--granularity', metavar: 'G', note: "'block' is the deprecated spelling of --codec block",
});
export const GROUP_SIZE = option({
  name: 'groupSize', type: 'int', min: 1, max: 2 ** 40, default: 128, unit: 'weights',
  doc: 'weights per group with --granularity group', flag: '--group-size', metavar: 'N',
});
export const CODEBOOK_DTYPE = option({
  name: 'codebookDtype', type: 'enum', values: ['F32', 'F16'], default: 'F16', defaultDoc: 'F16; vector codec: F32',
  doc: "dtype of the stored codebooks (the flag takes f32 | f16 too); a tensor whose levels F16 cannot hold gets F32 codebooks (a warning when F16 was asked for)",
  flag: '--codebook-dtype', metavar: 'D', parseFlag: (v) => v.toUpperCase(),
});

/** The slicing and sizes of a tensor under the scalar codec. */
export interface ScalarLayout {
  granularity: 'tensor' | 'row' | 'group' | 'network';
  sliceSize: number;
  slices: number;
  levels: number;
  codebookBytes: number;
  codesBytes: number;
  /** granularity 'network': the codebook solved once for all tensors (levels ascending, k-1 thresholds). */
  fixed?: { levels: number[]; thresholds: number[] };
}

/** Elements per slice: the tensor, its row length (a 1-D tensor is one row), or the group size. */
export function sliceSizeOf(t: TensorRef, o: Pick<TaskOptions, 'granularity' | 'groupSize'>): number {
  if (o.granularity === 'tensor' || o.granularity === 'network') return Math.max(1, t.numel);
  if (o.granularity === 'group') return o.groupSize;
  const rows = t.shape.length >= 2 ? t.shape[0] : 1;
  return Math.max(1, rows ? t.numel / rows : 1);
}

/** The next coarser slicing after `g` (row, then group, then tensor), or undefined after tensor and network. */
function coarser(g: string, t: TensorRef, o: TaskOptions): Partial<TaskOptions> | undefined {
  if (g === 'row' && o.groupSize > sliceSizeOf(t, o) && o.groupSize < t.numel) return { granularity: 'group' };
  if (g === 'row' || g === 'group') return { granularity: 'tensor' };
  return undefined;
}

/** Bits per weight of a layout at most (codebooks and fixed-length codes; entropy coding only makes codes smaller). */
function layoutBits(t: TensorRef, l: ScalarLayout, bits: number): number {
  return ((l.codebookBytes + codeBytes(t.numel, bits)) * 8) / Math.max(1, t.numel);
}

/** The slicing and sizes of tensor t with codebooks of `codebookDtype`. */
function layoutFor(t: TensorRef, o: TaskOptions, codebookDtype: 'F32' | 'F16'): ScalarLayout {
  const granularity = o.granularity as ScalarLayout['granularity'];
  const sliceSize = sliceSizeOf(t, o);
  const slices = Math.ceil(t.numel / sliceSize);
  const levels = 2 ** o.bits;
  const codebookBytes = slices * levels * DTYPE_SIZE[codebookDtype];
  // The codebook is written first, then the codes; the codes tensor is padded so that the pair ends on an
  // 8-byte boundary and every following tensor stays aligned (the format allows no gaps between tensors).
  // With entropy coding the codes are first written one byte each, then coded into a stream.
  const used = o.entropy === 'none' ? codeBytes(t.numel, o.bits) : t.numel;
  const codesBytes = Math.ceil((codebookBytes + used) / 8) * 8 - codebookBytes;
  return { granularity, sliceSize, slices, levels, codebookBytes, codesBytes };
}

function layoutOf(task: TensorTask): ScalarLayout {
  return task.layout as unknown as ScalarLayout;
}

/**
 * The method's calibrated fit of a task (MethodEntry.fitCalibrated), when the method has one, the job has a
 * calibration file, and the file holds the tensor's Gram matrix; otherwise undefined (a warning when the file lacks
 * the tensor). Throws the calibration reader's FormatError/NonFiniteError for a bad Gram matrix.
 */
async function calibratedFit(task: TensorTask, job: EncodeJob, method: MethodEntry, data: Uint8Array): Promise<CalibratedFit | undefined> {
  const t = task.tensor;
  const step = layoutOf(task);
  if (!method.fitCalibrated || !job.calibration || step.fixed) return undefined;
  const gram = await job.calibration.gramFor(t);
  if (!gram) {
    job.warnings.push(`tensor "${t.name}": ${job.calibration.file} has no calibration Gram matrix for it; ${method.name} fitted it against the weight error`);
    return undefined;
  }
  const w = new Float32Array(t.numel);
  const at = new Error();
  try {
    await loadNative().convert(data, t.dtype, 'F32', new Uint8Array(w.buffer), t.name);
  } catch (e) {
    throw fromNative(e, { file: t.file, tensor: t.name }, at);
  }
  const rows = t.numel / gram.inFeatures;
  const fit = await method.fitCalibrated({
    name: t.name,
    w,
    rows,
    inFeatures: gram.inFeatures,
    rowsPerSlice: step.granularity === 'row' ? 1 : rows,
    gram: gram.h,
    options: task.options,
    threads: job.threads,
    cancel: job.cancel.flag,
    onProgress: job.onTensorProgress,
  }).catch((e: unknown) => {
    throw fromNative(e, { file: t.file, tensor: t.name });
  });
  if (step.granularity === 'row' && step.sliceSize !== gram.inFeatures) throw new Error(`internal: row slices of ${step.sliceSize} weights, Gram matrix of ${gram.inFeatures}`);
  return fit;
}

export const scalarCodec = {
  name: 'scalar' as const,
  summary: 'one scalar codebook per tensor, row, group of weights, or for the whole network; packed or entropy-coded codes',
  options: [GRANULARITY, GROUP_SIZE, CODEBOOK_DTYPE, PRESERVE_MEAN],
  phase: 'quantize' as const,
  placement: 'first',
  storedNames: (name) => [codebookName(name), ...codeNames(name)],

  plan(t, o) {
    const layout = layoutFor(t, o, o.codebookDtype);
    // Never larger than keeping the tensor: when the codebooks push the bits per weight above the source dtype's,
    // a coarser slicing (group, then tensor) or keeping it, with a warning naming the reason.
    const bpw = layoutBits(t, layout, o.bits);
    const src = DTYPE_SIZE[t.dtype] * 8;
    if (bpw > src) {
      const next = coarser(layout.granularity, t, o);
      const why = `tensor "${t.name}": ${layout.granularity} codebooks would take ${bpw.toFixed(1)} bits per weight, more than keeping it (${t.dtype}, ${src})`;
      if (next) return { fallback: { codec: 'scalar', options: next }, warning: `${why}: quantized per ${next.granularity === 'group' ? `group of ${o.groupSize}` : 'tensor'} instead` };
      return { fallback: { codec: 'keep', options: {} }, warning: `${why}: kept as it is` };
    }
    return { layout: layout as unknown as Record<string, unknown> };
  },

  /** granularity 'network': summarize every tensor of the tasks, solve once, and give each task the codebook. */
  async prepare(tasks, job, method) {
    const net = tasks.filter((t) => layoutOf(t).granularity === 'network');
    if (!net.length) return;
    const o = net[0].options;
    const native = loadNative();
    const acc = native.summaryNew();
    for (const task of net) {
      job.cancel.check(job.ckpt.path);
      const t = task.tensor;
      const at = new Error();
      try {
        await native.summaryAdd(acc, { data: job.ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, name: t.name, importance: await importanceFor(job, t) });
      } catch (e) {
        throw fromNative(e, { file: t.file, tensor: t.name }, at);
      }
    }
    const at = new Error();
    let q;
    try {
      // One codebook for tensors of several dtypes: their bits averaged by weight count set the rate.
      const n = net.reduce((a, s) => a + s.tensor.numel, 0);
      const bits = n ? net.reduce((a, s) => a + DTYPE_SIZE[s.tensor.dtype] * 8 * s.tensor.numel, 0) / n : 32;
      q = await native.summarySolve(acc, method.solver(o), { ...method.nativeParams(o, bits), k: 2 ** o.bits });
    } catch (e) {
      throw fromNative(e, { file: job.ckpt.path }, at);
    }
    const fixed = { levels: Array.from(q.levels), thresholds: Array.from(q.thresholds) };
    for (const task of net) task.layout.fixed = fixed;
  },

  headerBytes: (task) => 3 * entryBytes(task.tensor) + 900,
  outputBytes: (task) => layoutOf(task).codebookBytes + layoutOf(task).codesBytes,

  async encode(task, job, method): Promise<EncodeResult> {
    const { ckpt } = job;
    const o = task.options;
    let step = layoutOf(task);
    const native = loadNative();
    const t = task.tensor;
    const data = ckpt.bytes(t.name);
    let codes = new Uint8Array(step.codesBytes);
    let codebook = new Uint8Array(step.codebookBytes);
    let codebookDtype = o.codebookDtype;
    const params: NativeQuantizeParams = {
      method: method.solver(o),
      bits: o.bits,
      granularity: step.granularity === 'network' ? 'tensor' : step.granularity,
      sliceSize: step.sliceSize,
      codebookDtype: o.codebookDtype,
      threads: job.threads,
      device: job.device,
      solverParams: method.nativeParams(o, DTYPE_SIZE[t.dtype] * 8),
      ...(step.fixed ? { fixedLevels: Float64Array.from(step.fixed.levels), fixedThresholds: Float64Array.from(step.fixed.thresholds) } : {}),
      ...(packBitsOf(o) ? { packBits: packBitsOf(o) } : {}),
    };
    // A method with a calibrated fit (qn) and the tensor's Gram matrix in the calibration file: fit against the
    // layer-output error; its codes come from the fit's latent weights, one quantizer per slice.
    // Quantizers the caller gives (fromTfjs) take the place of any fit.
    const fit: GivenQuantizers | undefined = job.given?.get(t.name) ?? (await calibratedFit(task, job, method, data).then((f) => f && { ...f, key: 'calibration' }));
    if (fit) {
      const L = step.slices ? fit.levels.length / step.slices : 0;
      if (!Number.isInteger(L) || L < 2 || L > step.levels || fit.thresholds.length !== step.slices * (L - 1) || (fit.assignFrom && fit.assignFrom.length !== t.numel))
        throw new ArgumentError(`tensor "${t.name}": the given quantizers (${fit.levels.length} levels, ${fit.thresholds.length} thresholds) are not 2 to ${step.levels} levels for each of its ${step.slices} slices`);
      params.fixedSlices = { levels: fit.levels, thresholds: fit.thresholds };
      delete params.solverParams;
    }
    const at = new Error();
    let stats;
    let coded: Coded | undefined;
    try {
      const importance = step.fixed || fit ? undefined : await importanceFor(job, t);
      const run = () => native.quantize({ data, dtype: t.dtype, numel: t.numel, name: t.name, importance, ...(fit?.assignFrom ? { assignFrom: fit.assignFrom } : {}) }, params, codes, codebook, job.cancel.flag, job.onTensorProgress);
      try {
        stats = await run();
      } catch (e) {
        // Levels outside F16's normal range (E_RANGE): the documented fallback is F32 codebooks for this tensor,
        // with a warning; never inf or zeros in an F16 codebook.
        const err = fromNative(e, { file: t.file, tensor: t.name }, at);
        if (err.code !== 'E_RANGE' || codebookDtype !== 'F16') throw err;
        codebookDtype = 'F32';
        step = { ...layoutFor(t, o, 'F32'), ...(step.fixed ? { fixed: step.fixed } : {}) };
        codes = new Uint8Array(step.codesBytes);
        codebook = new Uint8Array(step.codebookBytes);
        params.codebookDtype = 'F32';
        stats = await run();
        if (!o.codebookDtypeDefault) job.warnings.push(`tensor "${t.name}": ${err.message}; stored with F32 codebooks instead of F16`);
      }
      // A rate (--rate, or a compression ratio) is the bits per weight of what is written: codebooks, the entropy-
      // coded stream and its padding, whatever the importance (Choi et al.; the solver targets the entropy of its
      // own weights). Re-solve with the entropy target moved by the miss, a few rounds; the closest result is kept.
      const asked = params.solverParams?.rate;
      const codebookBits = (step.codebookBytes * 8) / Math.max(1, t.numel);
      if (asked !== undefined && o.entropy !== 'none' && !step.fixed && !fit && codebookBits >= asked)
        job.warnings.push(`tensor "${t.name}": its codebooks alone take ${codebookBits.toFixed(2)} bits per weight, the rate ${asked} cannot be met (use a coarser granularity)`);
      else if (asked !== undefined && o.entropy !== 'none' && !step.fixed && !fit) {
        const bpw = (c: Coded) => ((step.codebookBytes + paddedStreamBytes(step.codebookBytes, c.blob.byteLength)) * 8) / Math.max(1, t.numel);
        coded = await entropyCode(job, o, t, codes);
        let best = { miss: Math.abs(bpw(coded) - asked), codes, codebook, stats, coded };
        // The written rate grows with the target: bracket it, then regula falsi (Illinois) within the bracket.
        let got = bpw(coded);
        let lo = { t: asked / 256, b: 0 }, hi = { t: o.bits, b: Infinity };
        if (got < asked) lo = { t: asked, b: got };
        else hi = { t: asked, b: got };
        let side = 0;
        for (let round = 0; round < 12 && best.miss > 0.005 * asked; round++) {
          const target = Number.isFinite(hi.b) && lo.b > 0 ? lo.t + ((asked - lo.b) * (hi.t - lo.t)) / (hi.b - lo.b) : Math.sqrt(lo.t * hi.t);
          params.solverParams = { ...params.solverParams, rate: target };
          codes = new Uint8Array(step.codesBytes);
          codebook = new Uint8Array(step.codebookBytes);
          const st = await run();
          const c = await entropyCode(job, o, t, codes);
          got = bpw(c);
          if (Math.abs(got - asked) < best.miss) best = { miss: Math.abs(got - asked), codes, codebook, stats: st, coded: c };
          // Illinois: halve the kept end's excess when the same end moves twice, so the bracket shrinks from both sides.
          if (got < asked) {
            lo = { t: target, b: got };
            if (side === -1 && Number.isFinite(hi.b)) hi.b = asked + (hi.b - asked) / 2;
            side = -1;
          } else {
            hi = { t: target, b: got };
            if (side === 1 && lo.b > 0) lo.b = asked - (asked - lo.b) / 2;
            side = 1;
          }
        }
        ({ codes, codebook, stats, coded } = best);
      }
    } catch (e) {
      throw fromNative(e, { file: t.file, tensor: t.name }, at);
    }
    if (o.targetValues !== undefined && stats.levelsUsed < o.targetValues)
      job.warnings.push(`tensor "${t.name}": ${o.targetValues} values were not attainable in every slice (mean ${stats.levelsUsed.toFixed(4)} per slice)`);
    const cbName = codebookName(t.name);
    await job.out.add(cbName, codebookDtype, [step.slices, step.levels], codebook);
    const codesOut = await storeCodes(job, o, t, codes, step.codebookBytes, coded);
    ckpt.advise(t.name, 'dontneed');
    const metrics = metricsOf(t, stats, step.codebookBytes + codesOut.bytes, codesOut.coded, step.slices * stats.levelsUsed);
    const scheme: TensorScheme = {
      method: o.method,
      bits: o.bits,
      granularity: step.granularity,
      ...(step.granularity === 'group' ? { groupSize: o.groupSize } : {}),
      sliceSize: step.sliceSize,
      slices: step.slices,
      dtype: t.dtype,
      shape: t.shape,
      ...codesOut.scheme,
      codebook: cbName,
      codebookDtype,
      params: { solver: params.method, ...method.recordedParams(o), ...(fit ? { [fit.key]: fit.recorded } : {}) },
      metrics,
    };
    return {
      scheme,
      metrics,
      report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits: o.bits, granularity: step.granularity, numel: t.numel, ...m, device: stats.backend }),
    };
  },


  parse(s0, bad) {
    const s = s0 as QuantizedScheme;
    if (!['tensor', 'row', 'group', 'network'].includes(s.granularity)) throw bad(`unknown granularity ${JSON.stringify(s.granularity)}`);
    if (s.bits > 8) throw bad(`bits must be 1-8, got ${s.bits}`);
    const n = numel(s.shape);
    // The slicing follows from the granularity and the shape (sliceSizeOf): another value is another layout.
    const want = s.granularity === 'group' ? s.groupSize : sliceSizeOf({ numel: n, shape: s.shape } as TensorRef, { granularity: s.granularity as 'row', groupSize: 1 });
    if (s.granularity === 'group' && (!Number.isSafeInteger(s.groupSize) || s.groupSize! < 1)) throw bad('groupSize must be a positive integer');
    if (s.sliceSize !== want) throw bad(`sliceSize is ${s.sliceSize}, but granularity ${s.granularity} of shape ${JSON.stringify(s.shape)} gives ${want}`);
    if (s.slices !== Math.ceil(n / s.sliceSize)) throw bad(`slices must be ceil(numel / sliceSize) = ${Math.ceil(n / s.sliceSize)}`);
    parseCodebook(s, bad);
    parseCodes(s, bad);
  },

  check(ckpt, name, s0) {
    const s = s0 as QuantizedScheme;
    checkCodebook(ckpt, name, s);
    checkCodes(ckpt, name, s);
  },

  async decode(name, s0, dtype, job) {
    const s = s0 as QuantizedScheme;
    const n = numel(s.shape);
    const dense = new Uint8Array(n * DTYPE_SIZE[dtype]);
    const { codes, packBits } = await loadCodes(job.ckpt, s, job.threads, job.cancel.flag);
    job.saturated += await loadNative().dequantize(
      { codes, codebook: job.ckpt.bytes(s.codebook), codebookDtype: s.codebookDtype, numel: n, bits: s.bits, sliceSize: s.sliceSize, name, packBits: packBits ?? s.bits, allowOverflow: job.allowOverflow },
      dtype,
      dense,
      job.threads,
      job.cancel.flag,
    );
    return dense;
  },

  granularity: (s) => (s as QuantizedScheme).granularity,
} satisfies Codec;

export type { EncodeJob };
