/**
 * ECSQ (Choi et al. 2017): the rate-distortion oracle of METHODS.md §6 (entropy-coded uniform quantization of a
 * Gaussian sits 1.533 dB above D(R) = 2^(-2R) at high rate), and the exact Lagrangian DP against brute force.
 */
import { describe, expect, it } from 'vitest';

import { loadNative } from '../lib/load.js';
import { gaussian, mulberry32 } from './helpers.js';

const native = loadNative();

/** Entropy (bits) of the codes and MSE, computed here from the levels and thresholds. */
function measure(x: Float64Array, q: { levels: Float64Array; thresholds: Float64Array }) {
  const L = q.levels;
  const T = q.thresholds.length ? q.thresholds : L.slice(1).map((v, i) => (L[i] + v) / 2);
  const count = new Float64Array(L.length);
  let sse = 0;
  for (const v of x) {
    let lo = 0, hi = T.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (T[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    count[lo]++;
    sse += (v - L[lo]) ** 2;
  }
  let H = 0;
  for (const c of count) if (c > 0) H -= (c / x.length) * Math.log2(c / x.length);
  return { H, mse: sse / x.length, empty: count.some((c) => c === 0) };
}

describe('ECSQ on 10^6 N(0,1) samples', () => {
  const x = gaussian(1_000_000, 21);
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let v2 = 0;
  for (const v of x) v2 += (v - m) ** 2;
  const sigma2 = v2 / x.length;
  for (const method of ['ecsq-uniform', 'ecsq'])
    for (const rate of [2, 3, 4, 5]) {
      it(`${method} at H ≈ ${rate}: MSE within 1.60 dB of D(H)`, () => {
        const q = native.quantizer(method, x, null, { k: 256, rate });
        const { H, mse, empty } = measure(x, q);
        expect(empty).toBe(false); // no empty cells
        expect(Math.abs(H - rate)).toBeLessThan(0.02);
        const gapDb = 10 * Math.log10(mse / (sigma2 * 2 ** (-2 * H)));
        expect(gapDb).toBeLessThan(1.6);
        expect(gapDb).toBeGreaterThan(0); // nothing beats the Shannon bound
      });
    }
});

describe('ecsq-dp is the exact Lagrangian optimum over contiguous partitions', () => {
  /** min over all contiguous partitions of sum SSE + lambda * W_s * log2(W / W_s), by enumeration. */
  function brute(x: number[], w: number[], lambda: number): number {
    const n = x.length;
    const W = w.reduce((a, b) => a + b, 0);
    let best = Infinity;
    for (let mask = 0; mask < 1 << (n - 1); mask++) {
      let cost = 0, start = 0;
      for (let i = 1; i <= n; i++) {
        if (i === n || mask & (1 << (i - 1))) {
          let sw = 0, sx = 0;
          for (let j = start; j < i; j++) { sw += w[j]; sx += w[j] * x[j]; }
          const mean = sx / sw;
          for (let j = start; j < i; j++) cost += w[j] * (x[j] - mean) ** 2;
          cost += lambda * sw * Math.log2(W / sw);
          start = i;
        }
      }
      best = Math.min(best, cost);
    }
    return best;
  }
  function objective(x: number[], w: number[], q: { levels: Float64Array; thresholds: Float64Array }, lambda: number): number {
    const W = w.reduce((a, b) => a + b, 0);
    const T = q.thresholds;
    const cw = new Float64Array(q.levels.length);
    let sse = 0;
    x.forEach((v, i) => {
      let c = 0;
      while (c < T.length && T[c] < v) c++;
      cw[c] += w[i];
      sse += w[i] * (v - q.levels[c]) ** 2;
    });
    let rate = 0;
    for (const c of cw) if (c > 0) rate += c * Math.log2(W / c);
    return sse + lambda * rate;
  }
  it('equals brute force on 200 small random inputs', () => {
    const r = mulberry32(3);
    for (let t = 0; t < 200; t++) {
      const n = 2 + Math.floor(r() * 9);
      const pts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const v = Math.round((r() * 8 - 4) * 4) / 4;
        pts.set(v, (pts.get(v) ?? 0) + 1 + Math.floor(r() * 3));
      }
      const x = [...pts.keys()].sort((a, b) => a - b);
      const w = x.map((v) => pts.get(v)!);
      const lambda = [0.01, 0.1, 0.5, 2][t % 4];
      const q = native.quantizer('ecsq-dp', Float64Array.from(x), Float64Array.from(w), { k: 256, lambda });
      const want = brute(x, w, lambda);
      expect(Math.abs(objective(x, w, q, lambda) - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, want));
    }
  });
});

describe('the fast ecsq-dp (pruned scan, certified lambda search) is the plain one', () => {
  /** The recurrence with every split scanned: F[j] = min_i F[i] + SSE(i, j) + lambda * w * log2(W / w). */
  function plainDp(x: number[], w: number[], lambda: number): number {
    const m = x.length;
    const W = w.reduce((a, b) => a + b, 0);
    const F = new Array(m + 1).fill(Infinity);
    F[0] = 0;
    for (let j = 1; j <= m; j++) {
      let sw = 0, sx = 0, sxx = 0;
      for (let i = j - 1; i >= 0; i--) {
        sw += w[i]; sx += w[i] * x[i]; sxx += w[i] * x[i] * x[i];
        const sse = Math.max(0, sxx - (sx * sx) / sw);
        F[j] = Math.min(F[j], F[i] + sse + lambda * sw * Math.log2(W / sw));
      }
    }
    return F[m];
  }
  function points(r: () => number, n: number, kind: number) {
    const pts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const v = kind === 0 ? Math.round((r() * 8 - 4) * 8) / 8 : kind === 1 ? Math.fround((r() - 0.5) * (r() - 0.5) * 4) : Math.round(r() * 3);
      pts.set(v, (pts.get(v) ?? 0) + 1 + (kind === 2 ? Math.floor(r() * 50) : 0));
    }
    const x = [...pts.keys()].sort((a, b) => a - b);
    return { x, w: x.map((v) => pts.get(v)!) };
  }
  it('reaches the plain recurrence at fixed lambda on 60 inputs of up to 300 points', () => {
    const r = mulberry32(1502);
    for (let t = 0; t < 60; t++) {
      const { x, w } = points(r, 2 + Math.floor(r() * 300), t % 3);
      const lambda = [0.001, 0.02, 0.3, 3][t % 4];
      const q = native.quantizer('ecsq-dp', Float64Array.from(x), Float64Array.from(w), { k: 4096, lambda });
      const want = plainDp(x, w, lambda);
      const W = w.reduce((a, b) => a + b, 0);
      const T = q.thresholds;
      const cw = new Float64Array(q.levels.length);
      let sse = 0;
      x.forEach((v, i) => {
        let c = 0;
        while (c < T.length && T[c] < v) c++;
        cw[c] += w[i];
        sse += w[i] * (v - q.levels[c]) ** 2;
      });
      let rate = 0;
      for (const c of cw) if (c > 0) rate += c * Math.log2(W / c);
      expect(Math.abs(sse + lambda * rate - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, want));
    }
  });
  it('gives the same levels and thresholds as the plain bisection (dpBound: false), for ecsq-dp and ecsq at a rate', () => {
    const r = mulberry32(1503);
    for (let t = 0; t < 40; t++) {
      const { x, w } = points(r, 8 + Math.floor(r() * 400), t % 3);
      const rate = [1, 2, 3, 4][t % 4];
      for (const method of ['ecsq-dp', 'ecsq']) {
        const a = native.quantizer(method, Float64Array.from(x), Float64Array.from(w), { k: 16, rate });
        const b = native.quantizer(method, Float64Array.from(x), Float64Array.from(w), { k: 16, rate, dpBound: false });
        expect(Array.from(a.levels)).toEqual(Array.from(b.levels));
        expect(Array.from(a.thresholds)).toEqual(Array.from(b.thresholds));
      }
    }
  });
});

