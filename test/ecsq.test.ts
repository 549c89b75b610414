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
