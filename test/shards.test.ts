/**
 * Plans as data and sharded outputs: a plan survives JSON; quantizeTasks() runs it (all shards at once, or shard by
 * shard as separate workers would, then merge()); a sharded output decodes to exactly the tensors of the single-file
 * output; its index lists every stored tensor once; decode shards large outputs the same way.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, inspect, merge, plan, quantize, quantizeTasks, shardTasks } from '../lib/index.js';
import { readSafetensors, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const emotion = join(__dirname, 'fixtures', 'emotion.f16.safetensors');

/** Every tensor of a dense checkpoint (a file or a shard index) as name -> bytes, read by the test's own reader. */
function tensorsOf(path: string): Map<string, Buffer> {
  const files = path.endsWith('.json') ? [...new Set(Object.values(JSON.parse(readFileSync(path, 'utf8')).weight_map as Record<string, string>))].map((f) => join(path, '..', f)) : [path];
  const m = new Map<string, Buffer>();
  for (const file of files) {
    const f = readSafetensors(file);
    for (const name of Object.keys(f.header)) {
      expect(m.has(name), `${name} in two shards`).toBe(false);
      m.set(name, Buffer.from(f.tensor(name)));
    }
  }
  return m;
}

describe('sharded outputs', () => {
  const single = join(tmp.dir, 'single.safetensors');
  const sharded = join(tmp.dir, 'sharded', 'model.safetensors');

  it('--max-shard-size gives shards and an index that lists every stored tensor once; decode gives the same tensors', async () => {
    const opts = { method: 'kmeans-optimal', bits: 4, granularity: 'row', entropy: 'huffman' } as const;
    await quantize(emotion, single, opts);
    mkdirSync(join(tmp.dir, 'sharded'));
    const limit = 40_000;
    const r = await quantize(emotion, sharded, { ...opts, maxShardSize: limit });
    expect(r.output).toBe(join(tmp.dir, 'sharded', 'model.safetensors.index.json'));
    const index = JSON.parse(readFileSync(r.output!, 'utf8'));
    const shardFiles = readdirSync(join(tmp.dir, 'sharded')).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shardFiles.length).toBeGreaterThanOrEqual(3);
    expect(shardFiles.every((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))).toBe(true);
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shardFiles));
    // Each stored tensor once, in the shard the index names; the stored bytes equal the single file's.
    const one = readSafetensors(single);
    const names = Object.keys(one.header).sort();
    expect(Object.keys(index.weight_map).sort()).toEqual(names);
    for (const f of shardFiles) {
      const p = readSafetensors(join(tmp.dir, 'sharded', f));
      const data = Object.keys(p.header).reduce((a, n) => a + p.tensor(n).byteLength, 0);
      // A shard exceeds the limit only when one tensor's stored parts alone do.
      if (data > limit) expect(Object.keys(JSON.parse(p.metadata.weightpress).tensors).length).toBe(1);
      for (const n of Object.keys(p.header)) {
        expect(index.weight_map[n]).toBe(f);
        expect(Buffer.from(p.tensor(n)).equals(Buffer.from(one.tensor(n))), n).toBe(true);
      }
    }
    expect(index.metadata.total_size).toBe(names.reduce((a, n) => a + one.tensor(n).byteLength, 0));
    // Decoding the shard index gives the single file's tensors exactly.
    await decode(single, join(tmp.dir, 'single.dense.safetensors'));
    const d = await decode(r.output!, join(tmp.dir, 'sharded.dense.safetensors'));
    const a = tensorsOf(join(tmp.dir, 'single.dense.safetensors'));
    const b = tensorsOf(d.output);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [n, v] of a) expect(b.get(n)!.equals(v), n).toBe(true);
    // inspect reads the shards' schemes together.
    const ins = await inspect(r.output!);
    expect(ins.tensors.length).toBe(Object.keys(JSON.parse(one.metadata.weightpress).tensors).length);
  });

  it('decode shards a large dense output, and the shards hold the same tensors', async () => {
    const dir = join(tmp.dir, 'dense-sharded') + '/';
    const d = await decode(single, dir, { maxShardSize: '100KB' });
    expect(d.output.endsWith('model.safetensors.index.json')).toBe(true);
    const a = tensorsOf(join(tmp.dir, 'single.dense.safetensors'));
    const b = tensorsOf(d.output);
    expect(b.size).toBe(a.size);
    for (const [n, v] of a) expect(b.get(n)!.equals(v), n).toBe(true);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
      const p = readSafetensors(join(dir, f));
      if (Object.keys(p.header).length > 1) expect(statSync(join(dir, f)).size).toBeLessThan(100_000 + 8192);
    }
  });
});

