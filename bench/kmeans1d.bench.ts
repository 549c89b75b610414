/**
 * Suite kmeans1d: 1-D k-means, k = 16, on n F32-representable standard Gaussian values (seeded).
 *
 *   weightpress solve('kmeans-optimal', x, {k:16})        exact DP (native, off the event loop)
 *   weightpress solve('kmeans', x, {k:16, seed:1})        Lloyd + k-means++ (native)
 *   simple-statistics ckmeans(x, 16)                      exact DP, divide and conquer, O(k n log n) (JS)
 *   ml-kmeans kmeans([[x]...], 16, {seed:1})              Lloyd + k-means++, n-D (JS)
 *
 * Two tables: n = BENCH_KMEANS_N (default 10^6) and n = BENCH_KMEANS_N_SMALL (default 10^5). Every method that
 * runs at a size is timed at that size in the same run, so speed-ups are like for like. ml-kmeans is left out
 * at the large size unless BENCH_KMEANS_ML_LARGE=1 (about 10x its 10^5 time per run). Input conversion
 * (Float64Array -> number[] / number[][]) is done once, outside the timings.
 * SSE is each method's levels scored the same way: the sum of squared distances to the nearest level.
 */
import './env.js';

import { kmeans } from 'ml-kmeans';
import { ckmeans } from 'simple-statistics';

import { solve } from '../lib/index.js';
import { QUICK, Rng, emit, envInt, fmtCount, fmtMs, fmtX, isMain, benchHeader, mdTable, note, sseToNearest, timeTasks, type TaskSpec } from './common.js';

const K = 16;
const SEED = 20240601;

export const name = 'kmeans1d';

/** (a / b - 1) in percent; differences below 1e-9 relative are rounding and print as 0. */
function relDiff(a: number, b: number): string {
  if (!(b > 0)) return '-';
  const d = a / b - 1;
  if (Math.abs(d) < 1e-9) return d === 0 ? '0' : `0 (${d.toExponential(0)})`;
  return `${d > 0 ? '+' : ''}${(d * 100).toPrecision(3)}%`;
}

function gaussianF32(n: number, seed: number): Float64Array {
  const r = new Rng(seed);
  const x = new Float64Array(n);
  for (let i = 0; i < n; ++i) x[i] = Math.fround(r.normal());
  return x;
}

interface Method {
  label: string;
  impl: string;
  /** Runs once and returns the levels. */
  levels: () => Promise<ArrayLike<number>>;
  iterations: number;
  warmup: number;
  exact: boolean;
  extra?: () => string;
}

