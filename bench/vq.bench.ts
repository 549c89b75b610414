/**
 * Suite vq: vector quantization (issue 13).
 *
 *   npx tsx bench/vq.bench.ts               (BENCH_QUICK=1 for a short run)
 *   WP_BENCH_PYTHON=/path/to/python         a Python with faiss-cpu and numpy (bench only; see bench/RESULTS.md)
 *
 * 1. Speed: k-means with K = 256 in 8 dimensions on BENCH_VQ_N subvectors (default 2×10⁶: one 4096 × 4096 matrix at
 *    1 bit per weight), BENCH_VQ_ITER Lloyd iterations (default 20), 2 threads: weightpress's kmeansNd against
 *    faiss-cpu's Kmeans (every point used for training, same iterations), in the same run on the same data, and a
 *    memcpy of the same bytes (the machine's limit). SSE is each one's final objective over every point.
 * 2. Quality: on every real checkpoint in ../shared/data, over the tensors quantized by default: weight SQNR against
 *    bits per weight (every stored byte: indices, codebooks, scales, projections) for PQ / LR²VQ and for the scalar
 *    methods at the same or higher rate, fixed-length and entropy-coded (ECSQ).
 * 3. A real task: an MNIST MLP (bench/mnist) quantized at about 1 bit per weight; test accuracy.
 */
import './env.js';

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decode, quantize, type QuantizeOptions } from '../lib/index.js';
import { loadNative } from '../lib/load.js';
import { QUICK, Rng, emit, envInt, isMain, mdTable, note } from './common.js';

export const name = 'vq';
const native = loadNative();

const PYTHON = process.env.WP_BENCH_PYTHON ?? (existsSync('/work/benchenv/bin/python') ? '/work/benchenv/bin/python' : 'python3');
const DATA = join(import.meta.dirname, '..', '..', 'shared', 'data');

async function speed(dir: string): Promise<string> {
  const n = envInt('BENCH_VQ_N', 2_000_000, 200_000);
  const iters = envInt('BENCH_VQ_ITER', 20, 5);
  const d = 8;
  const k = 256;
  const rng = new Rng(7);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const file = join(dir, 'x.f32');
  writeFileSync(file, x);
  const rows: string[][] = [];
  note(`vq speed: n=${n} d=${d} k=${k} iterations=${iters}`);
  let t0 = performance.now();
  const ours = await native.kmeansNd(x, null, n, d, { k, maxIter: iters, seed: 1, threads: 2 });
  const oursS = (performance.now() - t0) / 1000;
  rows.push([`weightpress kmeansNd (k-means++, Eigen GEMM, ${native.vqKernelIsa} kernel)`, oursS.toFixed(2), ours.sse.toExponential(5), String(ours.iterations)]);
  let faiss: { seconds: number; sse: number } | undefined;
  try {
    faiss = JSON.parse(execFileSync(PYTHON, [join(import.meta.dirname, 'vq', 'faiss_kmeans.py'), file, String(n), String(d), String(k), String(iters), '2', '1'], { encoding: 'utf8' }));
    rows.push(['faiss-cpu Kmeans (random init, BLAS)', faiss!.seconds.toFixed(2), faiss!.sse.toExponential(5), String(iters)]);
  } catch (e) {
    rows.push(['faiss-cpu Kmeans', `not run: ${(e as Error).message.split('\n')[0]}`, '', '']);
  }
  const copy = new Float32Array(x.length);
  t0 = performance.now();
  for (let r = 0; r < iters; r++) copy.set(x);
  rows.push([`memcpy of the same ${(x.byteLength / 2 ** 20).toFixed(0)} MiB, ${iters} times`, ((performance.now() - t0) / 1000).toFixed(3), '', '']);
  const ratio = faiss ? ` Time ratio weightpress / faiss: **${(oursS / faiss.seconds).toFixed(2)}×**; SSE ratio ${(ours.sse / faiss.sse).toFixed(4)}.` : '';
  return `### k-means, K = ${k}, d = ${d}, ${n.toLocaleString('en')} points (N(0,1)), ${iters} iterations, 2 threads\n\n${mdTable(['contender', 'seconds', 'SSE', 'iterations'], rows)}\n${ratio}\n`;
}

interface Row {
  label: string;
  bpw: number;
  sqnr: number;
}

