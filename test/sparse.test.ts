/**
 * The sparse least-squares solvers (native/core/solvers/sparse.cpp, docs/SPARSE.md) against slow textbook
 * solvers written here: exhaustive enumeration of faces (segmentation x jump signs) for the convex l1 and
 * l1+l2 problems, every contiguous partition for l0, the closed-form clip for the unscaled l1 problem, and
 * the exact 1-D k-means DP for the clustering-based method. All through the addon.
 */
import { describe, expect, it } from 'vitest';

import { loadNative } from '../lib/load.js';
import { mulberry32, unpackCodes } from './helpers.js';

const native = loadNative();

interface Q { levels: Float64Array; thresholds: Float64Array }
interface Params { k?: number; lambda?: number; lambda2?: number; targetValues?: number; maxIter?: number; penalty?: 'standardized' | 'uniform'; l0Algorithm?: 'monge' | 'pelt' | 'naive' }

function solve(method: string, u: number[], c: number[] | null, params: Params): Q {
  return native.quantizer(method, Float64Array.from(u), c ? Float64Array.from(c) : null, { k: 1 << 20, ...params });
}

/** The test's own summary: distinct values ascending, summed weights. */
function summarize(x: number[], w?: number[]): { u: number[]; c: number[] } {
  const pairs = x.map((v, i) => [v, w ? w[i] : 1] as [number, number]).filter((p) => p[1] > 0).sort((a, b) => a[0] - b[0]);
  const u: number[] = [], c: number[] = [];
  for (const [v, wt] of pairs) {
    if (u.length && u[u.length - 1] === v) c[c.length - 1] += wt;
    else { u.push(v); c.push(wt); }
  }
  return { u, c };
}

/** Group index of each sorted value under the pipeline's rule: x -> t when thr[t-1] < x <= thr[t]. */
function assign(u: number[], thr: ArrayLike<number>): number[] {
  return u.map((x) => {
    let t = 0;
    while (t < thr.length && x > thr[t]) t++;
    return t;
  });
}

/** z_i: the level the solver's own partition gives each value. */
function zOf(u: number[], q: Q): number[] {
  if (q.thresholds.length === 0) {
    // one level, or midpoints (the sparse solvers always return thresholds when they have >= 2 levels)
    expect(q.levels.length).toBeLessThanOrEqual(1);
    return u.map(() => q.levels[0]);
  }
  return assign(u, q.thresholds).map((t) => q.levels[t]);
}

/** Standardised penalty weights w_j (j = 1..m-1, index j-1): sqrt(L R / W). */
function stdWeights(c: number[]): number[] {
  const W = c.reduce((a, b) => a + b, 0);
  const w: number[] = [];
  let L = 0;
  for (let j = 1; j < c.length; j++) {
    L += c[j - 1];
    w.push(Math.sqrt((L * (W - L)) / W));
  }
  return w;
}

/** 1/2 sum c (u - z)^2 + lam sum w |dz| + lam2 sum omega dz^2. */
function fusedObjective(u: number[], c: number[], z: number[], w: number[], omega: number[], lam: number, lam2: number): number {
  let f = 0;
  for (let i = 0; i < u.length; i++) f += 0.5 * c[i] * (u[i] - z[i]) ** 2;
  for (let j = 1; j < u.length; j++) {
    const d = z[j] - z[j - 1];
    f += lam * w[j - 1] * Math.abs(d) + lam2 * omega[j - 1] * d * d;
  }
  return f;
}

