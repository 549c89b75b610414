/**
 * Suite output: what the hostile-file-system safeguards of issue #11 cost.
 *
 *   decode, O_TMPFILE        decode of a BENCH_OUTPUT_MIB MiB (default 256, BENCH_QUICK=1: 32) dense F32 output:
 *                            the output unnamed until linked into place (the default on Linux)
 *   decode, named temporary  the same with WEIGHTPRESS_NO_TMPFILE=1 (a hidden file renamed into place)
 *   Checkpoint.check()       the per-tensor guard of a shrinking input (a flag and an fstat per shard)
 *   scheme digest            SHA-256 of a scheme of 10,000 entries, checked on every read
 *
 * Median of 5 runs each (the first run of each decode warms the page cache).
 *
 *   npx tsx bench/output.bench.ts          (BENCH_QUICK=1 for the reduced size)
 */
import './env.js';

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Checkpoint, decode, quantize } from '../lib/index.js';
import { schemeDigest } from '../lib/format.js';
import { QUICK, Rng, benchHeader, emit, envInt, isMain, mdTable, note } from './common.js';

export const name = 'output';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(runs: number, f: () => Promise<void> | void): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

export async function run(): Promise<string> {
  const mib = envInt('BENCH_OUTPUT_MIB', 256, 32);
  const dir = mkdtempSync(join(tmpdir(), 'wp-bench-output-'));
  try {
    // A dense F32 checkpoint of `mib` MiB in 16 tensors, quantized to 4 bits once; decode writes `mib` MiB.
    const rng = new Rng(20261130);
    const per = (mib * 2 ** 20) / 4 / 16;
    const rows = 1024, cols = per / rows;
    const header: Record<string, unknown> = {};
    const parts: Buffer[] = [];
    let off = 0;
    for (let k = 0; k < 16; k++) {
      const a = new Float32Array(per);
      for (let i = 0; i < per; i++) a[i] = rng.normal();
      header[`w${k}`] = { dtype: 'F32', shape: [rows, cols], data_offsets: [off, off + a.byteLength] };
      off += a.byteLength;
      parts.push(Buffer.from(a.buffer));
    }
    let json = JSON.stringify(header);
    while ((8 + json.length) % 8) json += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const dense = join(dir, 'dense.safetensors');
    writeFileSync(dense, Buffer.concat([len, Buffer.from(json), ...parts]));
    const q = join(dir, 'q.safetensors');
    note(`output: quantizing ${mib} MiB`);
    await quantize(dense, q, { method: 'uniform', bits: 4 });
    rmSync(dense);

    const rows_: string[][] = [];
    for (const [label, env] of [['O_TMPFILE', undefined], ['named temporary', '1']] as const) {
      if (env) process.env.WEIGHTPRESS_NO_TMPFILE = env;
      else delete process.env.WEIGHTPRESS_NO_TMPFILE;
      note(`output: decode, ${label}`);
      const ms = await timed(5, async () => {
        await decode(q, join(dir, 'out.safetensors'), { threads: 1 });
      });
      rows_.push([`decode to ${mib} MiB, ${label}`, ms.toFixed(0) + ' ms', ((mib / ms) * 1000).toFixed(0) + ' MiB/s']);
    }
    delete process.env.WEIGHTPRESS_NO_TMPFILE;

    const ck = await Checkpoint.open(q);
    const n = 100_000;
    const us = ((await timed(5, () => {
      for (let i = 0; i < n; i++) ck.check();
    })) * 1000) / n;
    ck.close();
    rows_.push(['Checkpoint.check() (one shard)', us.toFixed(2) + ' µs', '–']);

    const entries: Record<string, unknown> = {};
    for (let i = 0; i < 10_000; i++)
      entries[`model.layers.${i}.weight`] = { method: 'keep', dtype: 'F32', shape: [4096, 4096], metrics: { mse: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: 32, bytesIn: 1, bytesOut: 1, seconds: 0 } };
    const scheme = JSON.stringify({ format: 'weightpress', version: 1, tensors: entries });
    const dms = await timed(5, () => void schemeDigest(scheme));
    rows_.push([`scheme digest, 10,000 entries (${(scheme.length / 2 ** 20).toFixed(2)} MiB)`, dms.toFixed(2) + ' ms', '–']);

    return ['## output: the costs of atomic outputs and strict reading (issue #11)', '', mdTable(['what', 'median of 5', 'throughput'], rows_), QUICK ? '\n(BENCH_QUICK: preliminary sizes)' : ''].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  emit(await benchHeader());
  emit(await run());
}
