/**
 * quantize(): checkpoint in, weightpress safetensors out (one file, or shards and an index), streamed tensor by
 * tensor. quantizeTasks(): runs a plan (lib/plan.ts), or some of its shards, into a directory. Both drive the
 * codecs (lib/codecs/) through their interface only.
 */
import { resolve } from 'node:path';

import { openAuxiliary, type Auxiliary } from './auxiliary.js';
import { removeStaleTemps } from './atomic.js';
import { Checkpoint } from './checkpoint.js';
import type { EncodeJob, GivenQuantizers } from './codecs/codec.js';
import { CODECS, findCodec } from './codecs/registry.js';
import { addRowOffsets, CapturingSink, preservesMean } from './codecs/rowmean.js';
import { ArgumentError } from './errors.js';
import { DIGEST_KEY, FORMAT_KEY, formatVersionFor, schemeDigest, type FileScheme, type TensorScheme } from './format.js';
import { Cancel, ProgressClock, reportProgress } from './job.js';
import { findMethod } from './methods/registry.js';
import { headerBound, planOf, shardTasks, type Plan, type PlannedShard } from './plan.js';
import { ruleLabel } from './recipe.js';
import { HistogramCollector, checkReportFile, reportDocument, writeReport, totals, type Report, type TensorReport } from './report.js';
import { ShardWriter, ensureDir, indexName, outputTarget, prepareOutput, removeIfEmpty } from './shards.js';
import { loadNative } from './load.js';
import { JOB_OPTIONS, compilePattern, resolveQuantizeOptions, type Device, type Progress, type QuantizeOptions, type ResolvedQuantizeOptions } from './validate.js';

/**
 * Quantizes every selected tensor of `input` (a .safetensors file, a shard index, or a directory) and writes
 * `output`: a valid safetensors file with codes, codebooks, kept tensors and the scheme in its metadata; or, when
 * the output would exceed `maxShardSize` bytes (default 5 GB), shards "x-00001-of-0000N.safetensors" and the index
 * "x.safetensors.index.json" (an output directory gets "model.safetensors" or its shards). Nothing is written
 * unless the whole job succeeds. Returns the report (per-tensor and total MSE, SQNR, bits per weight incl. every
 * stored byte). With `report` (a path ending .html or .json), also writes the report file once the output is in place
 * (docs/REPORT.md). Throws ArgumentError (options), FormatError/DtypeError/IoError (input), NonFiniteError,
 * CancelledError; IoError when the report file cannot be written (the output is then already written).
 */
export async function quantize(input: string, output: string, options: QuantizeOptions = {}): Promise<Report> {
  return quantizeGiven(input, output, options);
}

/**
 * quantize() with quantizers the caller already has for some tensors (by name; the scalar codec stores them
 * instead of fitting). For weightpress/tfjs's fromTfjs; not part of the public API.
 */
export async function quantizeGiven(input: string, output: string, options: QuantizeOptions, given?: ReadonlyMap<string, GivenQuantizers>): Promise<Report> {
  // The report file's options are no option of the plan: taken out here, checked before any work.
  const isObject = typeof options === 'object' && options !== null;
  const { report: reportFile, reportTensors, ...rest } = isObject ? options : ({} as QuantizeOptions);
  const o = resolveQuantizeOptions(isObject ? rest : options);
  const reportPatterns = reportOptions(reportFile, reportTensors);
  const cancel = new Cancel(o.signal);
  const started = performance.now();
  const ckpt = await Checkpoint.open(input);
  let created: string | undefined;
  try {
    const { dir, base, isDir } = prepareOutput(output, [ckpt.path, ...ckpt.files], o.force);
    if (reportFile !== undefined) checkReportFile(reportFile, [ckpt.path, ...ckpt.files], [resolve(dir, base), resolve(dir, indexName(base))]);
    const plan = await planOf(ckpt, o, cancel);
    if (isDir) created = ensureDir(dir);
    const shards = shardTasks(plan.tasks, plan.maxShardSize, base);
    const histograms = reportFile !== undefined ? new HistogramCollector(plan.tasks, reportPatterns) : undefined;
    const report = await runShards(ckpt, plan, dir, shards, indexName(base), { ...o, force: o.force, histograms }, cancel, started, given);
    if (reportFile !== undefined) {
      const codecOf = new Map(plan.tasks.map((t) => [t.tensor.name, t.codec]));
      const doc = reportDocument(report, {
        version: loadNative().versions().weightpress,
        settings: settingsOf(o),
        codecOf: (n) => codecOf.get(n) ?? 'keep',
        histograms: histograms!.histograms(),
      });
      await writeReport(reportFile, doc);
    }
    return report;
  } catch (e) {
    removeIfEmpty(created, outputTarget(output).dir);
    throw e;
  } finally {
    cancel.dispose();
    ckpt.close();
  }
}