describe('the target as a compression ratio', () => {
  it("each tensor's rate is its dtype's bits / C (F32 at C = 8: 4 bits; BF16 at C = 8: 2 bits)", async () => {
    const { quantize } = await import('../lib/index.js');
    const { encode, readSafetensors, tempDir, writeSafetensors } = await import('./helpers.js');
    const { join } = await import('node:path');
    const tmp = tempDir();
    try {
      const x = gaussian(64 * 1024, 8);
      const input = join(tmp.dir, 'in.safetensors');
      writeSafetensors(input, [
        { name: 'a', dtype: 'F32', shape: [64, 1024], data: encode(x, 'F32') },
        { name: 'b', dtype: 'BF16', shape: [64, 1024], data: encode(x, 'BF16') },
      ]);
      const r = await quantize(input, join(tmp.dir, 'out.safetensors'), { method: 'ecsq', compressionRatio: 8, granularity: 'tensor' });
      const a = r.tensors.find((t) => t.name === 'a')!;
      const b = r.tensors.find((t) => t.name === 'b')!;
      // The rate is the bits per weight written (codebook, stream, padding: Choi et al.), within 2 %.
      expect(Math.abs(a.bitsPerWeight / 4 - 1)).toBeLessThan(0.02);
      expect(Math.abs(b.bitsPerWeight / 2 - 1)).toBeLessThan(0.02);
      const s = JSON.parse(readSafetensors(join(tmp.dir, 'out.safetensors')).metadata.weightpress).tensors.a;
      expect(s.params.compressionRatio).toBe(8);
      await expect(quantize(input, join(tmp.dir, 'x'), { method: 'ecsq', compressionRatio: 8, rate: 3 })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    } finally {
      tmp.cleanup();
    }
  });
});
