/**
 * Suite sparse: the sparse least-squares quantizers (docs/SPARSE.md) beside Lloyd k-means and exact k-means,
 * after the comparison of Wang et al. (arXiv 1803.00204): information loss and time against the number of
 * values K, on uniform, Gaussian and real weights. Every method is asked for exactly K values (the sparse
 * methods by their "iterative method": penalty search, then a least-squares refit).
 *
 *   npx tsx bench/sparse.bench.ts            (BENCH_QUICK=1 for a short run)
 *
 * Sizes: BENCH_SPARSE_N synthetic values (default 8192, quick 2048); real tensors as they are (the BF16 one
 * subsampled to BENCH_SPARSE_REAL_N elements, default all). A second table times the three sparse-l0 DP
 * algorithms (solver parameter l0Algorithm: monge | pelt | naive) at a fixed penalty.
 *
 * Loss is measured the way the pipeline assigns: each value goes to its group by the solver's thresholds
 * (midpoints between levels when a method returns none). SQNR = 10 log10(sum x^2 / SSE). "vs exact" is
 * SSE / SSE(kmeans-optimal) - 1, which can never be negative. Times are the median of BENCH_SPARSE_REPS
 * calls (default 3, quick 1) of the addon's quantizer() on the calling thread, given the distinct values and
 * their counts (as the pipeline's summarize step hands them to every solver), so they are solver times.
 */
import './env.js';

import { Checkpoint } from '../lib/index.js';
import { loadNative } from '../lib/load.js';
import { QUICK, Rng, bf16ToF64, emit, envInt, fmtMs, isMain, machineInfo, mdTable, note } from './common.js';

export const name = 'sparse';

const SEED = 20240917;
const LAMBDA2 = 1e-3;
const DATA_DIR = new URL('../../shared/data/', import.meta.url);

const native = loadNative();

interface Dataset {
  label: string;
  x: Float64Array;
}

interface Summary {
  u: Float64Array;
  c: Float64Array;
  sumsq: number;
}

function summarize(x: Float64Array): Summary {
  const s = Float64Array.from(x).sort();
  const u: number[] = [], c: number[] = [];
  let sumsq = 0;
  for (const v of s) {
    sumsq += v * v;
    if (u.length && u[u.length - 1] === v) c[c.length - 1]++;
    else { u.push(v); c.push(1); }
  }
  return { u: Float64Array.from(u), c: Float64Array.from(c), sumsq };
}

/** SSE of assigning each value by the thresholds (value -> t when thr[t-1] < v <= thr[t]). */
function sseOf(s: Summary, levels: Float64Array, thresholdsIn: Float64Array): number {
  const k = levels.length;
  let thr = thresholdsIn;
  if (thr.length === 0 && k > 1) {
    thr = new Float64Array(k - 1);
    for (let t = 0; t + 1 < k; t++) thr[t] = 0.5 * (levels[t] + levels[t + 1]);
  }
  let sse = 0;
  for (let i = 0; i < s.u.length; i++) {
    const v = s.u[i];
    let lo = 0, hi = k - 1;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (thr[m] < v) lo = m + 1;
      else hi = m;
    }
    const e = v - levels[lo];
    sse += s.c[i] * e * e;
  }
  return sse;
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
}

interface Method {
  label: string;
  solver: string;
  params: (K: number) => Record<string, number>;
}

const METHODS: Method[] = [
  { label: 'sparse-l1', solver: 'sparse-l1', params: (K) => ({ k: K, targetValues: K }) },
  { label: `sparse-l1l2 (λ2=${LAMBDA2})`, solver: 'sparse-l1l2', params: (K) => ({ k: K, targetValues: K, lambda2: LAMBDA2 }) },
  { label: 'sparse-l0', solver: 'sparse-l0', params: (K) => ({ k: K, targetValues: K }) },
  { label: 'sparse-cluster', solver: 'sparse-cluster', params: (K) => ({ k: K, targetValues: K }) },
  { label: 'kmeans (Lloyd, seed 1)', solver: 'kmeans', params: (K) => ({ k: K, seed: 1 }) },
  { label: 'kmeans-optimal', solver: 'kmeans-optimal', params: (K) => ({ k: K }) },
];