/** Solves a small dense linear system (Gaussian elimination with partial pivoting). */
function solveDense(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((r, i) => [...r, b[i]]);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(M[r][col]) > Math.abs(M[piv][col])) piv = r;
    [M[col], M[piv]] = [M[piv], M[col]];
    for (let r = col + 1; r < n; r++) {
      const f = M[r][col] / M[col][col];
      for (let k = col; k <= n; k++) M[r][k] -= f * M[col][k];
    }
  }
  const x = new Array(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

/**
 * Exact minimum of the fused objective by enumeration of faces: for every set of jumps (segmentation) and
 * every sign pattern of those jumps, the objective restricted to that face is a smooth quadratic whose
 * minimiser solves a small linear system; the global minimiser is the minimiser of its own face, so the
 * least objective over all candidates is the optimum. monotone: only non-negative jumps, feasible candidates.
 */
function bruteFused(u: number[], c: number[], w: number[], omega: number[], lam: number, lam2: number, monotone = false): { f: number; z: number[] } {
  const m = u.length;
  let best = { f: Infinity, z: [] as number[] };
  for (let mask = 0; mask < 1 << (m - 1); mask++) {
    const starts = [0];
    for (let j = 1; j < m; j++) if (mask & (1 << (j - 1))) starts.push(j);
    const p = starts.length;
    const C: number[] = [], U: number[] = [];
    for (let t = 0; t < p; t++) {
      const e = t + 1 < p ? starts[t + 1] : m;
      let sc = 0, su = 0;
      for (let i = starts[t]; i < e; i++) { sc += c[i]; su += c[i] * u[i]; }
      C.push(sc); U.push(su);
    }
    const nb = p - 1;
    for (let sg = 0; sg < 1 << nb; sg++) {
      if (monotone && sg !== (1 << nb) - 1) continue;
      const A = Array.from({ length: p }, () => new Array(p).fill(0));
      const rhs = U.slice();
      for (let t = 0; t < p; t++) A[t][t] += C[t];
      for (let k = 0; k < nb; k++) {
        const j = starts[k + 1]; // jump between point j-1 and j: weight index j-1
        const s = sg & (1 << k) ? 1 : -1;
        rhs[k] += lam * w[j - 1] * s;
        rhs[k + 1] -= lam * w[j - 1] * s;
        const a = 2 * lam2 * omega[j - 1];
        A[k][k] += a; A[k + 1][k + 1] += a; A[k][k + 1] -= a; A[k + 1][k] -= a;
      }
      const zeta = solveDense(A, rhs);
      const z: number[] = [];
      for (let t = 0; t < p; t++) {
        const e = t + 1 < p ? starts[t + 1] : m;
        for (let i = starts[t]; i < e; i++) z.push(zeta[t]);
      }
      if (monotone && z.some((v, i) => i > 0 && v < z[i - 1] - 1e-12 * (1 + Math.abs(v)))) continue;
      const f = fusedObjective(u, c, z, w, omega, lam, lam2);
      if (f < best.f) best = { f, z };
    }
  }
  return best;
}

/** SSE of the best partition into each count of contiguous groups (index = count), by enumeration. */
function bruteSseByCount(u: number[], c: number[]): number[] {
  const m = u.length;
  const best = new Array(m + 1).fill(Infinity);
  for (let mask = 0; mask < 1 << (m - 1); mask++) {
    let sse = 0, groups = 0, a = 0;
    for (let j = 1; j <= m; j++) {
      if (j === m || mask & (1 << (j - 1))) {
        let sc = 0, su = 0;
        for (let i = a; i < j; i++) { sc += c[i]; su += c[i] * u[i]; }
        const mu = su / sc;
        for (let i = a; i < j; i++) sse += c[i] * (u[i] - mu) ** 2;
        groups++;
        a = j;
      }
    }
    best[groups] = Math.min(best[groups], sse);
  }
  return best;
}

function sseOf(u: number[], c: number[], z: number[]): number {
  return u.reduce((s, v, i) => s + c[i] * (v - z[i]) ** 2, 0);
}

function relClose(got: number, want: number, rel = 1e-9): void {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(rel * Math.max(Math.abs(want), 1e-12));
}

/** Random distinct sorted values with weights; half the time on a coarse grid (many near-ties). */
function randomPoints(r: () => number, m: number, weighted: boolean): { u: number[]; c: number[] } {
  const raw: number[] = [];
  const grid = r() < 0.5;
  while (raw.length < m) {
    const v = grid ? Math.round(r() * 4 * m) / 4 : r() * 10 - 5;
    if (!raw.includes(v)) raw.push(v);
  }
  raw.sort((a, b) => a - b);
  return { u: raw, c: raw.map(() => (weighted ? 0.2 + r() * 3 : 1)) };
}

/** Checks the invariants every result must satisfy; returns the group of each value. */
function checkInvariants(u: number[], q: Q, maxLevels: number): number[] {
  const L = q.levels;
  expect(L.length).toBeGreaterThanOrEqual(1);
  expect(L.length).toBeLessThanOrEqual(maxLevels);
  for (let t = 0; t < L.length; t++) {
    expect(Number.isFinite(L[t])).toBe(true);
    if (t > 0) expect(L[t]).toBeGreaterThan(L[t - 1]);
  }
  expect(q.thresholds.length).toBe(L.length - 1);
  for (let t = 1; t < q.thresholds.length; t++) expect(q.thresholds[t]).toBeGreaterThan(q.thresholds[t - 1]);
  const g = assign(u, q.thresholds);
  const used = new Array(L.length).fill(0);
  for (const t of g) used[t]++;
  expect(used.every((n) => n > 0)).toBe(true); // no empty cluster
  return g;
}

/** After a target-K search the levels are the group means of the solver's partition. */
function checkGroupMeans(u: number[], c: number[], q: Q): void {
  const g = assign(u, q.thresholds);
  const sw = new Array(q.levels.length).fill(0), sx = new Array(q.levels.length).fill(0);
  g.forEach((t, i) => { sw[t] += c[i]; sx[t] += c[i] * u[i]; });
  for (let t = 0; t < q.levels.length; t++) relClose(q.levels[t], sx[t] / sw[t], 1e-12);
}


// -----------------------------------------------------------------------------------------------------------

describe('sparse-l1 (weighted TV on the sorted values) is exact', () => {
  it('equals the enumerated optimum of the unconstrained problem on 300 small weighted inputs', () => {
    const r = mulberry32(101);
    for (let trial = 0; trial < 300; trial++) {
      const m = 2 + Math.floor(r() * 6); // 2..7
      const { u, c } = randomPoints(r, m, trial % 3 !== 0);
      const w = stdWeights(c);
      const lam = r() < 0.2 ? r() * 0.05 : r() * 3;
      const q = solve('sparse-l1', u, c, { lambda: lam });
      checkInvariants(u, q, m);
      const z = zOf(u, q);
      const want = bruteFused(u, c, w, w.map((v) => v * v), lam, 0);
      relClose(fusedObjective(u, c, z, w, w, lam, 0), want.f);
      // strictly convex: the minimiser itself is unique
      z.forEach((v, i) => expect(Math.abs(v - want.z[i])).toBeLessThanOrEqual(1e-7 * (1 + Math.abs(v))));
    }
  });

  it('merges interior values (unlike the unscaled problem) once lambda is large enough', () => {
    const u = [1, 2, 3, 10, 11, 12, 20, 21];
    const q = solve('sparse-l1', u, null, { lambda: 16 });
    const g = assign(u, q.thresholds);
    expect(q.levels.length).toBe(3);
    expect(g[3] === g[4] && g[4] === g[5] && g[2] !== g[3] && g[5] !== g[6]).toBe(true); // {10, 11, 12}
  });

  it('rejects a lambda that leaves more than k values, with advice', () => {
    const x = Array.from({ length: 40 }, (_, i) => i * 0.37);
    expect(() => solve('sparse-l1', x, null, { k: 4, lambda: 1e-6 })).toThrow(/raise lambda or bits/);
    expect(() => solve('sparse-l0', x, null, { k: 4, lambda: 1e-9 })).toThrow(/more than k = 4/);
    expect(() => solve('sparse-l1', x, null, { lambda: -1 })).toThrow(/lambda must be/);
  });
});

describe('the unscaled l1 problem (penalty: uniform) only clips the tails', () => {
  /** z = clip(u, a, b) with sum c (a - u)_+ = lam and sum c (u - b)_+ = lam; the mean when a >= b. */
  function clipSolution(u: number[], c: number[], lam: number): number[] {
    const level = (side: 1 | -1) => {
      // sum c * (side * (t - u))_+ = lam, monotone in t: bisection
      let lo = Math.min(...u) - 1e3, hi = Math.max(...u) + 1e3;
      for (let it = 0; it < 200; it++) {
        const mid = (lo + hi) / 2;
        const s = u.reduce((acc, v, i) => acc + c[i] * Math.max(0, side * (mid - v)), 0);
        if ((side === 1 && s < lam) || (side === -1 && s > lam)) lo = mid;
        else hi = mid;
      }
      return (lo + hi) / 2;
    };
    const a = level(1), b = level(-1);
    if (a >= b) {
      const W = c.reduce((x, y) => x + y, 0);
      const mu = u.reduce((s, v, i) => s + c[i] * v, 0) / W;
      return u.map(() => mu);
    }
    return u.map((v) => Math.min(Math.max(v, a), b));
  }

  it('equals clip(u, a, b) and the enumerated optimum', () => {
    const r = mulberry32(202);
    for (let trial = 0; trial < 200; trial++) {
      const m = 2 + Math.floor(r() * (trial < 100 ? 6 : 40));
      const { u, c } = randomPoints(r, m, trial % 2 === 0);
      const lam = r() * 4;
      const q = solve('sparse-l1', u, c, { lambda: lam, penalty: 'uniform' });
      const z = zOf(u, q);
      const want = clipSolution(u, c, lam);
      z.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1e-9 * (1 + Math.abs(v))));
      // interior values are never merged: every group of two or more values touches an end
      const g = assign(u, q.thresholds);
      for (let i = 1; i < m; i++) if (g[i] === g[i - 1]) expect(g[i] === 0 || g[i] === q.levels.length - 1).toBe(true);
      if (m <= 7) {
        const ones = new Array(m - 1).fill(1);
        relClose(fusedObjective(u, c, z, ones, ones, lam, 0), bruteFused(u, c, ones, ones, lam, 0).f);
      }
    }
  });
});

