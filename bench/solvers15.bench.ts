/**
 * Suite solvers15 (issue 15, targets 1, 2, 3, 7): the scalar solvers' speed side by side with the Python peers,
 * same data, one run.
 *
 *   A. one 1-D problem, k = 16, n = 10^6 and 10^7 F32 Gaussian values: weightpress kmeans-optimal (exact) against
 *      flash1dkmeans (k-means++ and Lloyd on sorted data, not exact), ckmeans-1d-dp's C++ core (exact) and
 *      kmeans1d (exact; 10^6 only). SSE of every result scored the same way (squared distance to nearest level).
 *   B. per-row 4-bit, 4096 x 4096 F32 and BF16 (perrow's matrix): kmeans-optimal against flash1dkmeans per row.
 *   C. ECSQ per row (ecsq, ecsq-uniform; rate 4 bits, k = 16), 1024 x 1024 F32.
 *   D. how cost grows: each scalar method at slice lengths 1024..16384 (same total weights) and 2..8 bits.
 *
 * Peers need a Python with them installed, given as BENCH_PY (see bench/RESULTS.md, section "solvers15");
 * without it the peer columns are left out. Sizes: BENCH_S15_LARGE (10^7 problem on/off, default 1),
 * BENCH_S15_TOTAL (weights per cell of table D, default 2^18), BENCH_S15_ONLY (sections to run, e.g. "D"; default ABCD).
 */
import './env.js';

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { solve } from '../lib/index.js';
import { loadNative } from '../lib/load.js';
import { Rng, emit, envInt, f32ToBf16, isMain, benchHeader, mdTable, note, sseToNearest } from './common.js';
import { heavyRowsMatrix } from './perrow.bench.js';

export const name = 'solvers15';

const PY = process.env.BENCH_PY ?? '';
const ONLY = process.env.BENCH_S15_ONLY ?? 'ABCD';

