/** quantize(): checkpoint in, weightpress safetensors out, streamed tensor by tensor. */
import { resolve } from 'node:path';

import { Checkpoint } from './checkpoint.js';
import { DTYPE_SIZE } from './dtype.js';
import { fromNative } from './errors.js';
import { FORMAT_KEY, FORMAT_VERSION, codebookName, codesName, scalesName, streamName, type FileScheme, type StoredMetrics, type TensorScheme } from './format.js';
import { Importance } from './importance.js';
import { Cancel, OutputFile, reportProgress } from './job.js';
import { loadNative } from './load.js';
import { findMethod, type MethodEntry } from './methods/registry.js';
import type { NativeEntropyStats, NativeQuantizeParams } from './native.js';
import { blockParams, makePlan, type BlockStep, type QuantizeStep, type Step } from './plan.js';
import type { TensorRef } from './checkpoint.js';
import { sqnrDb, totals, type Report, type TensorReport } from './report.js';
import { resolveQuantizeOptions, type QuantizeOptions, type ResolvedQuantizeOptions } from './validate.js';

/**
 * Quantizes every selected tensor of `input` (a .safetensors file, a shard index, or a directory) and writes
 * `output`, a valid safetensors file with codes, codebooks, kept tensors and the scheme in its metadata.
 * Nothing is written at `output` unless the whole job succeeds.
 */
export async function quantize(input: string, output: string, options: QuantizeOptions = {}): Promise<Report> {
  const o = resolveQuantizeOptions(options);
  const cancel = new Cancel(o.signal);
  const started = performance.now();
  const ckpt = await Checkpoint.open(input);
  let out: OutputFile | undefined;
  let importance: Importance | undefined;
  try {
    cancel.check(ckpt.path);
    const fallbacks: string[] = [];
    const plan = makePlan(ckpt.tensors(), o, ckpt.path, fallbacks);
    const warnings: string[] = fallbacks.map((n) => `tensor "${n}": rows are not a multiple of the block size ${o.blockSize}: quantized per row instead`);
    if (o.importance !== undefined) importance = await Importance.open(o.importance, o.importanceKind, o.importanceMap);
    const job: Job = { ckpt, o, cancel, importance, warnings, method: findMethod(o.method)! };
    // One codebook for the whole network: summarize every quantized tensor, solve once.
    if (o.granularity === 'network') job.fixed = await solveNetwork(job, plan.filter((s): s is QuantizeStep => s.kind === 'quantize'));
    out = new OutputFile(resolve(output), reserveFor(plan, ckpt.metadata));
    const scheme: FileScheme = { format: 'weightpress', version: FORMAT_VERSION, tensors: {} };
    const reports: TensorReport[] = [];
    const bytesTotal = plan.reduce((a, s) => a + s.tensor.byteLength, 0);
    let bytesDone = 0;
    let index = 0;
    // Quantized tensors first (each codebook + codes pair ends 8-byte aligned), then kept tensors by
    // descending element size, so that every tensor's data is aligned for its dtype.
    const ordered = [
      ...plan.filter((s) => s.kind !== 'keep'),
      ...plan.filter((s) => s.kind === 'keep').sort((a, b) => DTYPE_SIZE[b.tensor.dtype] - DTYPE_SIZE[a.tensor.dtype]),
    ];
    if (ordered.length) ckpt.advise(ordered[0].tensor.name, 'willneed');
    for (const [i, step] of ordered.entries()) {
      cancel.check(ckpt.path);
      // Ask the kernel to read the next tensor ahead while this one is worked on.
      if (i + 1 < ordered.length) ckpt.advise(ordered[i + 1].tensor.name, 'willneed');
      const t0 = performance.now();
      const r =
        step.kind === 'quantize' ? await quantizeOne(job, out, step) : step.kind === 'block' ? await blockOne(job, out, step) : await keepOne(ckpt, out, step);
      // The file stores no timings (the same input and options give a byte-identical file); the report does.
      scheme.tensors[step.tensor.name] = r.scheme;
      reports.push(r.report({ ...r.metrics, seconds: (performance.now() - t0) / 1000 }));
      bytesDone += step.tensor.byteLength;
      reportProgress(o.onProgress, {
        phase: step.kind === 'keep' ? 'copy' : 'quantize', tensor: step.tensor.name, index: ++index, count: plan.length, bytesDone, bytesTotal,
      });
    }
    cancel.check(ckpt.path);
    const metadata: Record<string, string> = { ...ckpt.metadata };
    // Keep the original order of tensors in the report and scheme.
    const order = new Map(plan.map((s, i) => [s.tensor.name, i]));
    reports.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
    const sorted: Record<string, TensorScheme> = {};
    for (const s of plan) sorted[s.tensor.name] = scheme.tensors[s.tensor.name];
    scheme.tensors = sorted;
    metadata[FORMAT_KEY] = JSON.stringify(scheme);
    await out.finish(metadata);
    return {
      input: ckpt.path, output: out.path, tensors: reports, total: totals(reports, (performance.now() - started) / 1000),
      ...(warnings.length ? { warnings } : {}),
    };
  } catch (e) {
    out?.abort();
    throw e;
  } finally {
    cancel.dispose();
    importance?.close();
    ckpt.close();
  }
}

