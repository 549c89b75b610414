// Vector quantization (lib/codecs/vector.ts, native/core/vq): k-means in d dimensions against brute force and the
// Gaussian figures of METHODS.md §3; PQ and LR²VQ against scalar k-means and a low-rank bound; the layer-output
// objective against the weight-only result; option and file checks. Reference decoding is in codecs.test.ts.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, quantize, type QuantizeOptions } from '../lib/index.js';
import { DIGEST_KEY, schemeDigest } from '../lib/format.js';
import { loadNative } from '../lib/load.js';
import { decodeBytes, encode, gaussian, mulberry32, readSafetensors, tempDir, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const native = loadNative();

/** Σ w (x − c)² of every point to its nearest centroid by brute force, and of a given assignment. */
function bruteForce(x: Float32Array, w: Float32Array | null, d: number, c: Float32Array, assign: Uint32Array) {
  const n = x.length / d;
  const k = c.length / d;
  let best = 0;
  let given = 0;
  const dist = (t: number, j: number) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += (w ? w[t * d + i] : 1) * (x[t * d + i] - c[j * d + i]) ** 2;
    return s;
  };
  for (let t = 0; t < n; t++) {
    let b = Infinity;
    for (let j = 0; j < k; j++) b = Math.min(b, dist(t, j));
    best += b;
    given += dist(t, assign[t]);
  }
  return { best, given };
}

const signal = (x: ArrayLike<number>) => Array.from(x).reduce((a, v) => a + v * v, 0);
const db = (s: number, e: number) => 10 * Math.log10(s / e);

describe('k-means in d dimensions', () => {
  it('assigns every point to its nearest centroid at every iteration, and never increases the objective (weighted too)', async () => {
    const r = mulberry32(3);
    for (const d of [1, 3, 8]) {
      const n = 300;
      const x = Float32Array.from(gaussian(n * d, d), (v) => v * (1 + r()));
      const w = Float32Array.from({ length: n * d }, () => 0.1 + r());
      for (const weights of [null, w]) {
        let prev = Infinity;
        for (const maxIter of [0, 1, 2, 5, 20]) {
          const k = await native.kmeansNd(x, weights, n, d, { k: 7, maxIter, seed: 5 });
          const b = bruteForce(x, weights, d, k.centroids, k.assign);
          expect(b.given).toBeLessThanOrEqual(b.best * (1 + 1e-6));
          expect(k.sse).toBeCloseTo(b.given, 6);
          for (let i = 1; i < k.history.length; i++) expect(k.history[i]).toBeLessThanOrEqual(k.history[i - 1] * (1 + 1e-12));
          // Each run is the same run stopped later: more iterations never end higher.
          expect(k.sse).toBeLessThanOrEqual(prev * (1 + 1e-9));
          prev = k.sse;
        }
      }
    }
  });

  it('reaches the Gaussian figures of METHODS.md §3 (2×10⁵ N(0,1) samples)', async () => {
    const x = Float32Array.from(gaussian(200000, 1));
    const s = signal(x);
    // 2 bits per weight: M = 2, K = 16 (scalar Lloyd–Max 9.30 dB); 1 bit per weight: M = 8, K = 256 (4.40 dB).
    const a = await native.kmeansNd(x, null, x.length / 2, 2, { k: 16, maxIter: 40, seed: 1 });
    expect(db(s, a.sse)).toBeGreaterThanOrEqual(9.5);
    const b = await native.kmeansNd(x, null, x.length / 8, 8, { k: 256, maxIter: 40, seed: 1 });
    expect(db(s, b.sse)).toBeGreaterThanOrEqual(5.1);
  });

  it('re-seeds empty clusters: every cluster keeps a point when there are enough distinct points', async () => {
    // 990 points at the origin and 10 far apart: k-means++ may draw several seeds at the origin.
    const d = 2;
    const x = new Float32Array(1000 * d);
    for (let t = 0; t < 10; t++) x[(990 + t) * d] = 100 + 10 * t;
    for (const seed of [1, 2, 3, 4]) {
      const k = await native.kmeansNd(x, null, 1000, d, { k: 11, maxIter: 10, seed });
      const count = new Array(11).fill(0);
      for (const a of k.assign) count[a]++;
      expect(count.every((c) => c > 0)).toBe(true);
      expect(k.sse).toBeCloseTo(0, 6);
    }
  });

  it('gives the same result for any thread count', async () => {
    const x = Float32Array.from(gaussian(50000 * 4, 2));
    const one = await native.kmeansNd(x, null, 50000, 4, { k: 64, maxIter: 8, seed: 3, threads: 1 });
    const two = await native.kmeansNd(x, null, 50000, 4, { k: 64, maxIter: 8, seed: 3, threads: 2 });
    expect(Buffer.from(two.centroids.buffer).equals(Buffer.from(one.centroids.buffer))).toBe(true);
    expect(Buffer.from(two.assign.buffer).equals(Buffer.from(one.assign.buffer))).toBe(true);
  });
});