/** Bits per weight and SQNR over the quantized tensors of a report. */
function summary(rep: Awaited<ReturnType<typeof quantize>>): { bpw: number; sqnr: number; tensors: number } {
  let n = 0, bytes = 0, sse = 0, sig = 0, q = 0;
  for (const t of rep.tensors) {
    if (t.method === 'keep') continue;
    q++;
    n += t.numel;
    bytes += t.bytesOut;
    const e = t.mse * t.numel;
    sse += e;
    sig += t.sqnrDb === null ? 0 : e * 10 ** (t.sqnrDb / 10);
  }
  return { bpw: (bytes * 8) / n, sqnr: 10 * Math.log10(sig / sse), tensors: q };
}

const CONFIGS: [string, QuantizeOptions][] = [
  ['kmeans-optimal 1 bit, per tensor', { method: 'kmeans-optimal', bits: 1, granularity: 'tensor' }],
  ['kmeans-optimal 1 bit, per row', { method: 'kmeans-optimal', bits: 1, granularity: 'row' }],
  ['kmeans-optimal 2 bits, per tensor', { method: 'kmeans-optimal', bits: 2, granularity: 'tensor' }],
  ['kmeans-optimal 2 bits, per row', { method: 'kmeans-optimal', bits: 2, granularity: 'row' }],
  ['ecsq rate 1, per tensor (entropy-coded)', { method: 'ecsq', rate: 1, granularity: 'tensor' }],
  ['ecsq rate 2, per tensor (entropy-coded)', { method: 'ecsq', rate: 2, granularity: 'tensor' }],
  ['pq M=8 K=256, F16 codebook', { method: 'pq', subvector: 8, centroids: 256, codebookDtype: 'F16' }],
  ['pq M=8 K=256 + row scales', { method: 'pq', subvector: 8, centroids: 256, codebookDtype: 'F16', rowScale: true }],
  ['pq M=4 K=16 + row scales', { method: 'pq', subvector: 4, centroids: 16, codebookDtype: 'F16', rowScale: true }],
  ['pq M=4 K=256 + row scales', { method: 'pq', subvector: 4, centroids: 256, codebookDtype: 'F16', rowScale: true }],
  ['pq M=2 K=16 + row scales', { method: 'pq', subvector: 2, centroids: 16, codebookDtype: 'F16', rowScale: true }],
  ['pq M=8 K=256 + row scales, huffman', { method: 'pq', subvector: 8, centroids: 256, codebookDtype: 'F16', rowScale: true, entropy: 'huffman' }],
  ['pq M=4 K=256 + row scales, huffman', { method: 'pq', subvector: 4, centroids: 256, codebookDtype: 'F16', rowScale: true, entropy: 'huffman' }],
  ['pq M=4 K=256 + row scales, rate 1 (entropy-constrained), huffman', { method: 'pq', subvector: 4, centroids: 256, codebookDtype: 'F16', rowScale: true, entropy: 'huffman', rate: 1 }],
  ['pq M=2 K=256 + row scales, rate 2 (entropy-constrained), huffman', { method: 'pq', subvector: 2, centroids: 256, codebookDtype: 'F16', rowScale: true, entropy: 'huffman', rate: 2 }],
  ['lr2vq M=8 K=256 rank auto + row scales', { method: 'lr2vq', subvector: 8, centroids: 256, codebookDtype: 'F16', rowScale: true }],
  ['lr2vq M=8 K=256 rank 4 + row scales', { method: 'lr2vq', subvector: 8, centroids: 256, rank: 4, codebookDtype: 'F16', rowScale: true }],
];

async function quality(dir: string): Promise<string> {
  const files = existsSync(DATA) ? readdirSync(DATA).filter((f) => f.endsWith('.safetensors')) : [];
  let out = '';
  for (const f of QUICK ? files.slice(0, 1) : files) {
    const rows: Row[] = [];
    let tensors = 0;
    for (const [label, opts] of CONFIGS) {
      note(`vq quality: ${f} ${label}`);
      const rep = await quantize(join(DATA, f), join(dir, 'q.safetensors'), { ...opts, threads: 2 });
      const s = summary(rep);
      tensors = s.tensors;
      rows.push({ label, bpw: s.bpw, sqnr: s.sqnr });
    }
    rm(join(dir, 'q.safetensors'));
    const body = rows.map((r) => [r.label, r.bpw.toFixed(3), r.sqnr.toFixed(2)]);
    out += `#### ${f} (${tensors} tensors quantized by the default rule)\n\n${mdTable(['configuration', 'bits/weight (all overheads)', 'SQNR dB'], body)}\n`;
  }
  return out;
}