describe('sparse-l1l2 (elastic net on the standardised jumps) is exact', () => {
  it('equals the enumerated optimum on 300 small weighted inputs; the monotone constraint never binds', () => {
    const r = mulberry32(303);
    let differs = 0;
    for (let trial = 0; trial < 300; trial++) {
      const m = 2 + Math.floor(r() * 6);
      const { u, c } = randomPoints(r, m, trial % 3 !== 0);
      const w = stdWeights(c);
      const omega = w.map((v) => v * v);
      const lam = r() * 2, lam2 = r() < 0.3 ? r() * 0.01 : r() * 2;
      const q = solve('sparse-l1l2', u, c, { lambda: lam, lambda2: lam2 });
      checkInvariants(u, q, m);
      const z = zOf(u, q);
      const unconstrained = bruteFused(u, c, w, omega, lam, lam2);
      const monotone = bruteFused(u, c, w, omega, lam, lam2, true);
      if (Math.abs(unconstrained.f - monotone.f) > 1e-12 * monotone.f) differs++;
      relClose(fusedObjective(u, c, z, w, omega, lam, lam2), monotone.f);
    }
    console.log(`sparse-l1l2: unconstrained optimum non-monotone in ${differs} of 300 cases`);
    expect(differs).toBe(0);
  });

  it('with lambda2 -> 0 it tends to sparse-l1; KKT holds on 20,000 Gaussian values', () => {
    const r = mulberry32(404);
    const n = 20000;
    const x: number[] = [];
    for (let i = 0; i < n; i++) x.push(Math.sqrt(-2 * Math.log(Math.max(r(), 1e-300))) * Math.cos(2 * Math.PI * r()));
    const { u, c } = summarize(x);
    const w = stdWeights(c);
    const lam = 2e-3, lam2 = 1e-4;
    const q = solve('sparse-l1l2', u, c, { lambda: lam, lambda2: lam2 });
    const z = zOf(u, q);
    // KKT of the monotone problem in the dual variable y_j = -sum_{i<j} c_i (u_i - z_i):
    //   jump d_j > 0  =>  y_j - lam w_j = 2 lam2 w_j^2 d_j;   no jump  =>  y_j <= lam w_j.
    let y = 0, worst = 0;
    const scale = lam * Math.max(...w);
    for (let j = 1; j < u.length; j++) {
      y -= c[j - 1] * (u[j - 1] - z[j - 1]);
      const d = z[j] - z[j - 1];
      const viol = d > 0 ? Math.abs(y - lam * w[j - 1] - 2 * lam2 * w[j - 1] ** 2 * d) : Math.max(0, y - lam * w[j - 1]);
      worst = Math.max(worst, viol / scale);
    }
    expect(worst).toBeLessThan(1e-7);
    const qa = solve('sparse-l1l2', u, c, { lambda: lam, lambda2: 1e-12 });
    const qb = solve('sparse-l1', u, c, { lambda: lam });
    const za = zOf(u, qa), zb = zOf(u, qb);
    let dmax = 0;
    za.forEach((v, i) => { dmax = Math.max(dmax, Math.abs(v - zb[i])); });
    expect(dmax).toBeLessThan(1e-6);
  });
});