interface Job {
  ckpt: Checkpoint;
  o: ResolvedQuantizeOptions;
  cancel: Cancel;
  method: MethodEntry;
  importance?: Importance;
  warnings: string[];
  fixed?: { levels: Float64Array; thresholds: Float64Array };
}

/** The rate of a tensor (bits per weight): the option, or its dtype's bits / the compression ratio. */
function rateOf(o: ResolvedQuantizeOptions, dtypeBits: number): number | undefined {
  if (o.rate !== undefined) return o.rate;
  return o.compressionRatio !== undefined ? Math.min(8, dtypeBits / o.compressionRatio) : undefined;
}

function solverParams(o: ResolvedQuantizeOptions, dtypeBits = 32) {
  const rate = rateOf(o, dtypeBits);
  return {
    seed: o.seed, maxIter: o.maxIter, symmetric: o.symmetric, step: o.step,
    ...(o.lambda !== undefined ? { lambda: o.lambda } : {}),
    ...(o.lambda2 !== undefined ? { lambda2: o.lambda2 } : {}),
    ...(o.targetValues !== undefined ? { targetValues: o.targetValues } : {}),
    ...(rate !== undefined ? { rate } : {}),
  };
}

async function importanceFor(job: Job, t: TensorRef): Promise<Float32Array | undefined> {
  if (!job.importance) return undefined;
  const w = await job.importance.weightsFor(t);
  if (!w) job.warnings.push(`no importance for tensor "${t.name}" in ${job.importance.file}: uniform weights used`);
  return w;
}

async function solveNetwork(job: Job, steps: QuantizeStep[]): Promise<{ levels: Float64Array; thresholds: Float64Array }> {
  const native = loadNative();
  const acc = native.summaryNew();
  for (const step of steps) {
    job.cancel.check(job.ckpt.path);
    const t = step.tensor;
    const at = new Error();
    try {
      await native.summaryAdd(acc, { data: job.ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, name: t.name, importance: await importanceFor(job, t) });
    } catch (e) {
      throw fromNative(e, { file: t.file, tensor: t.name }, at);
    }
  }
  const at = new Error();
  try {
    // One codebook for tensors of several dtypes: their bits averaged by weight count set the rate.
    const n = steps.reduce((a, s) => a + s.tensor.numel, 0);
    const bits = n ? steps.reduce((a, s) => a + DTYPE_SIZE[s.tensor.dtype] * 8 * s.tensor.numel, 0) / n : 32;
    return await native.summarySolve(acc, job.method.solver(job.o), { ...solverParams(job.o, bits), k: 2 ** job.o.bits });
  } catch (e) {
    throw fromNative(e, { file: job.ckpt.path }, at);
  }
}

interface StepResult {
  scheme: TensorScheme;
  metrics: StoredMetrics;
  report: (m: StoredMetrics) => TensorReport;
}

