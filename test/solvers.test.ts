/**
 * The scalar solvers against independent oracles: the Lloyd-Max table of METHODS.md §6, the toy optimum of
 * METHODS.md §5, and brute force over every assignment of points to k labels on small inputs.
 */
import { describe, expect, it } from 'vitest';

import { solve, solveSync } from '../lib/index.js';
import { gaussian, mulberry32, nearestSse } from './helpers.js';

// METHODS.md §6: Gaussian Lloyd-Max MSE at unit variance (Max 1960 / closed-form cell moments).
const LLOYD_MAX: Record<number, number> = { 1: 0.36338, 2: 0.117482, 3: 0.034548, 4: 0.009501, 5: 0.002505 };

describe('Lloyd-Max oracle on 10^6 N(0,1) samples', () => {
  const x = Float64Array.from(gaussian(1_000_000, 7), (v) => Math.fround(v));
  // Normalize to the sample's own variance so that the oracle (unit variance) applies exactly.
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let s2 = 0;
  for (const v of x) s2 += (v - m) ** 2;
  const varX = s2 / x.length;
  for (const bits of [1, 2, 3, 4, 5]) {
    for (const method of ['kmeans-optimal', 'kmeans'] as const) {
      it(`${method} at ${bits} bits is within 0.5 % of ${LLOYD_MAX[bits]}`, async () => {
        const levels = await solve(method, x, { k: 2 ** bits, seed: 1 });
        expect(levels.length).toBe(2 ** bits);
        const mse = nearestSse(x, levels) / x.length / varX;
        expect(Math.abs(mse / LLOYD_MAX[bits] - 1)).toBeLessThan(0.005);
      });
    }
  }
});

describe('kmeans-optimal is exact', () => {
  it('matches the METHODS.md toy optimum', () => {
    const x = new Float64Array([1, 2, 3, 10, 11, 12, 20, 21]);
    const expected = { 1: 420, 2: 112.8, 3: 4.5, 4: 3.0 } as Record<number, number>;
    for (const k of [1, 2, 3, 4]) {
      const lv = solveSync('kmeans-optimal', x, { k });
      expect(nearestSse(x, lv)).toBeCloseTo(expected[k], 9);
    }
  });

  it('gives the same levels with the Knuth-Yao scan bound as without it (dpBound: false scans every split)', () => {
    const r = mulberry32(77);
    for (let trial = 0; trial < 300; trial++) {
      const n = 2 + Math.floor(r() * 300);
      const x = Float64Array.from({ length: n }, () => Math.round((r() - 0.5) * 4096) / 64);
      const weights = Float64Array.from({ length: n }, () => 0.05 + r());
      const k = 1 + Math.floor(r() * 12);
      const a = solveSync('kmeans-optimal', x, { k, weights });
      const b = solveSync('kmeans-optimal', x, { k, weights, dpBound: false });
      expect(nearestSse(x, a, weights)).toBeCloseTo(nearestSse(x, b, weights), 9);
    }
  });

  /** Brute force: every labelling of n points with k labels (no contiguity assumed), cluster means. */
  function bruteForce(x: number[], w: number[], k: number): number {
    const n = x.length;
    let best = Infinity;
    const lab = new Array(n).fill(0);
    const total = k ** n;
    for (let c = 0; c < total; c++) {
      let v = c;
      for (let i = 0; i < n; i++) { lab[i] = v % k; v = Math.floor(v / k); }
      const sw = new Array(k).fill(0), sx = new Array(k).fill(0);
      for (let i = 0; i < n; i++) { sw[lab[i]] += w[i]; sx[lab[i]] += w[i] * x[i]; }
      let sse = 0;
      for (let i = 0; i < n; i++) sse += w[i] * (x[i] - sx[lab[i]] / sw[lab[i]]) ** 2;
      best = Math.min(best, sse);
    }
    return best;
  }

  it('equals brute force on 300 small random weighted inputs', () => {
    const r = mulberry32(11);
    for (let trial = 0; trial < 300; trial++) {
      const n = 2 + Math.floor(r() * 7); // 2..8 points
      const k = 1 + Math.floor(r() * Math.min(4, n));
      // Ties and clustered values are common in quantized weights: draw from a small grid half the time.
      const x = Array.from({ length: n }, () => (trial % 2 ? Math.round(r() * 6) / 2 : r() * 10 - 5));
      const w = Array.from({ length: n }, () => (trial % 3 ? 0.1 + r() * 3 : 1));
      const lv = solveSync('kmeans-optimal', Float64Array.from(x), { k, weights: Float64Array.from(w) });
      expect(lv.length).toBeLessThanOrEqual(k);
      const got = nearestSse(x, lv, w);
      const want = bruteForce(x, w, k);
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, want));
    }
  });

  it("is never worse than Lloyd's, on Gaussian, Laplacian-like and clustered data", () => {
    const r = mulberry32(5);
    for (let trial = 0; trial < 40; trial++) {
      const n = 200 + Math.floor(r() * 2000);
      const x = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const u = r();
        x[i] = trial % 3 === 0 ? Math.log(u / (1 - u)) : trial % 3 === 1 ? Math.round(r() * 5) + 0.05 * (u - 0.5) : (u - 0.5) ** 3;
      }
      const k = 2 + (trial % 15);
      const opt = nearestSse(x, solveSync('kmeans-optimal', x, { k }));
      const lloyd = nearestSse(x, solveSync('kmeans', x, { k, seed: trial }));
      expect(opt).toBeLessThanOrEqual(lloyd * (1 + 1e-12) + 1e-15);
    }
  });

  /** O(k n^2) DP over the sorted distinct points, every split scanned: the optimal weighted SSE (the textbook
   *  recurrence, independent of the native divide and conquer and its AVX2 scan). */
  function dpReference(x: number[], w: number[], k: number): number {
    const idx = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
    const xs: number[] = [], ws: number[] = [];
    for (const i of idx) {
      if (w[i] <= 0) continue;
      if (xs.length && xs[xs.length - 1] === x[i]) ws[ws.length - 1] += w[i];
      else { xs.push(x[i]); ws.push(w[i]); }
    }
    const m = xs.length;
    const cost = (i: number, j: number) => { // points [i, j)
      let sw = 0, sx = 0;
      for (let t = i; t < j; t++) { sw += ws[t]; sx += ws[t] * xs[t]; }
      let c = 0;
      for (let t = i; t < j; t++) c += ws[t] * (xs[t] - sx / sw) ** 2;
      return c;
    };
    const C: number[][] = Array.from({ length: m + 1 }, () => new Array(m + 1).fill(0));
    for (let i = 0; i < m; i++) for (let j = i + 1; j <= m; j++) C[i][j] = cost(i, j);
    let prev = Array.from({ length: m + 1 }, (_, j) => C[0][j]);
    for (let c = 1; c < Math.min(k, m); c++) {
      const cur = new Array(m + 1).fill(Infinity);
      cur[0] = 0;
      for (let j = 1; j <= m; j++) for (let i = 0; i < j; i++) cur[j] = Math.min(cur[j], prev[i] + C[i][j]);
      prev = cur;
    }
    return prev[m];
  }

  it('equals the textbook DP on adversarial weighted inputs (ties, duplicates, zero weights, k >= distinct, 1e-30 magnitudes)', () => {
    const r = mulberry32(1501);
    for (let trial = 0; trial < 120; trial++) {
      const n = 2 + Math.floor(r() * 160);
      const kind = trial % 6;
      const scale = kind === 5 ? 1e-30 : 1;
      const x = Array.from({ length: n }, (_, i) => {
        if (kind === 0) return Math.round(r() * 8) / 4; // few distinct values: ties and k >= distinct
        if (kind === 1) return i % 2 ? 1 : -1; // two values, symmetric
        if (kind === 2) return (i - n / 2) / 8; // evenly spaced: many equal-cost partitions
        if (kind === 3) return Math.round((r() - 0.5) * 1e4) / 16;
        return (r() - 0.5) * 2 * scale; // kind 4, and kind 5 at 1e-30 as in all-but-dead rows
      });
      if (kind === 5 && n > 3) x[0] = 1.8e-12; // one outlier beside the tiny values
      // Importance weights (not integers: the AVX2 scan's division form), some of them zero.
      const w = Array.from({ length: n }, () => (r() < 0.1 ? 0 : 0.01 + r() * 3));
      if (!w.some((v) => v > 0)) w[0] = 1;
      const k = 1 + Math.floor(r() * 17);
      const lv = solveSync('kmeans-optimal', Float64Array.from(x), { k, weights: Float64Array.from(w) });
      const got = nearestSse(x, lv, w);
      const want = dpReference(x, w, k);
      const total = dpReference(x, w, 1);
      expect(lv.length).toBeLessThanOrEqual(k);
      // 1e-12 of the problem's total SSE: the prefix sums' rounding (prefix.h) on the 1e-30 rows.
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-12 * Math.max(want, total * 1e-3) + 1e-300);
    }
  });

  it('returns the distinct values when k exceeds them', () => {
    const lv = solveSync('kmeans-optimal', new Float64Array([3, 1, 3, 2, 1]), { k: 8 });
    expect(Array.from(lv)).toEqual([1, 2, 3]);
  });
});