export interface QuantizeTasksOptions {
  /** CPU threads for native work (0 = all cores). */
  threads?: number;
  device?: Device;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /**
   * Which shards (0-based; the plan's maxShardSize splits it) this call writes; default all. A job spread over
   * workers gives each worker some shards, then calls merge(outDir, {order}) once all are written.
   */
  shards?: number[];
}

/** Checks that a plan (perhaps read back from JSON) is one plan() could have made: known codecs and methods. */
function checkPlan(plan: Plan): void {
  const bad = (p: string) => new ArgumentError(`option plan: ${p}`);
  if (!plan || typeof plan !== 'object' || !Array.isArray(plan.tasks) || typeof plan.input !== 'string') throw bad('must be what plan() returns');
  if (typeof plan.maxShardSize !== 'number' || !(plan.maxShardSize > 0)) throw bad('maxShardSize must be a positive number of bytes');
  for (const [i, t] of plan.tasks.entries()) {
    if (!t || typeof t !== 'object' || !t.tensor || typeof t.tensor.name !== 'string') throw bad(`task ${i} has no tensor`);
    if (!findCodec(t.codec)) throw bad(`task ${i} (${t.tensor.name}) names codec ${JSON.stringify(t.codec)}, which is not registered (known: ${CODECS.map((c) => c.name).join(', ')})`);
    if (t.codec !== 'keep' && !findMethod(t.method)) throw bad(`task ${i} (${t.tensor.name}) names method ${JSON.stringify(t.method)}, which is not registered`);
  }
}

/**
 * Runs a plan (from plan()) into `outDir`: its shards "model-0000k-of-0000N.safetensors" (or "model.safetensors"
 * when one shard holds everything), each a complete weightpress file, and, when every shard was written by this
 * call, the index "model.safetensors.index.json". Throws ArgumentError for bad options, the errors of quantize().
 */
export async function quantizeTasks(plan: Plan, outDir: string, options: QuantizeTasksOptions = {}): Promise<Report> {
  const known = ['threads', 'device', 'signal', 'onProgress', 'shards'];
  for (const k of Object.keys(options ?? {})) if (!known.includes(k)) throw new ArgumentError(`option ${k}: unknown quantizeTasks option (known: ${known.join(', ')})`);
  const r = resolveQuantizeOptions({ threads: options.threads, device: options.device, signal: options.signal, onProgress: options.onProgress });
  const o = { threads: r.threads, device: r.device, onProgress: r.onProgress };
  checkPlan(plan);
  const all = shardTasks(plan.tasks, plan.maxShardSize);
  const pick = options.shards ?? all.map((_, k) => k);
  if (!Array.isArray(pick) || !pick.length) throw new ArgumentError('option shards: must be a non-empty array of shard numbers');
  for (const k of pick) if (!Number.isInteger(k) || k < 0 || k >= all.length) throw new ArgumentError(`option shards: ${k} is not a shard of this plan (0 to ${all.length - 1})`);
  if (new Set(pick).size !== pick.length) throw new ArgumentError(`option shards: ${JSON.stringify(pick)} names a shard twice`);
  const chosen = [...pick].sort((a, b) => a - b).map((k) => all[k]);
  // The index is written only when this call writes every shard; otherwise merge() writes it afterwards.
  const index = chosen.length === all.length ? indexName('model.safetensors') : undefined;
  const cancel = new Cancel(r.signal);
  const started = performance.now();
  const ckpt = await Checkpoint.open(plan.input);
  let created: string | undefined;
  try {
    created = ensureDir(resolve(outDir));
    removeStaleTemps(resolve(outDir));
    return await runShards(ckpt, plan, resolve(outDir), chosen, index, o, cancel, started);
  } catch (e) {
    removeIfEmpty(created, resolve(outDir));
    throw e;
  } finally {
    cancel.dispose();
    ckpt.close();
  }
}