describe('sparse-l0 (1-D Potts) is exact with every DP algorithm', () => {
  for (const algo of ['monge', 'pelt', 'naive'] as const) {
    it(`${algo}: equals the best contiguous partition on 300 small weighted inputs`, () => {
      const r = mulberry32(505);
      for (let trial = 0; trial < 300; trial++) {
        const m = 1 + Math.floor(r() * 10); // 1..10
        const { u, c } = randomPoints(r, m, trial % 3 !== 0);
        const bestSse = bruteSseByCount(u, c);
        const lam = r() < 0.5 ? r() * 2 : r() * 20;
        let want = Infinity;
        for (let g = 1; g <= m; g++) want = Math.min(want, bestSse[g] + lam * (g - 1));
        const q = solve('sparse-l0', u, c, { lambda: lam, l0Algorithm: algo });
        checkInvariants(u, q, m);
        const got = sseOf(u, c, zOf(u, q)) + lam * (q.levels.length - 1);
        relClose(got, want);
      }
    });
  }

  it('the three algorithms agree on 5,000 values with unequal weights', () => {
    const r = mulberry32(606);
    const x = Array.from({ length: 5000 }, () => Math.round((r() - 0.5) * 2 ** 14) / 2 ** 10);
    const wt = x.map(() => 0.1 + r());
    const { u, c } = summarize(x, wt);
    const obj: number[] = [];
    for (const algo of ['monge', 'pelt', 'naive'] as const) {
      const q = solve('sparse-l0', u, c, { lambda: 0.5, l0Algorithm: algo });
      obj.push(sseOf(u, c, zOf(u, q)) + 0.5 * (q.levels.length - 1));
    }
    relClose(obj[1], obj[0], 1e-10);
    relClose(obj[2], obj[0], 1e-10);
  });
});