describe('kmeans (Lloyd) is seeded and deterministic', () => {
  it('gives the same levels for the same seed', () => {
    const x = gaussian(50_000, 3);
    const a = solveSync('kmeans', x, { k: 16, seed: 9 });
    const b = solveSync('kmeans', x, { k: 16, seed: 9 });
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('uniform', () => {
  const x = gaussian(100_000, 4);
  it('min-max spans the range with evenly spaced levels', () => {
    const lv = solveSync('uniform', x, { k: 16, step: 'minmax' });
    const lo = Math.min(...x), hi = Math.max(...x);
    expect(lv[0]).toBeCloseTo(lo, 12);
    expect(lv[15]).toBeCloseTo(hi, 12);
    for (let i = 1; i < 16; i++) expect(lv[i] - lv[i - 1]).toBeCloseTo((hi - lo) / 15, 12);
  });
  it('symmetric levels are symmetric about zero', () => {
    const lv = solveSync('uniform', x, { k: 8, symmetric: true });
    for (let i = 0; i < 8; i++) expect(lv[i]).toBeCloseTo(-lv[7 - i], 12);
  });
  it('the MSE step beats min-max and approaches the optimal uniform quantizer of N(0,1)', () => {
    const mm = nearestSse(x, solveSync('uniform', x, { k: 16, step: 'minmax' })) / x.length;
    const ms = nearestSse(x, solveSync('uniform', x, { k: 16, step: 'mse', symmetric: true })) / x.length;
    expect(ms).toBeLessThan(mm);
    // Max (1960), optimum uniform 16-level quantizer of N(0,1): MSE 0.01154. Allow sampling error.
    expect(ms).toBeLessThan(0.01154 * 1.03);
    expect(ms).toBeGreaterThan(0.009501); // never better than Lloyd-Max
  });
});
