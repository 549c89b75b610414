/**
 * Distributed overhead (issue 17), on one machine: per-row exact 4-bit quantization of the synthetic LLM-shaped
 * checkpoint (bench/gen-llm.ts; BENCH_DIST_FILE to use another) by
 *   one process     quantize(file, dir/, {threads: 2})
 *   two workers     submit() + two `weightpress worker --threads 1` processes on a real Redis
 * and the queue overhead per unit: enqueue to start (BullMQ's processedOn - timestamp) for a job of many tiny units,
 * taken by one idle worker. BENCH_DIST_SHARD / BENCH_DIST_UNIT set the shard and unit sizes (default 64MB / 128MB).
 * Needs redis-server on the PATH (started here on a free port) or BENCH_REDIS.
 *
 *   npx tsx bench/distributed.bench.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { status, submit } from '../lib/distributed.js';
import { quantize } from '../lib/index.js';
import { BENCH_DIR, DEFAULT_OUT } from './gen-llm.js';

const ROOT = join(BENCH_DIR, '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const file = process.env.BENCH_DIST_FILE ?? DEFAULT_OUT;
if (!existsSync(file)) throw new Error(`${file} is missing: make it with npx tsx bench/gen-llm.ts`);
const out = join(BENCH_DIR, 'data', 'dist-out');
const fixture = join(ROOT, 'test', 'fixtures', 'emotion.f16.safetensors');

async function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}
let server: ChildProcess | undefined;
let redis = process.env.BENCH_REDIS ?? '';
if (!redis) {
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  redis = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 500));
}
const workers: ChildProcess[] = [];
const worker = (queue: string, threads: number) => {
  const w = spawn(process.execPath, [CLI, 'worker', '--redis', redis, '--queue', queue, '--threads', String(threads)], { stdio: 'ignore' });
  workers.push(w);
};
async function wait(id: string, queue: string) {
  for (;;) {
    const s = await status(id, { redis, queue });
    if (s.state !== 'waiting') return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}

try {
  // BENCH_DIST_SHARD / BENCH_DIST_UNIT: shard and unit sizes (smaller units balance two workers better).
  const opts = { method: 'kmeans-optimal', bits: 4, granularity: 'row', maxShardSize: process.env.BENCH_DIST_SHARD ?? '64MB' } as const;
  rmSync(out, { recursive: true, force: true });
  let t0 = performance.now();
  await quantize(file, join(out, 'single') + '/', { ...opts, threads: 2 });
  const single = (performance.now() - t0) / 1000;
  worker('bench-dist', 1);
  worker('bench-dist', 1);
  await new Promise((r) => setTimeout(r, 1000)); // workers connected
  t0 = performance.now();
  const id = await submit(file, join(out, 'two'), { ...opts, redis, queue: 'bench-dist', unitSize: process.env.BENCH_DIST_UNIT ?? '128MB' });
  const s = await wait(id, 'bench-dist');
  const two = (performance.now() - t0) / 1000;
  // Queue overhead: 40 tiny units (one small tensor each), one idle worker.
  const { Queue, Job } = await import('bullmq');
  const id2 = await submit(fixture, join(out, 'tiny'), { method: 'uniform', redis, queue: 'bench-dist', unitSize: '1B', maxShardSize: '1KB', include: ['*'] });
  await wait(id2, 'bench-dist');
  const u = new URL(redis);
  const q = new Queue('bench-dist', { connection: { host: u.hostname, port: Number(u.port) } });
  const runs: { start: number; end: number; queued: number }[] = [];
  for (let i = 0; ; i++) {
    const j = await Job.fromId(q, `${id2}-unit-${i}`);
    if (!j) break;
    runs.push({ start: j.processedOn!, end: j.finishedOn!, queued: j.timestamp });
  }
  await q.close();
  runs.sort((a, b) => a.start - b.start);
  // Dispatch overhead: from one unit's end to the next one's start on the same (only) worker.
  const lat = runs.slice(1).map((r, i) => r.start - runs[i].end).sort((a, b) => a - b);
  const work = runs.map((r) => r.end - r.start).sort((a, b) => a - b);
  const gb = s.bytesTotal / 1e9;
  console.log(`| run | s | GB/s | vs one process |\n| :--- | ---: | ---: | ---: |`);
  console.log(`| one process, 2 threads | ${single.toFixed(1)} | ${(gb / single).toFixed(3)} | |`);
  console.log(`| two workers, 1 thread each (${s.units.total} units) | ${two.toFixed(1)} | ${(gb / two).toFixed(3)} | ${(((two - single) / single) * 100).toFixed(1)} % |`);
  console.log(
    `\nqueue overhead per unit (${runs.length} one-tensor units of the emotion checkpoint, one worker): first unit enqueue to start ` +
      `${runs[0].start - runs[0].queued} ms; between units (one's end to the next one's start) median ${lat[lat.length >> 1]} ms, ` +
      `max ${lat[lat.length - 1]} ms; a unit's own run (open the checkpoint, read the plan, quantize, write) median ${work[work.length >> 1]} ms`,
  );
} finally {
  for (const w of workers) w.kill('SIGTERM');
  server?.kill('SIGTERM');
}
