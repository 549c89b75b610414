/**
 * One checkpoint quantized by many machines, with BullMQ on Redis as the job queue (docs/DISTRIBUTED.md).
 *
 *   submit()     plans the job (lib/plan.ts), writes the plan into the output directory, and enqueues a BullMQ flow:
 *                one child job per work unit (consecutive shards of about unitSize input bytes) and a parent job
 *                that merges (the index, once every unit is done). Returns the job id.
 *   runWorker()  serves the queue: a unit is quantizeTasks(plan, outDir, {shards}) (each shard written unnamed
 *                and linked into place only when complete); the parent job is merge(). Progress goes to the job.
 *   status()     units done / running / failed, bytes done, throughput, the workers that hold units.
 *
 * Redis and the output directory are what the machines share. A killed worker loses nothing: BullMQ's stalled-job
 * detection gives its unit to another worker, and its staged files are removed by the merge. Errors that a retry
 * cannot fix (E_FORMAT, E_NONFINITE, E_DTYPE, E_ARGUMENT) fail the job at once with the typed error; others are
 * retried with exponential backoff. bullmq is an optional peer dependency, loaded on first use.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile, readdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { writeFileAtomic } from './atomic.js';
import { ArgumentError, IoError, WeightpressError, fromNative } from './errors.js';
import { plan as makePlan, shardTasks, type Plan } from './plan.js';
import { quantizeTasks } from './quantize.js';
import { ensureDir, indexName, merge, parseSize } from './shards.js';
import type { QuantizeOptions } from './validate.js';

type BullMQ = typeof import('bullmq');
let bullmq: BullMQ | undefined;
async function loadBullmq(): Promise<BullMQ> {
  if (bullmq) return bullmq;
  try {
    bullmq = await import('bullmq');
    return bullmq;
  } catch (e) {
    throw new WeightpressError('E_LOAD', `distributed jobs need the package bullmq: npm install bullmq (${(e as Error).message.split('\n')[0]})`);
  }
}

/** The default queue name. */
export const DEFAULT_QUEUE = 'weightpress';
/** Errors a retry cannot fix: they fail the job at once. */
const PERMANENT = new Set(['E_FORMAT', 'E_NONFINITE', 'E_DTYPE', 'E_ARGUMENT', 'E_CANCELLED']);

/** A Redis URL as BullMQ's connection options; an ArgumentError for anything else. */
function connectionOf(url: string) {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ArgumentError(`option redis: expected a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new ArgumentError(`option redis: expected redis:// or rediss://, got ${JSON.stringify(url)}`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null as null,
  };
}