async function atSize(n: number, withMl: boolean): Promise<{ md: string; failures: string[] }> {
  note(`kmeans1d: n = ${n}`);
  const x = gaussianF32(n, SEED);
  const arr = Array.from(x);
  const methods: Method[] = [];
  const slow = n > 300_000;
  methods.push({
    label: 'weightpress kmeans-optimal', impl: 'native exact DP', exact: true,
    levels: () => solve('kmeans-optimal', x, { k: K }), iterations: slow ? 5 : 10, warmup: 1,
  });
  methods.push({
    label: 'weightpress kmeans (Lloyd, seed 1)', impl: 'native Lloyd + k-means++', exact: false,
    levels: () => solve('kmeans', x, { k: K, seed: 1 }), iterations: slow ? 5 : 10, warmup: 1,
  });
  methods.push({
    label: 'simple-statistics ckmeans', impl: 'JS DP, divide and conquer', exact: true,
    levels: async () => ckmeans(arr, K).map((c) => c.reduce((a, b) => a + b, 0) / c.length),
    iterations: slow ? 2 : 3, warmup: slow ? 0 : 1,
  });
  if (withMl) {
    const points = arr.map((v) => [v]);
    let iters = 0, converged = false;
    methods.push({
      label: 'ml-kmeans kmeans (seed 1)', impl: 'JS Lloyd + k-means++', exact: false,
      levels: async () => {
        const r = kmeans(points, K, { seed: 1 });
        iters = r.iterations;
        converged = r.converged;
        return r.centroids.map((c) => c[0]);
      },
      iterations: slow ? 1 : 3, warmup: slow ? 0 : 1,
      extra: () => `${iters} iterations${converged ? '' : ', not converged'}`,
    });
  }
  const levels = new Map<string, ArrayLike<number>>();
  const tasks: TaskSpec[] = methods.map((m) => ({
    name: m.label,
    iterations: m.iterations,
    warmup: m.warmup,
    fn: async () => {
      levels.set(m.label, await m.levels());
    },
  }));
  const t = await timeTasks(`kmeans1d n=${n}`, tasks, { iterations: 3, warmup: 1 });
  const sse = new Map(methods.map((m) => [m.label, sseToNearest(x, levels.get(m.label)!)]));
  const ck = t.get('simple-statistics ckmeans')!.mean;
  const opt = sse.get('weightpress kmeans-optimal')!;
  const best = Math.min(...sse.values());
  const failures: string[] = [];
  const rows = methods.map((m) => {
    const tm = t.get(m.label)!;
    const s = sse.get(m.label)!;
    const lv = levels.get(m.label)!;
    return [
      m.label,
      m.impl,
      fmtMs(tm.mean),
      fmtMs(tm.min),
      tm.samples,
      fmtX(ck / tm.mean),
      s.toPrecision(10),
      relDiff(s, opt),
      `${lv.length}${m.extra ? ` (${m.extra()})` : ''}`,
    ];
  });
  // Exactness: kmeans-optimal's SSE must be <= every other method's (up to rounding in the last digits).
  const tol = 1e-10 * Math.max(1, best);
  for (const m of methods) if (opt > sse.get(m.label)! + tol) failures.push(`n=${n}: kmeans-optimal SSE ${opt} > ${m.label} SSE ${sse.get(m.label)}`);
  const speedup = ck / t.get('weightpress kmeans-optimal')!.mean;
  if (speedup < 100) failures.push(`n=${n}: kmeans-optimal is ${speedup.toFixed(1)}x faster than ckmeans (target >= 100x)`);
  const md = [
    `### n = ${fmtCount(n)} (${n.toLocaleString('en-US')} values, k = ${K})`,
    '',
    mdTable(
      ['method', 'implementation', 'mean / run', 'min / run', 'runs', 'speed-up vs ckmeans', 'SSE (to nearest level)', 'SSE vs kmeans-optimal', 'levels'],
      rows,
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    '',
    `- kmeans-optimal exact (SSE <= every other method's): **${failures.some((f) => f.includes('SSE')) ? 'NO' : 'yes'}**`,
    `- kmeans-optimal vs ckmeans: **${fmtX(speedup)}** faster (target >= 100x: ${speedup >= 100 ? 'met' : '**not met**'})`,
    '',
  ].join('\n');
  return { md, failures };
}

export async function run(): Promise<string> {
  const nLarge = envInt('BENCH_KMEANS_N', 1_000_000, 100_000);
  const nSmall = envInt('BENCH_KMEANS_N_SMALL', 100_000, 20_000);
  const mlLarge = process.env.BENCH_KMEANS_ML_LARGE === '1';
  const parts = [
    `## kmeans1d: 1-D k-means, k = 16, F32 Gaussian values (seed ${SEED})`,
    '',
    `Reproduce: \`${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench -- kmeans1d\``,
    '',
    'Times are wall-clock per call, inputs prepared once outside the timings (weightpress takes the Float64Array; ' +
      'the JS packages take number[] / number[][]). weightpress solve() includes its own sort of the values.',
    '',
  ];
  const failures: string[] = [];
  for (const [n, ml] of [[nLarge, mlLarge], [nSmall, true]] as const) {
    if (n <= 0) continue;
    const r = await atSize(n, ml || n <= 200_000);
    parts.push(r.md);
    failures.push(...r.failures);
  }
  if (!mlLarge && nLarge > 200_000) parts.push(`ml-kmeans is timed at n = ${fmtCount(nSmall)} only (BENCH_KMEANS_ML_LARGE=1 adds it at n = ${fmtCount(nLarge)}).`, '');
  if (failures.length) parts.push('**Targets missed:**', '', ...failures.map((f) => `- ${f}`), '');
  return parts.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await benchHeader());
  emit(await run());
}
