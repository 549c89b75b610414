/**
 * Distributed jobs on a real Redis and real BullMQ (no mocks): worker processes (`weightpress worker`) quantize a
 * sharded checkpoint submitted with submit(); the output must equal the single-process output byte for byte, also
 * when a worker is SIGKILLed in the middle of a unit; a corrupt input fails the job with the typed error; an
 * unreachable Redis is an E_IO naming the URL. Redis: WEIGHTPRESS_TEST_REDIS (.ci/run starts one), else a
 * redis-server started here on a free port, else the suite is skipped and says why.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { quantize } from '../lib/index.js';
import { status, submit } from '../lib/distributed.js';
import { encode, gaussian, tempDir, writeSafetensors, type RawTensor } from './helpers.js';

const CLI = join(__dirname, '..', 'dist', 'cli.js');
const tmp = tempDir();
const haveServer = spawnSync('redis-server', ['--version']).status === 0;
let redis = process.env.WEIGHTPRESS_TEST_REDIS ?? '';
let server: ChildProcess | undefined;
const workers: ChildProcess[] = [];

async function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

beforeAll(async () => {
  if (redis || !haveServer) return;
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  redis = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 400));
});

afterAll(() => {
  for (const w of workers) w.kill('SIGKILL');
  server?.kill('SIGTERM');
  tmp.cleanup();
});

function startWorker(queue: string, name: string, extra: string[] = []): ChildProcess {
  const w = spawn(process.execPath, [CLI, 'worker', '--redis', redis, '--queue', queue, '--name', name, '--threads', '1', '--lock-duration', '1500', ...extra], { stdio: 'ignore' });
  workers.push(w);
  return w;
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, seconds = 90): Promise<T> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A sharded checkpoint (3 shards + index) of float tensors that take a while to quantize per row. */
function shardedInput(dir: string, rows: number, cols: number, count: number): string {
  mkdirSync(dir, { recursive: true });
  const tensors: RawTensor[] = Array.from({ length: count }, (_, i) => ({
    name: `layers.${i}.weight`, dtype: 'F32', shape: [rows, cols], data: encode(gaussian(rows * cols, 100 + i), 'F32'),
  }));
  tensors.push({ name: 'norm', dtype: 'F32', shape: [cols], data: encode(gaussian(cols, 7), 'F32') });
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / 3);
  for (let s = 0; s < 3; s++) {
    const file = `model-0000${s + 1}-of-00003.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    writeSafetensors(join(dir, file), part, { source: 'distributed-test' });
    for (const t of part) weightMap[t.name] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return join(dir, 'model.safetensors.index.json');
}

function sameFiles(a: string, b: string): void {
  const fa = readdirSync(a).sort(), fb = readdirSync(b).sort();
  expect(fa).toEqual(fb);
  for (const f of fa) expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
}

describe.skipIf(!process.env.WEIGHTPRESS_TEST_REDIS && !haveServer)('distributed jobs on BullMQ (real Redis)', () => {
  it('three workers give the single-process output byte for byte', async () => {
    const input = shardedInput(join(tmp.dir, 'in3'), 64, 512, 8);
    const opts = { method: 'kmeans-optimal', bits: 4, granularity: 'row', maxShardSize: '40KB' } as const;
    const single = join(tmp.dir, 'single3') + '/';
    await quantize(input, single, opts);
    const out = join(tmp.dir, 'out3');
    const id = await submit(input, out, { ...opts, redis, queue: 'q3', unitSize: '100KB' });
    for (let i = 0; i < 3; i++) startWorker('q3', `w3-${i}`);
    const s = await until('the job', () => status(id, { redis, queue: 'q3' }), (x) => x.state !== 'waiting');
    expect(s.state, JSON.stringify(s.error)).toBe('completed');
    expect(s.units.total).toBeGreaterThan(2);
    expect(s.units.done).toBe(s.units.total);
    sameFiles(out, single);
  });

  it('a worker SIGKILLed in the middle of a unit loses nothing: same bytes, every tensor once, no temporary file', async () => {
    const input = shardedInput(join(tmp.dir, 'in-kill'), 768, 2048, 6);
    const opts = { method: 'kmeans-optimal', bits: 4, granularity: 'row', maxShardSize: '600KB' } as const;
    const out = join(tmp.dir, 'out-kill');
    const id = await submit(input, out, { ...opts, redis, queue: 'qk', unitSize: '1B' });
    const pool = new Map<string, ChildProcess>([0, 1].map((i) => [`wk-${i}`, startWorker('qk', `wk-${i}`)]));
    // The moment: a unit is running and has reported progress within its tensor.
    const mid = await until('a unit in progress', () => status(id, { redis, queue: 'qk' }), (x) => x.unitStates.some((u) => u.state === 'active' && u.bytesDone > 0 && u.bytesDone < u.bytes && !!u.worker));
    const victim = mid.unitStates.find((u) => u.state === 'active' && u.bytesDone > 0 && u.bytesDone < u.bytes)!.worker!;
    pool.get(victim)!.kill('SIGKILL');
    startWorker('qk', 'wk-late');
    const s = await until('the job', () => status(id, { redis, queue: 'qk' }), (x) => x.state !== 'waiting', 120);
    expect(s.state, JSON.stringify(s.error)).toBe('completed');
    const single = join(tmp.dir, 'single-kill') + '/';
    await quantize(input, single, { ...opts, threads: 2 });
    sameFiles(out, single);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const names = Object.keys(JSON.parse(index.metadata.weightpress).tensors);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(7);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  }, 180_000);

  it('a corrupt input fails the whole job with E_FORMAT naming the file; the unit is not retried', async () => {
    const dir = join(tmp.dir, 'in-bad');
    const input = shardedInput(dir, 32, 256, 3);
    const out = join(tmp.dir, 'out-bad');
    const id = await submit(input, out, { method: 'uniform', redis, queue: 'qb', unitSize: '1B', maxShardSize: '8KB' });
    // The input changes under the job: a shard loses its end.
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    truncateSync(shard, readFileSync(shard).length - 100);
    startWorker('qb', 'wb-0');
    const s = await until('the failure', () => status(id, { redis, queue: 'qb' }), (x) => x.state === 'failed');
    expect(s.error?.code).toBe('E_FORMAT');
    expect(s.error?.file).toBe(shard);
    for (const u of s.unitStates.filter((x) => x.state === 'failed')) expect(u.attempts).toBe(1);
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(false);
  });

  it('an unreachable Redis at submit is an E_IO naming the URL', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    await expect(submit(join(__dirname, 'fixtures', 'emotion.f16.safetensors'), join(tmp.dir, 'never'), { redis: url })).rejects.toMatchObject({
      code: 'E_IO', file: url, message: expect.stringContaining(url),
    });
    expect(existsSync(join(tmp.dir, 'never'))).toBe(false);
  });
});
