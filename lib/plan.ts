/**
 * The plan: which tensors are quantized, by which codec and method with which options, and which are kept; and,
 * for large outputs, which shard each tensor goes to. A plan is plain JSON (JSON.stringify / JSON.parse give it
 * back unchanged), so that it can be written down, split into work units and run elsewhere (quantizeTasks).
 */
import type { TensorRef } from './checkpoint.js';
import { Checkpoint } from './checkpoint.js';
import type { CodecName, TaskOptions, TensorTask } from './codecs/codec.js';
import { findCodec, CODECS } from './codecs/registry.js';
import { rowOffsetName } from './codecs/rowmean.js';
import { DTYPE_SIZE, isFloatDtype } from './dtype.js';
import { ArgumentError, FormatError } from './errors.js';
import { FORMAT_KEY } from './format.js';
import { openAuxiliary, type Auxiliary } from './auxiliary.js';
import { Cancel } from './job.js';
import { findMethod } from './methods/registry.js';
import { allocateBits } from './budget.js';
import { preservesMean, rowOffsetBytes } from './codecs/rowmean.js';
import { ruleFor, ruleLabel, type ResolvedRule, type RuleRef } from './recipe.js';
import { groupBySize, shardNames } from './shards.js';
import { compilePattern, resolveQuantizeOptions, type QuantizeOptions, type ResolvedQuantizeOptions } from './validate.js';

export type { TensorTask, TaskOptions, CodecName };

/** A shard of the output: its file name (in the output directory) and the indices of its tasks, in write order. */
export interface PlannedShard {
  file: string;
  tasks: number[];
}

export interface Plan {
  /** The checkpoint the plan reads (absolute path: a file or a shard index). */
  input: string;
  /** The input's metadata, copied into every output file. */
  metadata: Record<string, string>;
  /** One task per tensor of the input, in the input's order. */
  tasks: TensorTask[];
  /** Things the caller should know (fallbacks, deprecated options). */
  warnings: string[];
  /** Bytes per output shard at most: quantizeTasks splits the tasks into shards by it (the same on every worker). */
  maxShardSize: number;
}

/** The options a task carries: the resolved options without the run's callbacks and runtime settings. */
export function taskOptions(o: ResolvedQuantizeOptions): TaskOptions {
  const { signal: _s, onProgress: _p, force: _f, threads: _t, device: _d, warnings: _w, maxShardSize: _m, recipe: _r, preset: _pr, rules: _ru, maxBpw: _b, targetSize: _ts, ...rest } = o;
  return rest;
}

/**
 * The tasks for a checkpoint's tensors (no I/O beyond the tensors' names, shapes and dtypes). Tensors that the
 * rules do not select, non-float and empty tensors get the 'keep' codec; a codec that cannot take a tensor hands
 * it to another (a warning says so). Throws a FormatError when the input already holds a name weightpress would write.
 */
export function planTasks(tensors: TensorRef[], o: ResolvedQuantizeOptions, file: string, warnings: string[]): TensorTask[] {
  const inc = o.include.map((p) => compilePattern('include', p));
  const exc = o.exclude.map((p) => compilePattern('exclude', p));
  const names = new Set(tensors.map((t) => t.name));
  const base = taskOptions(o);
  if (inc.length) {
    const unmatched = o.include.filter((_, k) => !tensors.some((t) => inc[k].test(t.name)));
    if (unmatched.length === inc.length)
      throw new ArgumentError(`option include: ${unmatched.map((p) => JSON.stringify(p)).join(', ')} ${unmatched.length > 1 ? 'match' : 'matches'} no tensor of ${file} (${tensors.length} tensors, e.g. ${tensors.slice(0, 3).map((t) => JSON.stringify(t.name)).join(', ') || 'none'})`, { file });
    for (const p of unmatched) warnings.push(`include pattern ${JSON.stringify(p)} matches no tensor`);
  }
  const recipe = o.rules;
  const used = new Set<ResolvedRule>();
  const tasks = tensors.map((t): TensorTask => {
    const included = inc.length ? inc.some((r) => r.test(t.name)) : t.shape.length >= o.minDims && t.numel >= o.minElements;
    const excluded = exc.some((r) => r.test(t.name));
    if (!included || excluded || !isFloatDtype(t.dtype) || t.numel === 0) return { tensor: t, codec: 'keep', method: 'keep', options: base, layout: {} };
    // A recipe's first matching rule (or its default) gives the tensor its codec and options.
    const rule = recipe && ruleFor(recipe, t.name);
    if (rule) used.add(rule);
    if (rule?.keep) return { tensor: t, codec: 'keep', method: 'keep', options: base, layout: {}, rule: rule.ref };
    const opts = rule ? rule.options : o;
    for (const c of CODECS)
      for (const n of [...c.storedNames(t.name), rowOffsetName(t.name)])
        if (names.has(n)) throw new FormatError(`input already has a tensor named "${n}", which weightpress would write`, { file, tensor: t.name });
    return planTensor(t, opts.codec, rule ? taskOptions(opts) : base, warnings, rule?.ref);
  });
  for (const r of recipe?.rules ?? []) if (!used.has(r)) warnings.push(`${ruleLabel(r.ref)} (${r.ref.match.join(', ')}) matches no tensor the job quantizes`);
  return tasks;
}

/** One quantized tensor's task: its codec's layout, or the codecs' hand-overs (each a warning) until one takes it. */
export function planTensor(t: TensorRef, codecName: string, options: TaskOptions, warnings: string[], rule?: RuleRef): TensorTask {
  let codec = findCodec(codecName)!;
  for (;;) {
    const r = codec.plan(t, options);
    if ('layout' in r) return { tensor: t, codec: codec.name, method: codec.name === 'keep' ? 'keep' : options.method, options, layout: r.layout, ...(rule ? { rule } : {}) };
    warnings.push(r.warning);
    codec = findCodec(r.fallback.codec)!;
    options = { ...options, ...r.fallback.options };
  }
}