/** Fails fast, with an E_IO naming the URL, when Redis does not answer. */
async function checkRedis(url: string): Promise<void> {
  // ioredis is bullmq's own Redis client (installed with it).
  const { Redis } = await import('ioredis');
  const r = new Redis({ ...connectionOf(url), lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 5000, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    throw new IoError(`cannot reach Redis at ${url}: ${(e as Error).message}`, { file: url, cause: e });
  } finally {
    r.disconnect();
  }
}

export interface SubmitOptions extends QuantizeOptions {
  /** Redis URL (redis://host:port[/db]); required. */
  redis: string;
  /** Input bytes per work unit, about (default 2GB; a number or "500MB"); a unit is one or more whole shards. */
  unitSize?: number | string;
  /** Queue name (default 'weightpress'); workers must serve the same one. */
  queue?: string;
  /** Attempts per unit for transient failures (default 5, exponential backoff from 1 s). */
  attempts?: number;
}

interface UnitData {
  jobId: string;
  planFile: string;
  outDir: string;
  shards: number[];
  bytes: number;
}
interface MergeData {
  jobId: string;
  planFile: string;
  outDir: string;
  units: number;
  shards: number;
  bytes: number;
}

/** Consecutive shards grouped into units of about `unitSize` input bytes (a shard is never split). */
export function unitsOf(plan: Plan, unitSize: number): { shards: number[]; bytes: number }[] {
  const shards = shardTasks(plan.tasks, plan.maxShardSize);
  const units: { shards: number[]; bytes: number }[] = [];
  for (const [k, s] of shards.entries()) {
    const bytes = s.tasks.reduce((a, i) => a + plan.tasks[i].tensor.byteLength, 0);
    const last = units[units.length - 1];
    if (last && last.bytes + bytes <= unitSize) {
      last.shards.push(k);
      last.bytes += bytes;
    } else units.push({ shards: [k], bytes });
  }
  return units;
}

/**
 * Plans quantizing `input` into the directory `outDir` and enqueues it: returns the job id. The output, once the
 * job is done, is byte-identical to quantize(input, outDir + '/', options). Throws ArgumentError (options), the
 * errors of plan() for a bad input, IoError when Redis does not answer (naming the URL) or outDir cannot be made.
 */
export async function submit(input: string, outDir: string, options: SubmitOptions): Promise<string> {
  const { redis, unitSize: us, queue = DEFAULT_QUEUE, attempts = 5, ...qopts } = options ?? ({} as SubmitOptions);
  if (typeof redis !== 'string') throw new ArgumentError('option redis: a Redis URL is required (e.g. redis://127.0.0.1:6379)');
  const unitSize = parseSize('unitSize', us ?? '2GB');
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new ArgumentError(`option attempts: must be an integer from 1 to 100, got ${attempts}`);
  connectionOf(redis);
  await checkRedis(redis);
  const plan = await makePlan(input, qopts);
  const dir = resolve(outDir);
  ensureDir(dir);
  const jobId = `wp-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const planFile = join(dir, `.weightpress-${jobId}.plan.json`);
  await writeFileAtomic(planFile, JSON.stringify(plan));
  const units = unitsOf(plan, unitSize);
  const { FlowProducer } = await loadBullmq();
  const flow = new FlowProducer({ connection: connectionOf(redis) });
  try {
    const total = units.reduce((a, u) => a + u.bytes, 0);
    // Largest units first (BullMQ priority 1 is taken first): the last units to finish are small ones, so the
    // workers end together (longest-processing-time-first).
    const rank = new Map([...units.keys()].sort((a, b) => units[b].bytes - units[a].bytes || a - b).map((u, r) => [u, r + 1]));
    const shards = shardTasks(plan.tasks, plan.maxShardSize).length;
    await flow.add({
      name: 'merge',
      queueName: queue,
      data: { jobId, planFile, outDir: dir, units: units.length, shards, bytes: total } satisfies MergeData,
      opts: { jobId, attempts, backoff: { type: 'exponential', delay: 1000 } },
      children: units.map((u, i) => ({
        name: 'unit',
        queueName: queue,
        data: { jobId, planFile, outDir: dir, shards: u.shards, bytes: u.bytes } satisfies UnitData,
        opts: { jobId: `${jobId}-unit-${i}`, priority: rank.get(i), attempts, backoff: { type: 'exponential', delay: 1000 }, failParentOnFailure: true },
      })),
    });
  } catch (e) {
    await unlink(planFile).catch(() => undefined);
    throw new IoError(`cannot enqueue the job on ${redis}: ${(e as Error).message}`, { file: redis, cause: e });
  } finally {
    await flow.close();
  }
  return jobId;
}

export interface WorkerOptions {
  /** Redis URL; required. */
  redis: string;
  queue?: string;
  /** Units at once (default 1). */
  concurrency?: number;
  /** CPU threads per unit (0 = all cores). */
  threads?: number;
  /**
   * Milliseconds a unit stays held by a worker that stops answering (killed, lost) before another takes it
   * (default 30000); a live worker renews it every lockDuration / 2.
   */
  lockDuration?: number;
  /** A name for this worker in status (default host:pid). */
  name?: string;
}

/**
 * Removes temporary files of our own naming left in outDir by killed workers, of any host (at merge time every unit
 * is done): where O_TMPFILE is unsupported (NFS) ".<name>.wp-<pid>@<host>.<hex>.tmp", and earlier versions' staged
 * files.
 */
async function removeStale(outDir: string): Promise<void> {
  for (const f of await readdir(outDir).catch(() => [] as string[]))
    if (/^\..*\.wp-(staged-\d+(\.[0-9a-f]+\.tmp)?|\d+@[^.]+\.[0-9a-f]{8}\.tmp)$/.test(f)) await unlink(join(outDir, f)).catch(() => undefined);
}

/** A WeightpressError as a job's failure reason (JSON, so that status() gives back the code, file and tensor). */
function reasonOf(e: unknown): { text: string; permanent: boolean } {
  const w = e instanceof WeightpressError ? e : fromNative(e);
  return { text: JSON.stringify({ code: w.code, message: w.message, file: w.file, tensor: w.tensor }), permanent: PERMANENT.has(w.code) };
}

/**
 * Serves the queue until close(): units are quantized with the ordinary pipeline and written into the job's output
 * directory; the merge job writes the index. Returns a handle whose close() finishes or releases the units it holds.
 */
export async function runWorker(options: WorkerOptions): Promise<{ close(): Promise<void>; name: string }> {
  const { redis, queue = DEFAULT_QUEUE, concurrency = 1, threads = 0, lockDuration = 30_000 } = options ?? ({} as WorkerOptions);
  if (typeof redis !== 'string') throw new ArgumentError('option redis: a Redis URL is required');
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ArgumentError(`option concurrency: must be a positive integer, got ${concurrency}`);
  if (!Number.isInteger(lockDuration) || lockDuration < 500) throw new ArgumentError(`option lockDuration: must be at least 500 ms, got ${lockDuration}`);
  const name = options.name ?? `${hostname()}:${process.pid}`;
  await checkRedis(redis);
  const { Worker, UnrecoverableError } = await loadBullmq();
  const worker = new Worker(
    queue,
    async (job) => {
      try {
        if (job.name === 'unit') {
          const d = job.data as UnitData;
          const plan = JSON.parse(await readFile(d.planFile, 'utf8')) as Plan;
          let last = 0;
          await job.updateProgress({ bytesDone: 0, bytesTotal: d.bytes, worker: name });
          const r = await quantizeTasks(plan, d.outDir, {
            shards: d.shards,
            threads,
            onProgress: (p) => {
              const now = Date.now();
              if (now - last < 250 && p.index < p.count) return;
              last = now;
              void job.updateProgress({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, worker: name }).catch(() => undefined);
            },
          });
          await job.updateProgress({ bytesDone: d.bytes, bytesTotal: d.bytes, worker: name });
          return { output: r.output, worker: name };
        }
        const d = job.data as MergeData;
        const plan = JSON.parse(await readFile(d.planFile, 'utf8')) as Plan;
        await removeStale(d.outDir);
        const output = d.shards > 1 ? await merge(d.outDir, { order: plan.tasks.map((t) => t.tensor.name) }) : join(d.outDir, 'model.safetensors');
        await unlink(d.planFile).catch(() => undefined);
        return { output, index: d.shards > 1 ? indexName('model.safetensors') : undefined };
      } catch (e) {
        const { text, permanent } = reasonOf(e);
        throw permanent ? new UnrecoverableError(text) : new Error(text);
      }
    },
    { connection: connectionOf(redis), concurrency, lockDuration, stalledInterval: Math.max(500, Math.floor(lockDuration / 2)), maxStalledCount: 3, name },
  );
  worker.on('error', () => undefined); // connection hiccups are retried by BullMQ
  return { name, close: () => worker.close() };
}

export interface UnitStatus {
  unit: number;
  state: string;
  shards: number[];
  bytes: number;
  bytesDone: number;
  worker?: string;
  attempts: number;
  error?: { code: string; message: string; file?: string; tensor?: string };
}
export interface JobStatus {
  id: string;
  /** 'waiting' (units pending or running), 'completed', 'failed'. */
  state: string;
  units: { total: number; done: number; running: number; waiting: number; failed: number };
  bytesDone: number;
  bytesTotal: number;
  /** Input bytes per second since the first unit started. */
  throughput: number;
  workers: string[];
  output?: string;
  error?: { code: string; message: string; file?: string; tensor?: string };
  unitStates: UnitStatus[];
}

function parseReason(r: string | undefined): JobStatus['error'] {
  if (!r) return undefined;
  try {
    return JSON.parse(r);
  } catch {
    return { code: 'E_INTERNAL', message: r };
  }
}

/** The state of a job: its units, bytes done, throughput, the workers holding units; an IoError if it is unknown. */
export async function status(jobId: string, options: { redis: string; queue?: string }): Promise<JobStatus> {
  const { redis, queue = DEFAULT_QUEUE } = options ?? ({} as { redis: string });
  await checkRedis(redis);
  const { Queue, Job } = await loadBullmq();
  const q = new Queue(queue, { connection: connectionOf(redis) });
  try {
    const parent = await Job.fromId(q, jobId);
    if (!parent) throw new IoError(`no job ${jobId} on queue ${queue}`, { file: redis });
    const d = parent.data as MergeData;
    const units: UnitStatus[] = [];
    let started = Infinity;
    for (let i = 0; i < d.units; i++) {
      const j = await Job.fromId(q, `${jobId}-unit-${i}`);
      if (!j) continue;
      const st = await j.getState();
      const p = (typeof j.progress === 'object' ? j.progress : {}) as { bytesDone?: number; worker?: string };
      if (j.processedOn) started = Math.min(started, j.processedOn);
      const u = j.data as UnitData;
      units.push({
        unit: i, state: st, shards: u.shards, bytes: u.bytes, bytesDone: st === 'completed' ? u.bytes : (p.bytesDone ?? 0),
        worker: st === 'active' ? p.worker : (j.returnvalue as { worker?: string } | undefined)?.worker ?? p.worker,
        attempts: j.attemptsMade, error: parseReason(j.failedReason),
      });
    }
    // BullMQ may report the merge job completed before its return value is readable: until it is, the job is not
    // reported completed (a status read in that window saw a null return value).
    const ret = parent.returnvalue as { output?: string } | null | undefined;
    const pst0 = await parent.getState();
    const pst = pst0 === 'completed' && (ret === null || ret === undefined) ? 'active' : pst0;
    const childFailed = units.find((u) => u.state === 'failed');
    const bytesDone = units.reduce((a, u) => a + u.bytesDone, 0);
    const secs = started < Infinity ? (Date.now() - started) / 1000 : 0;
    return {
      id: jobId,
      state: pst === 'completed' ? 'completed' : pst === 'failed' || childFailed ? 'failed' : 'waiting',
      units: {
        total: d.units,
        done: units.filter((u) => u.state === 'completed').length,
        running: units.filter((u) => u.state === 'active').length,
        waiting: units.filter((u) => !['completed', 'active', 'failed'].includes(u.state)).length,
        failed: units.filter((u) => u.state === 'failed').length,
      },
      bytesDone,
      bytesTotal: d.bytes,
      throughput: secs > 0 ? bytesDone / secs : 0,
      workers: [...new Set(units.filter((u) => u.state === 'active' && u.worker).map((u) => u.worker!))],
      ...(pst === 'completed' && ret?.output !== undefined ? { output: ret.output } : {}),
      ...(childFailed?.error || parent.failedReason ? { error: childFailed?.error ?? parseReason(parent.failedReason) } : {}),
      unitStates: units,
    };
  } finally {
    await q.close();
  }
}