function timed(solver: string, x: Float64Array, w: Float64Array | null, params: Record<string, number | string>, reps: number) {
  const times: number[] = [];
  let q: { levels: Float64Array; thresholds: Float64Array } | undefined;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    q = native.quantizer(solver, x, w, params);
    times.push(performance.now() - t0);
  }
  return { q: q!, ms: median(times) };
}

function kSweep(m: number): number[] {
  const ks = new Set<number>();
  for (const k of [4, 16, 64, 256, 1024]) if (k < m) ks.add(k);
  for (const f of [8, 4, 2]) {
    const k = Math.floor(m / f);
    if (k >= 2) ks.add(k);
  }
  ks.add(m - Math.max(1, Math.floor(m / 16)));
  return [...ks].sort((a, b) => a - b);
}

function sqnr(s: Summary, sse: number): string {
  return sse > 0 ? (10 * Math.log10(s.sumsq / sse)).toFixed(2) : 'inf';
}

function gap(sse: number, opt: number): string {
  if (!(opt > 0)) return sse > 0 ? '+inf' : '0';
  const d = sse / opt - 1;
  if (Math.abs(d) < 5e-7) return '0';
  return d >= 10 ? `+${d.toFixed(0)}x` : `+${(d * 100).toPrecision(3)}%`;
}

function datasetTables(ds: Dataset, reps: number): string {
  const s = summarize(ds.x);
  const m = s.u.length;
  note(`sparse: ${ds.label}: n = ${ds.x.length}, ${m} distinct values`);
  const ks = kSweep(m);
  const quality: (string | number)[][] = [];
  const timing: (string | number)[][] = [];
  for (const K of ks) {
    const res = METHODS.map((meth) => {
      const { q, ms } = timed(meth.solver, s.u, s.c, meth.params(K), reps);
      return { sse: sseOf(s, q.levels, q.thresholds), ms, levels: q.levels.length };
    });
    const opt = res[res.length - 1].sse;
    const mark = (r: { levels: number }) => (r.levels < K ? ` [${r.levels} values]` : '');
    quality.push([
      K,
      `${(K / m).toFixed(3)}`,
      (opt / ds.x.length).toExponential(3),
      ...res.map((r, i) => (i === res.length - 1 ? sqnr(s, r.sse) : `${sqnr(s, r.sse)} (${gap(r.sse, opt)})${mark(r)}`)),
    ]);
    timing.push([K, ...res.map((r) => fmtMs(r.ms))]);
    note(`  K = ${K}: ${res.map((r, i) => `${METHODS[i].solver} ${fmtMs(r.ms)}`).join(', ')}`);
  }
  return [
    `### ${ds.label}: n = ${ds.x.length.toLocaleString('en-US')}, m = ${m.toLocaleString('en-US')} distinct values`,
    '',
    'SQNR in dB (SSE over the exact optimum in parentheses; [n values] when a method returned fewer than K):',
    '',
    mdTable(['K', 'K / m', 'exact MSE', ...METHODS.map((x) => x.label)], quality),
    '',
    'Time per call (median):',
    '',
    mdTable(['K', ...METHODS.map((x) => x.label)], timing),
    '',
  ].join('\n');
}