// A weight matrix with correlated neighbours (so that subvectors have structure and low-rank directions).
const ROWS = 48;
const COLS = 96;
function matrix(seed: number): Float64Array {
  const g = gaussian(ROWS * COLS, seed);
  const out = new Float64Array(ROWS * COLS);
  for (let r = 0; r < ROWS; r++)
    for (let c = 0; c < COLS; c++) out[r * COLS + c] = 0.05 * (g[r * COLS + c] + 0.8 * (c ? g[r * COLS + c - 1] : 0) + 0.5 * (c > 1 ? g[r * COLS + c - 2] : 0));
  return out;
}
const W = matrix(11);
const input = join(tmp.dir, 'w.safetensors');
writeSafetensors(input, [{ name: 'w', dtype: 'F32', shape: [ROWS, COLS], data: encode(W, 'F32') }]);

async function mseOf(opts: QuantizeOptions, file = input, name = 'w'): Promise<{ mse: number; rep: Awaited<ReturnType<typeof quantize>> }> {
  const out = join(tmp.dir, `q-${Math.random().toString(36).slice(2)}.safetensors`);
  const rep = await quantize(file, out, { include: [name], ...opts });
  return { mse: rep.tensors.find((t) => t.name === name)!.mse, rep };
}

/** Eigenvalues of a symmetric matrix (cyclic Jacobi), for the low-rank bound. */
function eigenvalues(a: number[][]): number[] {
  const n = a.length;
  const m = a.map((r) => [...r]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p][q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(m[p][q]) < 1e-300) continue;
        const theta = (m[q][q] - m[p][p]) / (2 * m[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k][p], akq = m[k][q];
          m[k][p] = c * akp - s * akq;
          m[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p][k], aqk = m[q][k];
          m[p][k] = c * apk - s * aqk;
          m[q][k] = s * apk + c * aqk;
        }
      }
  }
  return m.map((r, i) => r[i]).sort((x, y) => y - x);
}

