/**
 * Importance weights and Hessian-weighted k-means (Choi et al. 2017, Eq. 8): the weighted optimum beats the
 * unweighted one on the weighted distortion, the importance file is checked, and the all-layers mode shares one
 * codebook that equals the solve over the union of all weights.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { quantize, solveSync } from '../lib/index.js';
import { decodeBytes, encode, gaussian, mulberry32, nearestSse, readSafetensors, tempDir, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const rows = 32, cols = 160;
const wA = Float64Array.from(gaussian(rows * cols, 1), (v) => Math.fround(v * 0.05));
const wB = Float64Array.from(gaussian(rows * cols, 2), (v) => Math.fround(v * 0.2));
const r = mulberry32(9);
// Importance that is large on a few weights: a Hessian-weighted quantizer must serve those first.
const hA = Float64Array.from(wA, () => Math.fround(r() < 0.05 ? 100 * r() : r() * 0.01));
const hB = Float64Array.from(wB, () => Math.fround(r()));
const input = join(tmp.dir, 'm.safetensors');
writeSafetensors(input, [
  { name: 'a.weight', dtype: 'F32', shape: [rows, cols], data: encode(wA, 'F32') },
  { name: 'b.weight', dtype: 'BF16', shape: [rows, cols], data: encode(wB, 'BF16') },
]);
const hess = join(tmp.dir, 'h.safetensors');
writeSafetensors(hess, [
  { name: 'a.weight', dtype: 'F32', shape: [rows, cols], data: encode(hA, 'F32') },
  { name: 'b.weight', dtype: 'F16', shape: [rows, cols], data: encode(hB, 'F16') },
]);

function weightedMse(x: Float64Array, xq: Float64Array, h: Float64Array): number {
  let s = 0, hw = 0;
  for (let i = 0; i < x.length; i++) { s += h[i] * (x[i] - xq[i]) ** 2; hw += h[i]; }
  return s / hw;
}

async function decodedOf(file: string, name: string, n: number, bits: number): Promise<Float64Array> {
  const f = readSafetensors(file);
  const s = JSON.parse(f.metadata.weightpress).tensors[name];
  const cb = decodeBytes(f.tensor(s.codebook), s.codebookDtype);
  const bytes = f.tensor(s.codes);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let b = 0; b < bits; b++) c |= ((bytes[(i * bits + b) >> 3] >> ((i * bits + b) & 7)) & 1) << b;
    out[i] = cb[Math.floor(i / s.sliceSize) * 2 ** bits + c];
  }
  return out;
}

describe('hessian-kmeans', () => {
  it('has lower Hessian-weighted distortion than unweighted exact k-means, per tensor', async () => {
    const hq = join(tmp.dir, 'hq.safetensors');
    const uq = join(tmp.dir, 'uq.safetensors');
    await quantize(input, hq, { method: 'hessian-kmeans', importance: hess, bits: 3, granularity: 'tensor', minElements: 1 });
    await quantize(input, uq, { method: 'kmeans-optimal', bits: 3, granularity: 'tensor', minElements: 1 });
    const xa = wA;
    const h = await decodedOf(hq, 'a.weight', rows * cols, 3);
    const u = await decodedOf(uq, 'a.weight', rows * cols, 3);
    expect(weightedMse(xa, h, hA)).toBeLessThan(weightedMse(xa, u, hA));
  });

  it('is the exact weighted optimum on small inputs (brute force over all labellings)', () => {
    const rr = mulberry32(4);
    for (let t = 0; t < 100; t++) {
      const n = 3 + Math.floor(rr() * 5), k = 2 + Math.floor(rr() * 2);
      const x = Array.from({ length: n }, () => rr() * 4 - 2);
      const w = Array.from({ length: n }, () => (rr() < 0.3 ? 50 * rr() : 0.1 + rr()));
      const lv = solveSync('hessian-kmeans', Float64Array.from(x), { k, weights: Float64Array.from(w) });
      let best = Infinity;
      for (let c = 0; c < k ** n; c++) {
        const lab: number[] = [];
        let v = c;
        for (let i = 0; i < n; i++) { lab.push(v % k); v = Math.floor(v / k); }
        const sw = new Array(k).fill(0), sx = new Array(k).fill(0);
        lab.forEach((l, i) => { sw[l] += w[i]; sx[l] += w[i] * x[i]; });
        best = Math.min(best, lab.reduce((s, l, i) => s + w[i] * (x[i] - sx[l] / sw[l]) ** 2, 0));
      }
      expect(nearestSse(x, lv, w)).toBeCloseTo(best, 9);
    }
  });

  it('Lloyd variant (exact: false) is never better than the exact one on the weighted objective', () => {
    const lv1 = solveSync('hessian-kmeans', wA, { k: 8, weights: hA });
    const lv2 = solveSync('hessian-kmeans', wA, { k: 8, weights: hA, exact: false, seed: 3 });
    expect(nearestSse(wA, lv1, hA)).toBeLessThanOrEqual(nearestSse(wA, lv2, hA) * (1 + 1e-12));
  });

  it('needs importance', async () => {
    await expect(quantize(input, join(tmp.dir, 'x.safetensors'), { method: 'hessian-kmeans' })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
  });
});

describe('the importance file', () => {
  it('adam-v uses sqrt(v): equal to passing sqrt(v) as a Hessian', async () => {
    const v = join(tmp.dir, 'v.safetensors');
    const s = join(tmp.dir, 's.safetensors');
    writeSafetensors(v, [{ name: 'a.weight.exp_avg_sq', dtype: 'F32', shape: [rows, cols], data: encode(Float64Array.from(hA, (x) => x * x), 'F32') }]);
    writeSafetensors(s, [{ name: 'a.weight', dtype: 'F32', shape: [rows, cols], data: encode(Float64Array.from(hA, (x) => Math.fround(Math.sqrt(Math.fround(x * x)))), 'F32') }]);
    const o1 = join(tmp.dir, 'o1.safetensors'), o2 = join(tmp.dir, 'o2.safetensors');
    const r1 = await quantize(input, o1, { method: 'hessian-kmeans', importance: v, importanceKind: 'adam-v', bits: 3, minElements: 1 });
    const r2 = await quantize(input, o2, { method: 'hessian-kmeans', importance: s, bits: 3, minElements: 1 });
    const f1 = readSafetensors(o1), f2 = readSafetensors(o2);
    expect(Buffer.from(f1.tensor('a.weight.__wp_codebook')).equals(Buffer.from(f2.tensor('a.weight.__wp_codebook')))).toBe(true);
    // b.weight has no importance in either file: uniform weights, and a warning naming it.
    expect(r1.warnings?.some((w) => w.includes('"b.weight"'))).toBe(true);
    expect(r2.warnings?.length).toBe(1);
  });

  it('maps names with FROM=>TO rules', async () => {
    const m = join(tmp.dir, 'map.safetensors');
    writeSafetensors(m, [
      { name: 'state.model.a.weight.exp_avg_sq', dtype: 'F32', shape: [rows, cols], data: encode(hA, 'F32') },
      { name: 'state.model.b.weight.exp_avg_sq', dtype: 'F32', shape: [rows, cols], data: encode(hB, 'F32') },
    ]);
    const rep = await quantize(input, join(tmp.dir, 'mapped.safetensors'), { method: 'hessian-kmeans', importance: m, importanceMap: ['^=>model.'], minElements: 1 });
    expect(rep.warnings).toBeUndefined();
  });

  for (const [what, value, code] of [['negative', -1, 'E_NONFINITE'], ['NaN', NaN, 'E_NONFINITE'], ['Inf', Infinity, 'E_NONFINITE']] as const) {
    it(`a ${what} entry is an error naming the tensor and the importance file`, async () => {
      const bad = join(tmp.dir, `bad-${what}.safetensors`);
      const h = Float64Array.from(hA);
      h[77] = value;
      writeSafetensors(bad, [{ name: 'a.weight', dtype: 'F32', shape: [rows, cols], data: encode(h, 'F32') }]);
      await expect(quantize(input, join(tmp.dir, 'never.safetensors'), { method: 'hessian-kmeans', importance: bad, minElements: 1 })).rejects.toMatchObject({
        code, tensor: 'a.weight', file: bad,
      });
    });
  }

  it('a shape mismatch is an error', async () => {
    const bad = join(tmp.dir, 'shape.safetensors');
    writeSafetensors(bad, [{ name: 'a.weight', dtype: 'F32', shape: [cols, rows], data: encode(hA, 'F32') }]);
    await expect(quantize(input, join(tmp.dir, 'never.safetensors'), { method: 'hessian-kmeans', importance: bad, minElements: 1 })).rejects.toMatchObject({
      code: 'E_FORMAT', tensor: 'a.weight',
    });
  });
});

describe("granularity 'network' (all layers together)", () => {
  it('stores one codebook for every tensor, equal to the exact solve over all weights', async () => {
    const out = join(tmp.dir, 'net.safetensors');
    await quantize(input, out, { method: 'kmeans-optimal', bits: 3, granularity: 'network', minElements: 1, codebookDtype: 'F32' });
    const f = readSafetensors(out);
    const a = decodeBytes(f.tensor('a.weight.__wp_codebook'), 'F32');
    const b = decodeBytes(f.tensor('b.weight.__wp_codebook'), 'F32');
    expect(Array.from(a)).toEqual(Array.from(b));
    const bDecoded = decodeBytes(encode(wB, 'BF16'), 'BF16'); // the stored BF16 values
    const all = new Float64Array([...wA, ...bDecoded]);
    const want = solveSync('kmeans-optimal', all, { k: 8 });
    for (let i = 0; i < 8; i++) expect(a[i]).toBeCloseTo(Math.fround(want[i]), 6);
  });
});