type RunOptions = Pick<ResolvedQuantizeOptions, 'threads' | 'device' | 'onProgress'> & { force?: boolean; histograms?: HistogramCollector };

/** The report options checked: the name patterns of reportTensors, compiled (the file is checked against the input and output later). */
function reportOptions(file: unknown, tensors: unknown): RegExp[] {
  if (file === undefined) {
    if (tensors !== undefined) throw new ArgumentError('option reportTensors: applies with option report (a .html or .json file) only');
    return [];
  }
  if (typeof file !== 'string' || !/\.(html?|json)$/i.test(file)) throw new ArgumentError(`option report: must be a path ending in .html or .json, got ${JSON.stringify(file)}`);
  if (tensors === undefined) return [];
  const list = typeof tensors === 'string' ? [tensors] : tensors;
  if (!Array.isArray(list) || !list.length || list.some((p) => typeof p !== 'string' || !p)) throw new ArgumentError('option reportTensors: must be a name pattern or a non-empty array of them (glob * ? or /regex/)');
  return (list as string[]).map((p) => compilePattern('reportTensors', p));
}

/** The run's settings as the report file records them: the job's options, the codec's and the method's, resolved. */
function settingsOf(o: ResolvedQuantizeOptions): Record<string, unknown> {
  const specs = [...JOB_OPTIONS, ...(findCodec(o.codec)?.options ?? []), ...(findMethod(o.method)?.options ?? [])];
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const v = (o as unknown as Record<string, unknown>)[spec.name];
    if (v !== undefined && !(spec.name in out)) out[spec.name] = v;
  }
  return out;
}

/** Header bytes to reserve for a shard: its tasks' entries and the input's metadata (without the 8-byte length). */
function reserveFor(plan: Plan, shard: PlannedShard): number {
  return headerBound(shard.tasks.map((i) => plan.tasks[i]), plan.metadata) - 8;
}