/** Runs a peer on the raw F32 file; the peer times itself (imports and file reading excluded). */
function peer(script: string, file: string): { s: number; levels: number[] } | string {
  if (!PY) return 'BENCH_PY unset';
  const r = spawnSync(PY, ['-c', script, file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return `failed: ${(r.stderr || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const PY_ONE: Record<string, string> = {
  flash1dkmeans: `
import sys, json, time, numpy as np
from flash1dkmeans import kmeans_1d
x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
kmeans_1d(x[:1000], 16)  # JIT warm-up
t = time.perf_counter(); c, _ = kmeans_1d(x, 16); t = time.perf_counter() - t
print(json.dumps({"s": t, "levels": sorted(float(v) for v in c)}))`,
  'ckmeans-1d-dp': `
import sys, json, time, numpy as np
import ckmeans_1d_dp as ck
x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
t = time.perf_counter(); r = ck.ckmeans(x, (16, 16)); t = time.perf_counter() - t
print(json.dumps({"s": t, "levels": sorted(float(v) for v in r.centers)}))`,
  kmeans1d: `
import sys, json, time, numpy as np
import kmeans1d
x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
t = time.perf_counter(); cl, c = kmeans1d.cluster(x, 16); t = time.perf_counter() - t
print(json.dumps({"s": t, "levels": sorted(float(v) for v in c)}))`,
};

const PY_ROWS = `
import sys, json, time, numpy as np
from flash1dkmeans import kmeans_1d
rows, cols = int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64).reshape(rows, cols)
kmeans_1d(x[0], 16)
t = time.perf_counter()
for r in range(rows): kmeans_1d(x[r], 16)
t = time.perf_counter() - t
print(json.dumps({"s": t, "levels": []}))`;

function gaussianF32(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; ++i) x[i] = r.normal();
  return x;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [(performance.now() - t) / 1000, v];
}

export async function run(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'wp-s15-'));
  const native = loadNative();
  const md: string[] = ['## solvers15: scalar solver speed against the peers (issue 15)', ''];
  try {
    // A. one problem
    const sizes = !ONLY.includes('A') ? [] : [1_000_000, ...(envInt('BENCH_S15_LARGE', 1) ? [10_000_000] : [])];
    const rowsA: (string | number)[][] = [];
    for (const n of sizes) {
      note(`solvers15 A: n = ${n}`);
      const x = gaussianF32(n, 20240601);
      const file = join(dir, `one-${n}.f32`);
      writeFileSync(file, x);
      const xd = Float64Array.from(x);
      const [tOpt, lvOpt] = await timed(() => solve('kmeans-optimal', xd, { k: 16 }));
      const sseOpt = sseToNearest(xd, lvOpt);
      rowsA.push([n, 'weightpress kmeans-optimal', 'exact', tOpt.toFixed(3), '1.00x', '0']);
      for (const p of ['flash1dkmeans', 'ckmeans-1d-dp', ...(n <= 1_000_000 ? ['kmeans1d'] : [])]) {
        const r = peer(PY_ONE[p], file);
        if (typeof r === 'string') {
          rowsA.push([n, p, '', r, '', '']);
          continue;
        }
        const d = sseToNearest(xd, r.levels) / sseOpt - 1;
        rowsA.push([
          n,
          p,
          p === 'flash1dkmeans' ? 'approximate' : 'exact',
          r.s.toFixed(3),
          `${(r.s / tOpt).toFixed(2)}x`,
          Math.abs(d) < 1e-12 ? `0 (${d.toExponential(0)})` : `${(d * 100).toPrecision(3)}%`,
        ]);
      }
    }
    md.push('### A. one problem, k = 16', '', mdTable(['n', 'method', 'kind', 'seconds', "its time / kmeans-optimal's", 'SSE vs kmeans-optimal'], rowsA), '');

    // B. per row
    if (ONLY.includes('B')) {
      const rows = 4096,
        cols = 4096,
        numel = rows * cols;
      note('solvers15 B: per row 4096 x 4096');
      const f32 = heavyRowsMatrix(rows, cols, 7);
      const bf16 = new Uint16Array(numel);
      f32ToBf16(new Uint32Array(f32.buffer), numel, bf16);
      const codes = new Uint8Array(numel / 2),
        codebook = new Uint8Array(rows * 16 * 4);
      const rowsB: (string | number)[][] = [];
      const fileB = join(dir, 'rows.f32');
      writeFileSync(fileB, f32);
      const fl = PY
        ? (() => {
            const r = spawnSync(PY, ['-c', PY_ROWS, fileB, String(rows), String(cols)], { encoding: 'utf8' });
            return r.status === 0 ? (JSON.parse(r.stdout.trim().split('\n').pop()!).s as number) : NaN;
          })()
        : NaN;
      for (const dtype of ['F32', 'BF16'] as const) {
        const data = dtype === 'F32' ? new Uint8Array(f32.buffer) : new Uint8Array(bf16.buffer);
        for (const threads of [1, 0]) {
          const [t] = await timed(() =>
            native.quantize(
              { data, dtype, numel, name: 'b' },
              { method: 'kmeans-optimal', bits: 4, granularity: 'row', sliceSize: cols, codebookDtype: 'F32', threads, solverParams: { seed: 0 } },
              codes,
              codebook,
            ),
          );
          rowsB.push([dtype, 'weightpress kmeans-optimal', threads || 'all', t.toFixed(2), Number.isFinite(fl) ? `${(t / fl).toFixed(2)}x` : '']);
        }
      }
      rowsB.push(['F32 (as F64)', 'flash1dkmeans, a Python loop over rows', 1, Number.isFinite(fl) ? fl.toFixed(2) : 'n/a', '1.00x']);
      md.push('### B. per row, 4 bits, 4096 x 4096', '', mdTable(['dtype', 'method', 'threads', 'seconds', 'vs flash1dkmeans'], rowsB), '');
    }

    // C. ECSQ per row
    if (ONLY.includes('C')) {
      note('solvers15 C: ecsq per row');
      const rowsC: (string | number)[][] = [];
      const ec = heavyRowsMatrix(1024, 1024, 11);
      for (const method of ['ecsq', 'ecsq-uniform'])
        for (const threads of [1, 0]) {
          const [t] = await timed(() =>
            native.quantize(
              { data: new Uint8Array(ec.buffer), dtype: 'F32', numel: ec.length, name: 'c' },
              { method, bits: 4, granularity: 'row', sliceSize: 1024, codebookDtype: 'F32', threads, solverParams: { seed: 0, rate: 4 } },
              new Uint8Array(ec.length / 2),
              new Uint8Array(1024 * 16 * 4),
            ),
          );
          rowsC.push([method, threads || 'all', t.toFixed(2), ((t / 1024) * 1000).toFixed(2)]);
        }
      md.push(
        '### C. ECSQ per row (rate 4 bits, at most 16 levels), 1024 x 1024 F32',
        '',
        mdTable(['method', 'threads', 'seconds', 'ms per row (wall / rows)'], rowsC),
        '',
      );
    }

    // D. growth
    if (ONLY.includes('D')) {
      const total = envInt('BENCH_S15_TOTAL', 1 << 18);
      note(`solvers15 D: growth, ${total} weights per cell`);
      const g = heavyRowsMatrix(total / 1024, 1024, 13);
      const methods: [string, Record<string, number>][] = [
        ['uniform', {}],
        ['kmeans', {}],
        ['kmeans-optimal', {}],
        ['ecsq-uniform', { rate: -1 }],
        ['ecsq', { rate: -1 }],
        ['ecsq-dp', { rate: -1 }],
        ['sparse-l0', { targetValues: -1 }],
        ['normal-float', {}],
      ];
      const lengths = [1024, 2048, 4096, 8192, 16384],
        bitsList = [2, 4, 6, 8];
      const rowsD: (string | number)[][] = [];
      for (const [method, extra] of methods)
        for (const bits of bitsList) {
          const cells: string[] = [];
          for (const len of lengths) {
            const sp: Record<string, number> = { seed: 0 };
            if (extra.rate) sp.rate = Math.min(bits, 8) - 0.5;
            if (extra.targetValues) sp.targetValues = 2 ** bits - 1;
            try {
              const [t] = await timed(() =>
                native.quantize(
                  { data: new Uint8Array(g.buffer), dtype: 'F32', numel: total, name: 'd' },
                  { method, bits, granularity: 'row', sliceSize: len, codebookDtype: 'F32', threads: 1, solverParams: sp },
                  new Uint8Array(total),
                  new Uint8Array((total / len) * 2 ** bits * 4),
                ),
              );
              cells.push(t.toFixed(3));
            } catch (e) {
              cells.push(`n/a (${(e as Error).message.slice(0, 40)})`);
            }
          }
          rowsD.push([method, bits, ...cells]);
        }
      md.push(
        `### D. seconds for ${total} weights on 1 thread, by slice length and bits`,
        '',
        "Same weights in every cell (rows of perrow's matrix); ecsq* at rate = bits - 0.5, sparse-l0 at 2^bits - 1 values. Flat rows = linear cost.",
        '',
        mdTable(['method', 'bits', ...lengths.map(String)], rowsD),
        '',
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return md.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await benchHeader());
  emit(await run());
}