// -----------------------------------------------------------------------------------------------------------

/**
 * The count the fixed-lambda solver gives just past the transition to <= K (bisection on lambda). A count
 * that lives on a lambda-interval narrower than 1e-9 relative is a rounding artefact of a tie, not attained.
 */
function attainedBelow(method: string, u: number[], c: number[], K: number, extra: Params = {}): number {
  const count = (lam: number) => solve(method, u, c, { lambda: lam, ...extra }).levels.length;
  let lo = 0, hi = 1;
  while (count(hi) > K) hi *= 2;
  for (let it = 0; it < 200 && hi - lo > 1e-13 * hi; it++) {
    const mid = (lo + hi) / 2;
    if (count(mid) > K) lo = mid;
    else hi = mid;
  }
  return count(hi * (1 + 1e-9));
}

describe('target values (the iterative method)', () => {
  it('hits K exactly on generic data; levels are the group means of the partition', () => {
    const r = mulberry32(707);
    for (let trial = 0; trial < 60; trial++) {
      const m = 5 + Math.floor(r() * 60);
      const u = Array.from({ length: m }, () => r() * 10 - 5).sort((a, b) => a - b);
      const c = u.map(() => 0.3 + r() * 2);
      const K = 1 + Math.floor(r() * (m - 1));
      for (const method of ['sparse-l1', 'sparse-l1l2', 'sparse-l0', 'sparse-cluster']) {
        const q = solve(method, u, c, { targetValues: K, lambda2: 0.05 });
        checkInvariants(u, q, K);
        checkGroupMeans(u, c, q);
        if (method !== 'sparse-l0') expect(q.levels.length).toBe(K);
        else expect(q.levels.length).toBeLessThanOrEqual(K); // l0: only the convex-hull counts exist
      }
    }
  });

  it('l0: returns K or the largest count <= K on the lower convex hull of SSE*(count) (brute force)', () => {
    const r = mulberry32(808);
    let skipped = 0;
    for (let trial = 0; trial < 200; trial++) {
      const m = 2 + Math.floor(r() * 9);
      // adversarial: evenly spaced values (collinear hull points), symmetric sets, unit or random weights
      const kind = trial % 3;
      const u = kind === 0 ? Array.from({ length: m }, (_, i) => i) : kind === 1 ? Array.from({ length: m }, (_, i) => i - (m - 1) / 2) : randomPoints(r, m, false).u;
      const c = trial % 2 ? u.map(() => 1) : u.map(() => 0.5 + Math.floor(r() * 3));
      const best = bruteSseByCount(u, c);
      const K = 1 + Math.floor(r() * m);
      // count g is attainable iff some lambda makes it optimal: SSE(g) + lam g <= SSE(h) + lam h for all h
      const attainable = (g: number) => {
        let lo = 0, hi = Infinity;
        for (let h = 1; h <= m; h++) {
          if (h === g) continue;
          const lamEq = (best[g] - best[h]) / (h - g); // g beats h iff lam >= lamEq (h > g) / lam <= lamEq (h < g)
          if (h > g) lo = Math.max(lo, lamEq);
          else hi = Math.min(hi, lamEq);
        }
        return lo <= hi + 1e-9 * (1 + Math.abs(hi));
      };
      let want = K;
      while (!attainable(want)) want--;
      const q = solve('sparse-l0', u, c, { targetValues: K });
      checkInvariants(u, q, K);
      if (q.levels.length !== want) skipped++;
      expect(q.levels.length).toBe(want);
      relClose(sseOf(u, c, zOf(u, q)), best[want], 1e-9);
    }
    expect(skipped).toBe(0);
  });

  it('l1 and l1l2: K or the count the fixed-lambda solver attains at the transition (ties in symmetric data)', () => {
    const r = mulberry32(909);
    let short = 0;
    for (let trial = 0; trial < 60; trial++) {
      const m = 3 + Math.floor(r() * 12);
      const sym = trial % 2 === 0;
      const u = sym ? Array.from({ length: m }, (_, i) => i - (m - 1) / 2) : randomPoints(r, m, false).u;
      const c = u.map(() => 1);
      const K = 1 + Math.floor(r() * (m - 1));
      for (const [method, extra] of [['sparse-l1', {}], ['sparse-l1l2', { lambda2: 0.3 }]] as const) {
        const q = solve(method, u, c, { targetValues: K, ...extra });
        checkInvariants(u, q, K);
        const want = attainedBelow(method, u, c, K, extra);
        expect(q.levels.length).toBe(want);
        if (want < K) short++;
      }
    }
    console.log(`target values: K not attainable (nearest below returned) in ${short} of 120 symmetric/generic cases`);
    expect(short).toBeGreaterThan(0); // symmetric data do skip counts
  });

  it('all-equal values, K > distinct values, K > k, single value', () => {
    for (const method of ['sparse-l1', 'sparse-l1l2', 'sparse-l0', 'sparse-cluster']) {
      const eq = solve(method, [3, 3, 3, 3], null, { targetValues: 4 });
      expect(Array.from(eq.levels)).toEqual([3]);
      expect(eq.thresholds.length).toBe(0);
      const few = solve(method, [1, 5, 5, 2], [1, 1, 2, 1], { targetValues: 10 });
      expect(Array.from(few.levels)).toEqual([1, 2, 5]);
      const u = Array.from({ length: 50 }, (_, i) => Math.sin(i) * 3);
      const capped = solve(method, u, null, { targetValues: 20, k: 8 });
      expect(capped.levels.length).toBeLessThanOrEqual(8);
      if (method !== 'sparse-l0') expect(capped.levels.length).toBe(8);
      const dflt = solve(method, u, null, { k: 4 }); // no lambda, no target: search for k values
      expect(dflt.levels.length).toBeLessThanOrEqual(4);
    }
  });
});