function rm(p: string) {
  rmSync(p, { force: true });
}

async function mnist(dir: string): Promise<string> {
  const mlp = await import('./mnist/mlp.mjs' as string);
  note('vq mnist: training the MLP');
  const data = mlp.loadMnist({ seed: 1 });
  const model = mlp.train({ data, seed: 1, epochs: QUICK ? 2 : 8 });
  const base = join(dir, 'mlp.safetensors');
  const cal = join(dir, 'calibration.safetensors');
  mlp.saveSafetensors(base, model);
  mlp.saveGrams(cal, mlp.grams(model, data.trainX));
  const acc = (p: string) => mlp.accuracy(mlp.loadSafetensors(p), data.testX, data.testY) as number;
  const rows: string[][] = [['full precision (F32)', '32', (100 * acc(base)).toFixed(2)]];
  const runs: [string, QuantizeOptions][] = [
    ['kmeans-optimal 1 bit, per tensor', { method: 'kmeans-optimal', bits: 1, granularity: 'tensor' }],
    ['kmeans-optimal 1 bit, per row', { method: 'kmeans-optimal', bits: 1 }],
    ['ecsq rate 1, per tensor', { method: 'ecsq', rate: 1, granularity: 'tensor' }],
    ['pq M=4 K=16 + row scales', { method: 'pq', subvector: 4, centroids: 16, rowScale: true, codebookDtype: 'F16' }],
    ['pq M=8 K=256 + row scales', { method: 'pq', subvector: 8, centroids: 256, rowScale: true, codebookDtype: 'F16' }],
    ['pq M=4 K=256 + row scales, rate 1 (entropy-constrained), huffman', { method: 'pq', subvector: 4, centroids: 256, rowScale: true, codebookDtype: 'F16', entropy: 'huffman', rate: 1 }],
    ['pq M=4 K=16 + row scales + calibration', { method: 'pq', subvector: 4, centroids: 16, rowScale: true, codebookDtype: 'F16', calibration: cal }],
    ['lr2vq M=4 K=16 rank 3 + row scales', { method: 'lr2vq', subvector: 4, centroids: 16, rank: 3, rowScale: true, codebookDtype: 'F16' }],
    ['lr2vq M=4 K=16 rank 3 + row scales + calibration', { method: 'lr2vq', subvector: 4, centroids: 16, rank: 3, rowScale: true, codebookDtype: 'F16', calibration: cal }],
    ['lr2vq M=4 K=16 rank auto + row scales + calibration', { method: 'lr2vq', subvector: 4, centroids: 16, rowScale: true, codebookDtype: 'F16', calibration: cal }],
  ];
  for (const [label, opts] of runs) {
    note(`vq mnist: ${label}`);
    const q = join(dir, 'mq.safetensors');
    const rep = await quantize(base, q, { include: ['*.weight'], minElements: 0, threads: 2, ...opts });
    await decode(q, join(dir, 'md.safetensors'));
    rows.push([label, summary(rep).bpw.toFixed(3), (100 * acc(join(dir, 'md.safetensors'))).toFixed(2)]);
  }
  return `### MNIST MLP 784-256-10 (bench/mnist, seed 1; fc1 and fc2 weights quantized, biases kept)\n\n${mdTable(['configuration', 'bits/weight of the weights', 'test accuracy %'], rows)}\n`;
}

export async function run(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'wp-vq-'));
  try {
    const parts = (process.env.BENCH_VQ_PARTS ?? 'speed,quality,mnist').split(',');
    let out = '## vq: vector quantization (issue 13)\n\n';
    if (parts.includes('speed')) out += (await speed(dir)) + '\n';
    if (parts.includes('quality')) out += '### Weight SQNR against bits per weight on the real checkpoints\n\n' + (await quality(dir)) + '\n';
    if (parts.includes('mnist')) out += (await mnist(dir)) + '\n';
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) emit(await run());