describe('product quantization and LR²VQ', () => {
  it('PQ stores no projection and reports no rank (those are LR²VQ’s)', async () => {
    const out = join(tmp.dir, 'plain-pq.safetensors');
    const rep = await quantize(input, out, { method: 'pq', subvector: 4, centroids: 16, include: ['w'] });
    const s = JSON.parse(readSafetensors(out).metadata.weightpress).tensors.w;
    expect(s.vector.rank).toBe(4);
    expect(s.vector.projection).toBeUndefined();
    expect(Object.keys(readSafetensors(out).header).some((k) => k.includes('projection'))).toBe(false);
    expect(rep.tensors[0].rank).toBeUndefined();
  });

  it('PQ with M = 1 is scalar k-means: between the exact optimum and Lloyd of the scalar codec', async () => {
    const pq = await mseOf({ method: 'pq', subvector: 1, centroids: 8, iterations: 200 });
    const exact = await mseOf({ method: 'kmeans-optimal', bits: 3, granularity: 'tensor' });
    const lloyd = await mseOf({ method: 'kmeans', bits: 3, granularity: 'tensor' });
    expect(pq.mse).toBeGreaterThanOrEqual(exact.mse * (1 - 1e-6));
    expect(pq.mse).toBeLessThanOrEqual(Math.max(lloyd.mse, exact.mse) * 1.01);
  });

  it('LR²VQ with rank M equals PQ (a rotation), and with rank < M is no better than the low-rank bound', async () => {
    const pq = await mseOf({ method: 'pq', subvector: 4, centroids: 16 });
    const full = await mseOf({ method: 'lr2vq', subvector: 4, centroids: 16, rank: 4 });
    expect(Math.abs(full.mse - pq.mse) / pq.mse).toBeLessThan(0.02);
    // Low-rank error: the energy of the subvectors outside their top-dk principal directions.
    const M = 4;
    const g = Array.from({ length: M }, () => new Array(M).fill(0));
    const x = decodeBytes(encode(W, 'F32'), 'F32');
    for (let t = 0; t < x.length / M; t++) for (let i = 0; i < M; i++) for (let j = 0; j < M; j++) g[i][j] += x[t * M + i] * x[t * M + j];
    const lambda = eigenvalues(g);
    for (const rank of [1, 2, 3]) {
      const lr = await mseOf({ method: 'lr2vq', subvector: M, centroids: 16, rank });
      const bound = lambda.slice(rank).reduce((a, v) => a + v, 0) / x.length;
      expect(lr.mse).toBeGreaterThanOrEqual(bound * (1 - 1e-3));
    }
  });

  it('rank auto reports both error terms per candidate and lands within ±1 of the best rank of a sweep on real tensors', async () => {
    const file = join(__dirname, '..', '..', 'shared', 'data', 'emotion.f16.safetensors');
    const { Checkpoint } = await import('../lib/checkpoint.js');
    const ck = await Checkpoint.open(file);
    const names = ck.tensors().filter((t) => t.numel >= 8192 && t.shape.length >= 2).slice(0, 3).map((t) => t.name);
    ck.close();
    expect(names.length).toBe(3);
    for (const name of names) {
      const opts = { subvector: 8, centroids: 64, codebookDtype: 'F32' as const };
      const auto = await mseOf({ method: 'lr2vq', ...opts }, file, name);
      const t = auto.rep.tensors.find((q) => q.name === name)!;
      expect(t.rank?.estimate?.length).toBe(8);
      for (const e of t.rank!.estimate!) expect(e.lowRank >= 0 && e.clustering >= 0).toBe(true);
      const sweep: number[] = [];
      for (let rank = 1; rank <= 8; rank++) sweep.push((await mseOf({ method: 'lr2vq', ...opts, rank }, file, name)).mse);
      const best = sweep.indexOf(Math.min(...sweep)) + 1;
      expect(Math.abs(t.rank!.chosen - best), `${name}: auto ${t.rank!.chosen}, sweep best ${best} (${sweep.map((v) => v.toExponential(3))})`).toBeLessThanOrEqual(1);
    }
  });

  it('with a calibration file, minimises the layer-output error: below the weight-only result, never above its start', async () => {
    // A layer y = W x whose inputs have very unequal, correlated features: H = Σ x xᵀ.
    const r = mulberry32(21);
    const samples = 400;
    const X = Array.from({ length: samples }, () => {
      const base = gaussian(COLS, Math.floor(r() * 1e9));
      return Array.from(base, (v, i) => v * (i < 8 ? 6 : 0.3) + (i ? 0.5 * base[i - 1] : 0));
    });
    const H = new Float64Array(COLS * COLS);
    for (const x of X) for (let i = 0; i < COLS; i++) for (let j = 0; j < COLS; j++) H[i * COLS + j] += x[i] * x[j];
    const cal = join(tmp.dir, 'cal.safetensors');
    writeSafetensors(cal, [{ name: 'w', dtype: 'F64', shape: [COLS, COLS], data: encode(H, 'F64') }]);
    const outErr = async (file: string) => {
      const out = file + '.dense';
      await decode(file, out, { dtype: 'F32' });
      const d = decodeBytes(readSafetensors(out).tensor('w'), 'F32');
      const w = decodeBytes(encode(W, 'F32'), 'F32');
      let e = 0;
      for (let row = 0; row < ROWS; row++)
        for (let i = 0; i < COLS; i++) {
          const ei = w[row * COLS + i] - d[row * COLS + i];
          if (!ei) continue;
          for (let j = 0; j < COLS; j++) e += ei * H[i * COLS + j] * (w[row * COLS + j] - d[row * COLS + j]);
        }
      return e;
    };
    for (const method of ['pq', 'lr2vq'] as const) {
      const opts: QuantizeOptions = { method, subvector: 4, centroids: 16, include: ['w'], codebookDtype: 'F32', ...(method === 'lr2vq' ? { rank: 3 } : {}) };
      const plain = join(tmp.dir, `plain-${method}.safetensors`);
      const calib = join(tmp.dir, `calib-${method}.safetensors`);
      await quantize(input, plain, opts);
      const rep = await quantize(input, calib, { ...opts, calibration: cal });
      const m = rep.tensors[0].layerOutputError!;
      expect(m.final).toBeLessThanOrEqual(m.initial);
      const ep = await outErr(plain);
      const ec = await outErr(calib);
      expect(ec, method).toBeLessThan(ep);
      // The stored figure is the decoded tensor's layer-output error.
      expect(Math.abs(ec - m.final) / ec).toBeLessThan(1e-3);
    }
  });

  it('with a rate, entropy-constrained VQ stays within it and between ECSQ-class quality and Shannon’s D(R) on Gaussian data', async () => {
    const g = join(tmp.dir, 'gauss.safetensors');
    writeSafetensors(g, [{ name: 'g', dtype: 'F32', shape: [512, 256], data: encode(gaussian(512 * 256, 31), 'F32') }]);
    for (const rate of [0.75, 1]) {
      const { rep } = await mseOf({ method: 'pq', subvector: 4, centroids: 256, entropy: 'huffman', rate, codebookDtype: 'F16' }, g, 'g');
      const t = rep.tensors[0];
      // Entropy and code length are per weight; the stored code length is within Huffman's redundancy of the rate.
      expect(t.entropy!).toBeLessThanOrEqual(rate + 1e-9);
      expect(t.avgCodeLength!).toBeLessThanOrEqual(rate + 0.05);
      expect(t.sqnrDb!).toBeLessThanOrEqual(6.0206 * rate + 0.05);
      // Gish–Pierce: uniform ECSQ sits 1.53 dB below D(R) at high rate; 4-dimensional ECVQ must not be worse than that.
      expect(t.sqnrDb!).toBeGreaterThanOrEqual(6.0206 * rate - 1.53);
      // And better than fixed-length PQ at the same index rate (K = 2^(4R) codewords).
      const fixed = await mseOf({ method: 'pq', subvector: 4, centroids: Math.round(2 ** (4 * rate)), codebookDtype: 'F16' }, g, 'g');
      expect(t.mse).toBeLessThan(fixed.mse);
    }
  });

  it('falls back to keeping a tensor that vector codes would not shrink, with a warning', async () => {
    const small = join(tmp.dir, 'small.safetensors');
    writeSafetensors(small, [{ name: 's', dtype: 'F16', shape: [4, 16], data: encode(gaussian(64, 2), 'F16') }]);
    const { rep } = await mseOf({ method: 'pq', centroids: 256 }, small, 's');
    expect(rep.tensors[0].method).toBe('keep');
    expect(rep.warnings?.some((w) => w.includes('"s"'))).toBe(true);
  });

  it('refuses options that do not apply, before any work', async () => {
    const out = join(tmp.dir, 'no.safetensors');
    const cases: [QuantizeOptions, RegExp][] = [
      [{ method: 'pq', bits: 2 }, /centroids, not bits/],
      [{ method: 'pq', codec: 'scalar' }, /vector codec/],
      [{ method: 'kmeans', codec: 'vector' }, /pq, lr2vq only/],
      [{ method: 'kmeans', subvector: 4 }, /vector codec only/],
      [{ method: 'pq', centroids: 1024, entropy: 'huffman' }, /at most 256 codewords/],
      [{ method: 'lr2vq', subvector: 4, rank: 6 }, /exceeds the subvector length/],
      [{ method: 'kmeans', calibration: input }, /does not read a calibration file/],
      [{ method: 'pq', rate: 1 }, /needs entropy-coded indices/],
    ];
    for (const [opts, msg] of cases) await expect(quantize(input, out, opts), JSON.stringify(opts)).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(msg) });
  });

  it('K above 256 codewords packs wider indices and round-trips', async () => {
    const big = join(tmp.dir, 'big.safetensors');
    writeSafetensors(big, [{ name: 'b', dtype: 'F32', shape: [256, 64], data: encode(gaussian(256 * 64, 8), 'F32') }]);
    const out = join(tmp.dir, 'big-q.safetensors');
    const rep = await quantize(big, out, { method: 'pq', subvector: 2, centroids: 1000, include: ['b'] });
    expect(rep.tensors[0].bits).toBe(10);
    const s = JSON.parse(readSafetensors(out).metadata.weightpress).tensors.b;
    expect(readSafetensors(out).tensor(s.codes).byteLength).toBeGreaterThanOrEqual(Math.ceil((256 * 32 * 10) / 8));
    await decode(out, out + '.dense', { dtype: 'F32' });
    expect(decodeBytes(readSafetensors(out + '.dense').tensor('b'), 'F32').length).toBe(256 * 64);
  });
});