describe('plans are data', () => {
  it('a plan survives JSON; quantizeTasks of it writes the bytes quantize() writes (network granularity included)', async () => {
    for (const granularity of ['row', 'network'] as const) {
      const opts = { method: 'kmeans-optimal', bits: 3, granularity } as const;
      const direct = join(tmp.dir, `direct-${granularity}.safetensors`);
      await quantize(emotion, direct, opts);
      const p = await plan(emotion, opts);
      const copy = JSON.parse(JSON.stringify(p));
      expect(copy).toEqual(p);
      if (granularity === 'network') expect(p.tasks.filter((t) => t.codec === 'scalar').every((t) => Array.isArray((t.layout as { fixed?: { levels: number[] } }).fixed?.levels))).toBe(true);
      const dir = join(tmp.dir, `tasks-${granularity}`);
      const r = await quantizeTasks(copy, dir);
      expect(readFileSync(r.output!).equals(readFileSync(direct))).toBe(true);
    }
  });

  it('shards written by separate calls (as workers would), then merge(), give the bytes of a single call', async () => {
    const opts = { method: 'uniform', bits: 4, granularity: 'group', groupSize: 64, maxShardSize: '50KB' } as const;
    const p = await plan(emotion, opts);
    expect(p.maxShardSize).toBe(50_000);
    const dir = join(tmp.dir, 'workers');
    const all = join(tmp.dir, 'all');
    const whole = await quantizeTasks(p, all);
    const index = JSON.parse(readFileSync(whole.output!, 'utf8'));
    const n = new Set(Object.values(index.weight_map)).size;
    expect(n).toBeGreaterThan(2);
    for (let k = n - 1; k >= 0; k--) {
      const r = await quantizeTasks(JSON.parse(JSON.stringify(p)), dir, { shards: [k] });
      expect(r.output).toMatch(/workers[\\/]model-\d{5}-of-\d{5}\.safetensors$/);
      if (k > 0) await expect(merge(dir), 'merge refuses while shards are missing').rejects.toMatchObject({ code: 'E_IO' });
    }
    expect(readdirSync(dir).some((f) => f.endsWith('.index.json'))).toBe(false);
    const merged = await merge(dir, { order: p.tasks.map((t) => t.tensor.name) });
    // The index a distributed run writes is the one a single run writes, byte for byte; so are the shards.
    expect(readFileSync(merged).equals(readFileSync(whole.output!))).toBe(true);
    for (const f of new Set(Object.values(index.weight_map) as string[])) expect(readFileSync(join(dir, f)).equals(readFileSync(join(all, f)))).toBe(true);
    await expect(quantizeTasks(p, dir, { shards: [n] })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(quantizeTasks(p, dir, { shards: [0, 0, 1] })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(quantizeTasks(p, dir, { maxShardSize: '1MB' } as never)).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(quantizeTasks({ ...p, tasks: [{ ...p.tasks[0], codec: 'vq' as 'scalar' }] }, dir)).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('"vq"') });
  });
});

describe('sharded outputs are all or nothing', () => {
  it('a shard that cannot be put in place is refused before any work, and leaves none of the output', async () => {
    const dir = join(tmp.dir, 'blocked');
    mkdirSync(join(dir, 'model-00003-of-00005.safetensors'), { recursive: true }); // a directory where shard 3 goes
    const before = readdirSync(dir).sort();
    // F32 codebooks: the shard count below was sized for them (the default became F16, issue 16).
    const p = await plan(emotion, { method: 'uniform', bits: 4, maxShardSize: '60KB', codebookDtype: 'F32' });
    expect(new Set(shardTasks(p.tasks, p.maxShardSize).map((s) => s.file)).size).toBe(5);
    let progress = 0;
    await expect(quantize(emotion, dir + '/', { method: 'uniform', bits: 4, maxShardSize: '60KB', codebookDtype: 'F32', onProgress: () => progress++ })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      file: join(dir, 'model-00003-of-00005.safetensors'),
    });
    expect(progress).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('an aborted sharded job into a new directory leaves nothing, not even the directory', async () => {
    const dir = join(tmp.dir, 'aborted', 'deep');
    const ac = new AbortController();
    const job = quantize(emotion, dir + '/', { maxShardSize: '40KB', signal: ac.signal, onProgress: (q) => q.index === 3 && !q.within && ac.abort() });
    await expect(job).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(existsSync(join(tmp.dir, 'aborted'))).toBe(false);
  });

  it('a new output replaces the shards and index of an older one of the same name, and never touches the input', async () => {
    const dir = join(tmp.dir, 'replace') + '/';
    await quantize(emotion, dir, { maxShardSize: '40KB' });
    expect(readdirSync(dir).filter((f) => f.includes('-of-')).length).toBeGreaterThan(2);
    await quantize(emotion, dir, {});
    expect(readdirSync(dir).sort()).toEqual(['model.safetensors']);
    const r = await inspect(dir);
    expect(r.tensors.length).toBeGreaterThan(0);
    // The input as the output: refused before any work.
    const copy = join(tmp.dir, 'in-place');
    mkdirSync(copy);
    copyFileSync(emotion, join(copy, 'model.safetensors'));
    const bytes = readFileSync(join(copy, 'model.safetensors'));
    await expect(quantize(copy, copy + '/')).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    expect(readFileSync(join(copy, 'model.safetensors')).equals(bytes)).toBe(true);
  });

  it('decode of a sharded output gives the bytes decode of the single file gives (same tensor order)', async () => {
    const single = join(tmp.dir, 'order-single.safetensors');
    const dir = join(tmp.dir, 'order-sharded') + '/';
    await quantize(emotion, single, { method: 'uniform' });
    await quantize(emotion, dir, { method: 'uniform', maxShardSize: '40KB' });
    await decode(single, single + '.dense');
    const d = await decode(dir, join(tmp.dir, 'order-sharded.dense.safetensors'));
    expect(readFileSync(d.output).equals(readFileSync(single + '.dense'))).toBe(true);
  });
});
