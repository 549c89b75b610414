/**
 * Suite perrow: per-row 4-bit quantization of one ROWS x COLS matrix (default 4096 x 4096) through the native
 * addon's quantize() directly (no file I/O): kmeans-optimal, kmeans (Lloyd) and uniform (MSE step), on F32
 * and on the same matrix rounded to BF16, with threads = 1 and threads = all.
 *
 * The matrix: standard Gaussian rows, a quarter of them Student-t (3 dof) instead, every row multiplied by its
 * own log-normal scale (seeded). Sizes: BENCH_PERROW_ROWS, BENCH_PERROW_COLS.
 */
import './env.js';

import { availableParallelism } from 'node:os';

import { loadNative } from '../lib/load.js';
import type { NativeQuantizeStats } from '../lib/native.js';
import { QUICK, Rng, emit, envInt, f32ToBf16, isMain, benchHeader, mdTable, note, timeTasks, type TaskSpec } from './common.js';

export const name = 'perrow';

const SEED = 7;
const BITS = 4;
const TARGET_S = 1;
const FULL = 4096 * 4096;

export function heavyRowsMatrix(rows: number, cols: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < rows; ++i) {
    const scale = 0.02 * Math.exp(0.7 * r.normal());
    const heavy = r.uniform() < 0.25;
    const o = i * cols;
    if (heavy) for (let j = 0; j < cols; ++j) m[o + j] = scale * r.studentT(3);
    else for (let j = 0; j < cols; ++j) m[o + j] = scale * r.normal();
  }
  return m;
}

interface Case {
  dtype: 'F32' | 'BF16';
  method: 'kmeans-optimal' | 'kmeans' | 'uniform';
  threads: number;
}

export async function run(): Promise<string> {
  const rows = envInt('BENCH_PERROW_ROWS', 4096, 512);
  const cols = envInt('BENCH_PERROW_COLS', 4096, 4096);
  const numel = rows * cols;
  const all = availableParallelism();
  const native = loadNative();
  note(`perrow: ${rows} x ${cols}`);
  const f32 = heavyRowsMatrix(rows, cols, SEED);
  const bf16 = new Uint16Array(numel);
  f32ToBf16(new Uint32Array(f32.buffer), numel, bf16);
  const data = { F32: new Uint8Array(f32.buffer), BF16: new Uint8Array(bf16.buffer) };
  const codes = new Uint8Array(Math.ceil((numel * BITS) / 8));
  const codebook = new Uint8Array(rows * 2 ** BITS * 4);

  const cases: Case[] = [];
  for (const dtype of ['F32', 'BF16'] as const)
    for (const method of ['kmeans-optimal', 'kmeans', 'uniform'] as const)
      for (const threads of [1, 0]) cases.push({ dtype, method, threads });
  const label = (c: Case) => `${c.dtype} ${c.method} threads=${c.threads || 'all'}`;
  const stats = new Map<string, NativeQuantizeStats>();
  const tasks: TaskSpec[] = cases.map((c) => ({
    name: label(c),
    iterations: 'auto',
    budgetMs: QUICK ? 2000 : 6000,
    maxIterations: 5,
    fn: async () => {
      stats.set(label(c), await native.quantize(
        { data: data[c.dtype], dtype: c.dtype, numel, name: 'bench' },
        { method: c.method, bits: BITS, granularity: 'row', sliceSize: cols, codebookDtype: 'F32', threads: c.threads, solverParams: { seed: 0 } },
        codes,
        codebook,
      ));
    },
  }));
  const t = await timeTasks(`perrow ${rows}x${cols}`, tasks, { iterations: 3, warmup: 1 });

  const failures: string[] = [];
  const tableRows = cases.map((c) => {
    const tm = t.get(label(c))!;
    const s = stats.get(label(c))!;
    const one = t.get(label({ ...c, threads: 1 }))!;
    const sqnr = s.sse > 0 ? (10 * Math.log10(s.signal / s.sse)).toFixed(2) : 'inf';
    // At reduced sizes the target is judged on the time scaled linearly to 4096 x 4096 (rows are independent).
    const projected = (tm.mean / 1000) * (FULL / numel);
    const target = c.method === 'kmeans-optimal' && c.threads === 0 ? (projected < TARGET_S ? 'met' : '**not met**') : '';
    return [
      c.dtype,
      c.method,
      c.threads === 0 ? `all (${all})` : String(c.threads),
      (tm.mean / 1000).toFixed(3),
      (tm.min / 1000).toFixed(3),
      tm.samples,
      (numel / (tm.mean / 1000) / 1e6).toFixed(1),
      c.threads === 0 ? `${(one.mean / tm.mean).toFixed(2)}x` : '',
      ...(numel === FULL ? [] : [projected.toFixed(2)]),
      sqnr,
      target,
    ];
  });
  for (const dtype of ['F32', 'BF16'] as const) {
    const opt = stats.get(label({ dtype, method: 'kmeans-optimal', threads: 0 }))!;
    for (const method of ['kmeans', 'uniform'] as const) {
      const other = stats.get(label({ dtype, method, threads: 0 }))!;
      if (opt.sse > other.sse * (1 + 1e-9)) failures.push(`${dtype}: kmeans-optimal SSE ${opt.sse} > ${method} SSE ${other.sse}`);
    }
    const tm = t.get(label({ dtype, method: 'kmeans-optimal', threads: 0 }))!.mean / 1000;
    const proj = tm * (FULL / numel);
    if (proj >= TARGET_S)
      failures.push(`${dtype}: kmeans-optimal per row ${numel === FULL ? 'took' : 'projects to'} ${proj.toFixed(2)} s for 4096 x 4096 with all ${all} threads (target < ${TARGET_S} s)`);
  }
  const md = [
    `## perrow: per-row ${BITS}-bit quantization of a ${rows} x ${cols} matrix`,
    '',
    `Reproduce: \`${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench -- perrow\``,
    '',
    `Native \`quantize()\` from \`loadNative()\` on an in-memory tensor (summarize + solve each row + assign + pack; ` +
      `no file I/O), codebook F32, slice = one row of ${cols}. Data: Gaussian rows, 1/4 of them Student-t(3), ` +
      `log-normal row scales, seed ${SEED}; BF16 = the same matrix rounded to nearest even. ` +
      `Target: kmeans-optimal per row in under ${TARGET_S} s${rows === 4096 && cols === 4096 ? '' : ' (for 4096 x 4096; this run is smaller)'}.`,
    '',
    mdTable(
      ['dtype', 'method', 'threads', 'mean s', 'min s', 'runs', 'M weights/s', 'speed-up vs 1 thread',
        ...(numel === FULL ? [] : ['projected s at 4096 x 4096']), 'SQNR dB', `< ${TARGET_S} s target`],
      tableRows,
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', ...(numel === FULL ? [] : ['r' as const]), 'r', 'l'],
    ),
    '',
    `- kmeans-optimal SSE <= kmeans and uniform SSE (per dtype): **${failures.some((f) => f.includes('SSE')) ? 'NO' : 'yes'}**`,
    '',
  ];
  if (failures.length) md.push('**Targets missed:**', '', ...failures.map((f) => `- ${f}`), '');
  return md.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await benchHeader());
  emit(await run());
}