function l0Algorithms(reps: number): string {
  const sizes = QUICK ? [4096, 16384] : [4096, 16384, 65536];
  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const r = new Rng(SEED, n);
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.fround(r.normal());
    const s = summarize(x);
    // penalties giving few and many levels, relative to the total SSE about the mean
    let mu = 0;
    for (const v of x) mu += v;
    mu /= n;
    let tot = 0;
    for (const v of x) tot += (v - mu) ** 2;
    for (const rel of [1e-3, 1e-6]) {
      const lambda = tot * rel;
      const row: (string | number)[] = [n.toLocaleString('en-US'), s.u.length.toLocaleString('en-US'), `${rel} x SSE₁`];
      let levels = 0;
      for (const algo of ['monge', 'pelt', 'naive']) {
        if (algo === 'naive' && s.u.length > 20000) { row.push('-'); continue; }
        const { q, ms } = timed('sparse-l0', s.u, s.c, { k: 1 << 30, lambda, l0Algorithm: algo }, algo === 'monge' ? reps : 1);
        levels = q.levels.length;
        row.push(fmtMs(ms));
      }
      row.splice(3, 0, levels);
      rows.push(row);
      note(`  l0 algorithms n = ${n}, lambda = ${rel} x SSE: ${row.join(' | ')}`);
    }
  }
  return [
    '### sparse-l0: the DP algorithms at a fixed penalty (Gaussian F32 values)',
    '',
    mdTable(['n', 'm', 'λ', 'levels', 'monge (queue + binary search)', 'PELT', 'naive O(m²)'], rows),
    '',
  ].join('\n');
}

async function realDatasets(): Promise<Dataset[]> {
  const out: Dataset[] = [];
  const picks: [string, string, string][] = [
    ['mobileface.f32.safetensors', 'stage4_unit1_conv0_0_weight', 'real F32: mobileface stage4_unit1_conv0_0_weight'],
    [
      'movenet-lightning.bf16.safetensors',
      'StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/model/block_16_project/Conv2D_weights',
      'real BF16: movenet block_16_project',
    ],
  ];
  const limit = envInt('BENCH_SPARSE_REAL_N', 0, 65536);
  for (const [file, tensor, label] of picks) {
    const ck = await Checkpoint.open(new URL(file, DATA_DIR).pathname);
    try {
      const info = ck.info(tensor);
      const bytes = ck.bytes(tensor);
      let x: Float64Array;
      if (info.dtype === 'F32') x = Float64Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
      else if (info.dtype === 'BF16') x = bf16ToF64(new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
      else throw new Error(`unexpected dtype ${info.dtype}`);
      if (limit > 0 && x.length > limit) x = x.slice(0, limit);
      out.push({ label, x });
    } finally {
      ck.close();
    }
  }
  return out;
}

export async function run(): Promise<string> {
  const n = envInt('BENCH_SPARSE_N', 8192, 2048);
  const reps = envInt('BENCH_SPARSE_REPS', 3, 1);
  const r = new Rng(SEED);
  const uniform = new Float64Array(n);
  const gauss = new Float64Array(n);
  for (let i = 0; i < n; i++) uniform[i] = Math.fround(r.uniform() * 2 - 1);
  for (let i = 0; i < n; i++) gauss[i] = Math.fround(r.normal());
  const datasets: Dataset[] = [
    { label: 'uniform F32 U(-1, 1)', x: uniform },
    { label: 'Gaussian F32 N(0, 1)', x: gauss },
    ...(await realDatasets()),
  ];
  const parts = [
    '## sparse: sparse least-squares quantization vs k-means (information loss and time against K)',
    '',
    machineInfo(),
    '',
    `Reproduce: \`${QUICK ? 'BENCH_QUICK=1 ' : ''}npx tsx bench/sparse.bench.ts\`. Every method is asked for exactly K values; ` +
      `sparse-l1/l1l2/l0 search their penalty (the "iterative method") and refit the levels by least squares; ` +
      `sparse-l1l2 uses λ2 = ${LAMBDA2}. m = number of distinct values; every solver gets the m distinct values with their counts ` +
      '(what the pipeline hands it), so times are solver times on one thread. The machine is shared: compare within a table.',
    '',
  ];
  for (const ds of datasets) parts.push(datasetTables(ds, reps));
  parts.push(l0Algorithms(reps));
  return parts.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await run());
}