describe('CLI', () => {
  it('quantize --method lr2vq --json reports the rank estimate per tensor; inspect and decode read the file', () => {
    const cli = join(__dirname, '..', 'dist', 'cli.js');
    const out = join(tmp.dir, 'cli.safetensors');
    const r = JSON.parse(
      execFileSync(process.execPath, [cli, 'quantize', input, '-o', out, '--method', 'lr2vq', '--subvector', '4', '--centroids', '16', '--row-scale', '--include', 'w', '--json'], { encoding: 'utf8' }),
    );
    const t = r.tensors.find((x: { name: string }) => x.name === 'w');
    expect(t.method).toBe('lr2vq');
    expect(t.rank.estimate.map((e: { rank: number }) => e.rank)).toEqual([1, 2, 3, 4]);
    expect(t.rank.estimate.every((e: { lowRank: number; clustering: number }) => e.lowRank >= 0 && e.clustering >= 0)).toBe(true);
    const inspected = JSON.parse(execFileSync(process.execPath, [cli, 'inspect', out, '--json'], { encoding: 'utf8' }));
    expect(inspected.tensors.find((x: { name: string }) => x.name === 'w').bitsPerWeight).toBeCloseTo(t.bitsPerWeight, 12);
    execFileSync(process.execPath, [cli, 'decode', out, '-o', out + '.dense'], { encoding: 'utf8' });
    expect(decodeBytes(readSafetensors(out + '.dense').tensor('w'), 'F32').length).toBe(ROWS * COLS);
  });
});