async function quantizeOne(job: Job, out: OutputFile, step: QuantizeStep): Promise<StepResult> {
  const { ckpt, o, method } = job;
  const native = loadNative();
  const t = step.tensor;
  const data = ckpt.bytes(t.name);
  const codes = new Uint8Array(step.codesBytes);
  const codebook = new Uint8Array(step.codebookBytes);
  const params: NativeQuantizeParams = {
    method: method.solver(o), bits: o.bits, granularity: step.granularity === 'network' || step.granularity === 'block' ? 'tensor' : step.granularity,
    sliceSize: step.sliceSize, codebookDtype: o.codebookDtype, threads: o.threads, device: o.device, ...solverParams(o, DTYPE_SIZE[t.dtype] * 8),
    ...(job.fixed ? { fixedLevels: job.fixed.levels, fixedThresholds: job.fixed.thresholds } : {}),
    ...(o.entropy !== 'none' ? { packBits: 8 } : {}),
  };
  const at = new Error();
  let stats;
  try {
    const importance = job.fixed ? undefined : await importanceFor(job, t);
    stats = await native.quantize({ data, dtype: t.dtype, numel: t.numel, name: t.name, importance }, params, codes, codebook, job.cancel.flag);
  } catch (e) {
    throw fromNative(e, { file: t.file, tensor: t.name }, at);
  }
  if (o.targetValues !== undefined && stats.levelsUsed < o.targetValues)
    job.warnings.push(`tensor "${t.name}": ${o.targetValues} values were not attainable in every slice (mean ${stats.levelsUsed.toFixed(4)} per slice)`);
  const cbName = codebookName(t.name);
  await out.add(cbName, o.codebookDtype, [step.slices, step.levels], codebook);
  const codesOut = await storeCodes(job, out, t, codes, step.codebookBytes);
  ckpt.advise(t.name, 'dontneed');
  const metrics = metricsOf(t, stats, step.codebookBytes + codesOut.bytes, codesOut.coded, step.slices * stats.levelsUsed);
  const used: Record<string, unknown> = { solver: params.method };
  if (method.seeded) Object.assign(used, { seed: o.seed, maxIter: o.maxIter });
  if (o.method === 'uniform') Object.assign(used, { symmetric: o.symmetric, step: o.step });
  for (const k of ['rate', 'compressionRatio', 'lambda', 'lambda2', 'targetValues'] as const) if (o[k] !== undefined) used[k] = o[k];
  if (o.importance !== undefined) Object.assign(used, { importance: o.importanceKind });
  const scheme: TensorScheme = {
    method: o.method, bits: o.bits, granularity: step.granularity,
    ...(step.granularity === 'group' ? { groupSize: o.groupSize } : {}),
    sliceSize: step.sliceSize, slices: step.slices, dtype: t.dtype, shape: t.shape, ...codesOut.scheme,
    codebook: cbName, codebookDtype: o.codebookDtype, params: used, metrics,
  };
  return {
    scheme, metrics,
    report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits: o.bits, granularity: step.granularity, numel: t.numel, ...m, device: stats.backend }),
  };
}

/**
 * Writes a tensor's codes: packed as they are, or entropy-coded into a stream (from one byte per code). `head` is
 * the bytes written just before for this tensor; the result is padded so that head + codes end 8-byte aligned.
 */
async function storeCodes(job: Job, out: OutputFile, t: TensorRef, codes: Uint8Array, head: number) {
  const { o } = job;
  let coded: (NativeEntropyStats & { blob: Uint8Array }) | undefined;
  let stored = codes;
  if (o.entropy !== 'none') {
    const at = new Error();
    try {
      coded = await loadNative().entropyEncode(codes.subarray(0, t.numel), { coder: o.entropy, alphabet: 2 ** o.bits, threads: o.threads }, job.cancel.flag);
    } catch (e) {
      throw fromNative(e, { file: t.file, tensor: t.name }, at);
    }
    stored = new Uint8Array(Math.ceil((head + coded.blob.byteLength) / 8) * 8 - head);
    stored.set(coded.blob);
  } else if ((head + codes.byteLength) % 8) {
    stored = new Uint8Array(Math.ceil((head + codes.byteLength) / 8) * 8 - head);
    stored.set(codes);
  }
  const name = coded ? streamName(t.name) : codesName(t.name);
  await out.add(name, 'U8', [stored.byteLength], stored);
  const scheme = coded
    ? { stream: name, entropy: o.entropy as 'huffman' | 'ans', streamBytes: coded.blob.byteLength }
    : { codes: name };
  return { bytes: stored.byteLength, coded, scheme };
}