describe('invariants on random inputs (every method, every mode)', () => {
  it('sorted finite levels, no empty group, never more values than asked', () => {
    const r = mulberry32(1111);
    for (let trial = 0; trial < 150; trial++) {
      const n = 1 + Math.floor(r() * 300);
      const x = Array.from({ length: n }, () => (trial % 2 ? Math.round(r() * 40) / 8 : (r() - 0.5) * 10 ** (r() * 6 - 3)));
      const wt = trial % 3 ? x.map(() => r() * 2) : undefined; // zero-weight entries possible
      const { u, c } = summarize(x, wt);
      if (u.length === 0) continue;
      const k = 1 + Math.floor(r() * 20);
      for (const method of ['sparse-l1', 'sparse-l1l2', 'sparse-l0', 'sparse-cluster']) {
        const K = 1 + Math.floor(r() * 30);
        const q = native.quantizer(method, Float64Array.from(x), wt ? Float64Array.from(wt) : null, { k, targetValues: K, lambda2: 0.01 });
        checkInvariants(u, q, Math.min(K, k));
        checkGroupMeans(u, c, q);
      }
    }
  });

  it('the pipeline assigns exactly the solver partition (codes from quantize match the thresholds)', async () => {
    const r = mulberry32(1212);
    const n = 4096;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.fround((r() - 0.5) * (r() < 0.1 ? 8 : 1));
    const xs = Array.from(x);
    const { u } = summarize(xs);
    // a lambda that leaves at most 16 values, for the fixed-lambda mode
    let lam = 1e-3;
    for (;;) {
      try { native.quantizer('sparse-l1', Float64Array.from(xs), null, { k: 16, lambda: lam }); break; } catch { lam *= 2; }
    }
    const cases: [string, Params][] = [['sparse-l1', { lambda: lam }], ['sparse-l1l2', { targetValues: 9, lambda2: 1 }], ['sparse-l0', { targetValues: 16 }], ['sparse-cluster', {}]];
    for (const [method, extra] of cases) {
      const bits = 4;
      const q = native.quantizer(method, Float64Array.from(xs), null, { k: 16, ...extra });
      const codes = new Uint8Array((n * bits + 7) >> 3);
      const codebook = new Uint8Array(16 * 4);
      await native.quantize(
        { data: new Uint8Array(x.buffer), dtype: 'F32', numel: n },
        { method, bits, granularity: 'tensor', sliceSize: n, codebookDtype: 'F32', solverParams: extra },
        codes,
        codebook,
      );
      const got = unpackCodes(codes, n, bits);
      const g = assign(u, q.thresholds);
      const groupOf = new Map(u.map((v, i) => [v, g[i]]));
      for (let i = 0; i < n; i++) expect(got[i]).toBe(groupOf.get(xs[i]));
    }
  });
});