/** Header bytes of a one-file output of these tasks at most: the 8-byte length and the reserve quantize() makes. */
export function headerBound(tasks: TensorTask[], metadata: Record<string, string>): number {
  let bytes = 4096 + JSON.stringify(metadata).length * 1.2;
  for (const t of tasks) {
    bytes += findCodec(t.codec)!.headerBytes(t);
    if (preservesMean(t)) bytes += rowOffsetBytes(t.tensor).header;
  }
  return 8 + Math.ceil(bytes / 8) * 8;
}

/** Runs the codecs' prepare steps (e.g. the one codebook of granularity 'network'), which need every task. */
export async function prepareTasks(ckpt: Checkpoint, tasks: TensorTask[], o: ResolvedQuantizeOptions, cancel: Cancel, warnings: string[]): Promise<void> {
  let aux: Auxiliary | undefined;
  try {
    for (const c of CODECS) {
      const mine = tasks.filter((t) => t.codec === c.name);
      if (!c.prepare || !mine.length) continue;
      aux ??= await openAuxiliary(o);
      await c.prepare(mine, { ckpt, cancel, threads: o.threads, device: o.device, importance: aux.importance, calibration: aux.calibration, warnings }, findMethod(mine[0].method)!);
    }
  } finally {
    aux?.close();
  }
}

/**
 * The plan of quantizing `input` with `options`: every tensor's task, JSON-serializable. Reads the tensors only
 * where a codec needs all of them first (granularity 'network' solves its one codebook here and stores it in
 * the tasks). Throws ArgumentError for bad options, FormatError/IoError for a bad input, CancelledError on abort.
 */
export async function plan(input: string, options: QuantizeOptions = {}): Promise<Plan> {
  const o = resolveQuantizeOptions(options);
  const cancel = new Cancel(o.signal);
  const ckpt = await Checkpoint.open(input);
  try {
    return await planOf(ckpt, o, cancel);
  } finally {
    cancel.dispose();
    ckpt.close();
  }
}

/** The plan of an open checkpoint with resolved options (plan() and quantize() share it). */
export async function planOf(ckpt: Checkpoint, o: ResolvedQuantizeOptions, cancel: Cancel): Promise<Plan> {
  cancel.check(ckpt.path);
  refuseQuantized(ckpt);
  const warnings = [...o.warnings];
  const budget = o.maxBpw !== undefined || o.targetSize !== undefined;
  const planned: string[] = [];
  const tasks = planTasks(ckpt.tensors(), o, ckpt.path, planned);
  // With a budget the bits change: the tensors' plan warnings are those of the bits chosen (allocateBits adds them).
  warnings.push(...(budget ? planned.filter((w) => !w.startsWith('tensor "')) : planned));
  if (budget) {
    // The options a tensor's rule (or the job) gives it, before any codec's hand-over: each candidate bits is planned from them.
    const optionsOf = (task: TensorTask) => (o.rules ? ruleFor(o.rules, task.tensor.name).options : o);
    await allocateBits(
      ckpt, tasks, o, cancel, warnings,
      (task, bits, w) => { const opts = optionsOf(task); return planTensor(task.tensor, opts.codec, { ...taskOptions(opts), bits }, w, task.rule); },
      (ts) => headerBound(ts, ckpt.metadata),
      (task) => (o.rules ? ruleFor(o.rules, task.tensor.name).pinnedBits : false),
    );
  }
  await prepareTasks(ckpt, tasks, o, cancel, warnings);
  return { input: ckpt.path, metadata: { ...ckpt.metadata }, tasks, warnings, maxShardSize: o.maxShardSize };
}

/**
 * A weightpress output is no input for quantize: its codebooks and codes would be quantized again as if they were
 * weights. A FormatError names the file and says to decode it first.
 */
export function refuseQuantized(ckpt: Checkpoint): void {
  const shard = ckpt.shardMetadata().find((s) => s.metadata[FORMAT_KEY] !== undefined);
  if (shard || typeof ckpt.indexMetadata?.[FORMAT_KEY] === 'string')
    throw new FormatError(`is a weightpress output (already quantized); decode it first: weightpress decode ${ckpt.path} -o dense.safetensors`, { file: shard?.file ?? ckpt.path });
}

/** The order tasks are written in: codecs placed 'first', then the rest by descending element size (alignment). */
export function writeOrder(tasks: TensorTask[]): number[] {
  const idx = tasks.map((_, i) => i);
  const last = (i: number) => findCodec(tasks[i].codec)!.placement === 'last';
  return [...idx.filter((i) => !last(i)), ...idx.filter(last).sort((a, b) => DTYPE_SIZE[tasks[b].tensor.dtype] - DTYPE_SIZE[tasks[a].tensor.dtype])];
}

/**
 * Splits the tasks into shards of at most `maxShardSize` output bytes each (the codecs' estimate before entropy
 * coding), in write order (groupBySize). `base` is the single-file name ("model.safetensors"); shards are named
 * "model-00001-of-00003.safetensors".
 */
export function shardTasks(tasks: TensorTask[], maxShardSize: number, base = 'model.safetensors'): PlannedShard[] {
  const groups = groupBySize(writeOrder(tasks), (i) => findCodec(tasks[i].codec)!.outputBytes(tasks[i]), maxShardSize);
  const names = shardNames(base, groups.length);
  return groups.map((g, k) => ({ file: names[k], tasks: g }));
}