async function runShards(
  ckpt: Checkpoint,
  plan: Plan,
  dir: string,
  shards: PlannedShard[],
  index: string | undefined,
  o: RunOptions,
  cancel: Cancel,
  started: number,
  given?: ReadonlyMap<string, GivenQuantizers>,
): Promise<Report> {
  const warnings = [...plan.warnings];
  const quantized = plan.tasks.find((t) => t.codec !== 'keep')?.options;
  let aux: Auxiliary | undefined;
  let writer: ShardWriter | undefined;
  try {
    aux = await openAuxiliary(quantized);
    writer = new ShardWriter(
      dir,
      shards.map((s) => ({ file: s.file, reserve: reserveFor(plan, s) })),
      [ckpt.path, ...ckpt.files],
      o.force,
    );
    const schemes: Record<string, TensorScheme> = {};
    const reports: TensorReport[] = [];
    const mine = shards.flatMap((s) => s.tasks);
    const bytesTotal = mine.reduce((a, i) => a + plan.tasks[i].tensor.byteLength, 0);
    let bytesDone = 0;
    let index_ = 0;
    const clock = new ProgressClock();
    if (mine.length) ckpt.advise(plan.tasks[mine[0]].tensor.name, 'willneed');
    for (const [k, shard] of shards.entries()) {
      for (const i of shard.tasks) {
        cancel.check(ckpt.path);
        const task = plan.tasks[i];
        const t = task.tensor;
        // Ask the kernel to read the next tensor ahead while this one is worked on.
        const next = mine[index_ + 1];
        if (next !== undefined) ckpt.advise(plan.tasks[next].tensor.name, 'willneed');
        const codec = findCodec(task.codec)!;
        const done = { index: index_, count: mine.length, bytesDone, bytesTotal };
        // A tensor the report file draws: its weights' histogram now, while it is in memory; its stored parts kept.
        const watch = o.histograms?.watch(task);
        if (watch) await watch.before(ckpt.bytes(t.name));
        let most = -1; // native progress may arrive out of order from several threads: report it monotone
        const sink = writer.sink(k);
        const watched = watch ? watch.sink(sink) : sink;
        const capture = preservesMean(task) ? new CapturingSink(watched) : undefined;
        const job: EncodeJob = {
          ckpt, out: capture ?? watched, cancel, threads: o.threads, device: o.device, importance: aux.importance, calibration: aux.calibration, warnings, given,
          onTensorProgress: o.onProgress
            ? (d, n) => {
                if (d <= most) return;
                most = d;
                reportProgress(o.onProgress, { phase: codec.phase, tensor: t.name, ...done, bytesDone: bytesDone + (n ? (t.byteLength * d) / n : 0), within: { done: d, total: n } }, clock);
              }
            : undefined,
        };
        const t0 = performance.now();
        let r = await codec.encode(task, job, findMethod(task.method)!);
        // Row-mean preservation: only for entries the codec quantized (not a tensor it kept).
        if (capture && r.scheme.method !== 'keep') r = await addRowOffsets(task, job, codec, r, capture, watched);
        ckpt.check(); // what was read is only good if the input did not shrink meanwhile
        if (watch) await watch.after(r.scheme, codec, o.threads, cancel);
        // The file stores no timings (the same input and options give a byte-identical file); the report does.
        schemes[t.name] = task.rule ? { ...r.scheme, rule: task.rule } : r.scheme;
        const row = r.report({ ...r.metrics, seconds: (performance.now() - t0) / 1000 });
        reports.push(task.rule ? { ...row, rule: ruleLabel(task.rule) } : row);
        bytesDone += t.byteLength;
        reportProgress(o.onProgress, { phase: codec.phase, tensor: t.name, index: ++index_, count: mine.length, bytesDone, bytesTotal }, clock);
      }
    }
    cancel.check(ckpt.path);
    // Schemes and reports keep the input's order of tensors.
    const order = new Map(plan.tasks.map((t, i) => [t.tensor.name, i]));
    reports.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
    const schemeOf = (names: string[]): string => {
      const s: FileScheme = { format: 'weightpress', version: 1, tensors: {} };
      for (const n of [...names].sort((a, b) => order.get(a)! - order.get(b)!)) s.tensors[n] = schemes[n];
      s.version = formatVersionFor(s.tensors);
      return JSON.stringify(s);
    };
    const names = (s: PlannedShard) => s.tasks.map((i) => plan.tasks[i].tensor.name);
    const output = await writer.finish(
      (k) => {
        const scheme = schemeOf(names(shards[k]));
        return { ...plan.metadata, [FORMAT_KEY]: scheme, [DIGEST_KEY]: schemeDigest(scheme) };
      },
      index,
      { [FORMAT_KEY]: schemeOf(shards.flatMap(names)) },
      () => ckpt.check(),
    );
    return {
      input: ckpt.path,
      output,
      tensors: reports,
      total: totals(reports, (performance.now() - started) / 1000),
      ...(warnings.length ? { warnings } : {}),
    };
  } catch (e) {
    writer?.abort();
    throw ckpt.failure() ?? e; // a shrunk input is the cause of whatever followed
  } finally {
    aux?.close();
  }
}