describe('sparse-cluster (the clustering-based method) against exact k-means', () => {
  it('is never better than kmeans-optimal, and l0 at an attained K equals it; reports the gap', () => {
    const r = mulberry32(1313);
    const gaps: number[] = [];
    for (let trial = 0; trial < 80; trial++) {
      const n = 200 + Math.floor(r() * 2000);
      const x = Array.from({ length: n }, () => {
        const t = trial % 3;
        const g = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-300))) * Math.cos(2 * Math.PI * r());
        return t === 0 ? g : t === 1 ? Math.sign(g) * g * g : Math.round(g * 16) / 16 + (r() < 0.5 ? 3 : 0);
      });
      const wt = trial % 2 ? x.map(() => 0.1 + r()) : undefined;
      const { u, c } = summarize(x, wt);
      for (const K of [2, 4, 16, 64]) {
        const opt = native.quantizer('kmeans-optimal', Float64Array.from(x), wt ? Float64Array.from(wt) : null, { k: K });
        const optSse = sseOf(u, c, u.map((v) => { let b = opt.levels[0]; for (const l of opt.levels) if (Math.abs(v - l) < Math.abs(v - b)) b = l; return b; }));
        const cl = solve('sparse-cluster', x, wt ?? null, { targetValues: K });
        const clSse = sseOf(u, c, zOf(u, cl));
        expect(clSse).toBeGreaterThanOrEqual(optSse * (1 - 1e-12));
        if (optSse > 0) gaps.push(clSse / optSse - 1);
        const l0 = solve('sparse-l0', x, wt ?? null, { targetValues: K });
        if (l0.levels.length === Math.min(K, u.length)) relClose(sseOf(u, c, zOf(u, l0)), optSse, 1e-9);
      }
    }
    gaps.sort((a, b) => a - b);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    console.log(`sparse-cluster SSE over exact: mean +${(mean * 100).toFixed(3)}%, median +${(gaps[gaps.length >> 1] * 100).toFixed(3)}%, max +${(gaps[gaps.length - 1] * 100).toFixed(3)}%, exact in ${gaps.filter((g) => g < 1e-12).length}/${gaps.length}`);
  });
});