/** A quantized tensor's metrics from the native stats; with entropy coding, H, L and the compression ratios. */
function metricsOf(
  t: TensorRef, stats: { n: number; sse: number; signal: number; maxAbsErr: number }, bytesOut: number,
  coded: (NativeEntropyStats & { blob: Uint8Array }) | undefined, codebookEntries: number,
): StoredMetrics {
  const metrics: StoredMetrics = {
    mse: stats.n ? stats.sse / stats.n : 0,
    sqnrDb: sqnrDb(stats.signal, stats.sse),
    maxAbsErr: stats.maxAbsErr,
    bitsPerWeight: (bytesOut * 8) / t.numel,
    bytesIn: t.byteLength,
    bytesOut,
    seconds: 0,
  };
  if (coded) {
    const info = loadNative().entropyInfo(coded.blob);
    // Choi et al. Eq. 1: N*b / (sum_i (|C_i| + 1) * b_i + k*b): the coded payload, one codeword per symbol in
    // the table (Huffman; rANS: its frequency table), and k codebook entries of b bits.
    const b = DTYPE_SIZE[t.dtype] * 8;
    const tableBits = info.codeLengths ? info.codeLengths.reduce((a, x) => a + x, 0) : info.tableBytes * 8;
    Object.assign(metrics, {
      entropy: coded.entropy,
      avgCodeLength: coded.avgCodeLength,
      compressionRatio: t.byteLength / bytesOut,
      paperCompressionRatio: (t.numel * b) / (coded.avgCodeLength * t.numel + tableBits + codebookEntries * b),
    });
  }
  return metrics;
}

/** The block-scaled format with a learned table (docs/BLOCK.md): table, scales, then codes. */
async function blockOne(job: Job, out: OutputFile, step: BlockStep): Promise<StepResult> {
  const { ckpt, o, method } = job;
  const native = loadNative();
  const t = step.tensor;
  const sz = step.sizes;
  const codes = new Uint8Array(sz.codesBytes);
  const scales = new Uint8Array(sz.scalesBytes);
  const table = new Uint8Array(sz.tableBytes);
  const params = blockParams(o, DTYPE_SIZE[t.dtype] * 8);
  const at = new Error();
  let stats;
  try {
    const importance = await importanceFor(job, t);
    stats = await native.blockQuantize(
      { data: ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, cols: step.cols, name: t.name, importance }, params, codes, scales, table, job.cancel.flag,
    );
  } catch (e) {
    throw fromNative(e, { file: t.file, tensor: t.name }, at);
  }
  const K = 2 ** o.bits;
  const cbName = codebookName(t.name);
  const scName = scalesName(t.name);
  await out.add(cbName, 'F32', [sz.tables, K], table);
  await out.add(scName, 'U8', [scales.byteLength], scales);
  const codesOut = await storeCodes(job, out, t, codes, 0);
  ckpt.advise(t.name, 'dontneed');
  const metrics = metricsOf(t, stats, table.byteLength + scales.byteLength + codesOut.bytes, codesOut.coded, sz.tables * stats.levelsUsed);
  const scheme: TensorScheme = {
    method: o.method, bits: o.bits, granularity: 'block', sliceSize: o.table === 'row' ? step.cols : t.numel, slices: sz.tables,
    dtype: t.dtype, shape: t.shape, ...codesOut.scheme, codebook: cbName, codebookDtype: 'F32', scales: scName,
    block: { blockSize: o.blockSize, cols: step.cols, table: o.table, scale: o.scale, doubleQuant: o.doubleQuant || null },
    params: { solver: params.solver, rounds: o.rounds, ...(o.importance !== undefined ? { importance: o.importanceKind } : {}), ...(o.rate !== undefined ? { rate: o.rate } : {}) },
    metrics,
  };
  return {
    scheme, metrics,
    report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits: o.bits, granularity: 'block', numel: t.numel, ...m, device: 'cpu' }),
  };
}

async function keepOne(ckpt: Checkpoint, out: OutputFile, step: Step): Promise<StepResult> {
  const t = step.tensor;
  await out.add(t.name, t.dtype, t.shape, ckpt.bytes(t.name));
  ckpt.advise(t.name, 'dontneed');
  const metrics: StoredMetrics = {
    mse: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: DTYPE_SIZE[t.dtype] * 8, bytesIn: t.byteLength, bytesOut: t.byteLength, seconds: 0,
  };
  return {
    scheme: { method: 'keep', dtype: t.dtype, shape: t.shape, metrics },
    metrics,
    report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: 'keep', bits: DTYPE_SIZE[t.dtype] * 8, granularity: null, numel: t.numel, ...m }),
  };
}

/** Room for the header: tensor entries, the scheme and metrics per tensor, and the input's metadata. */
function reserveFor(plan: Step[], metadata: Record<string, string>): number {
  let bytes = 4096 + JSON.stringify(metadata).length * 1.2;
  for (const s of plan) {
    const entry = 160 + s.tensor.name.length * 2 + s.tensor.shape.length * 21;
    bytes += s.kind === 'quantize' ? 3 * entry + 900 : 2 * entry + 400;
  }
  return Math.ceil(bytes / 8) * 8;
}