describe('vector entries read strictly', () => {
  it('malformed vector metadata or parts give typed errors naming file and tensor', async () => {
    const out = join(tmp.dir, 'strict.safetensors');
    await quantize(input, out, { method: 'lr2vq', subvector: 4, centroids: 16, rank: 2, rowScale: true, include: ['w'] });
    const f = readSafetensors(out);
    const scheme = JSON.parse(f.metadata.weightpress);
    const mutate = (edit: (s: any) => void, drop?: string) => {
      const s = structuredClone(scheme);
      edit(s.tensors.w);
      const bad = join(tmp.dir, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
      writeSafetensors(
        bad,
        Object.entries(f.header)
          .filter(([name]) => name !== drop)
          .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: f.tensor(name) })),
        // Re-signed as a writer would, so that the vector codec's own checks are what refuses it.
        { ...f.metadata, weightpress: JSON.stringify(s), [DIGEST_KEY]: schemeDigest(JSON.stringify(s)) },
      );
      return bad;
    };
    const cases = [
      mutate((s) => (s.vector.centroids = 17)),
      mutate((s) => (s.vector.rank = 5)),
      mutate((s) => delete s.vector.projection),
      mutate((s) => (s.vector.rows = 47)),
      mutate((s) => (s.vector.subvector = 0)),
      mutate((s) => (s.slices = 2)),
      mutate(() => undefined, scheme.tensors.w.vector.projection),
      mutate((s) => (s.vector.cols = 97)),
    ];
    for (const bad of cases) await expect(decode(bad, bad + '.dense'), bad).rejects.toMatchObject({ code: 'E_FORMAT', tensor: 'w' });
  });

  it('an index beyond the codebook is a format error, not garbage', async () => {
    const out = join(tmp.dir, 'idx.safetensors');
    await quantize(input, out, { method: 'pq', subvector: 4, centroids: 12, include: ['w'] });
    const f = readSafetensors(out);
    const s = JSON.parse(f.metadata.weightpress).tensors.w;
    const codes = Uint8Array.from(f.tensor(s.codes));
    codes[0] = 0xff; // 4-bit indices: 15 ≥ 12 codewords
    const bad = join(tmp.dir, 'idx-bad.safetensors');
    writeSafetensors(
      bad,
      Object.entries(f.header).map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: name === s.codes ? codes : f.tensor(name) })),
      f.metadata,
    );
    await expect(decode(bad, bad + '.dense')).rejects.toMatchObject({ code: 'E_FORMAT' });
  });
});
