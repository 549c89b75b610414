/**
 * Quantization Networks (lib/qn.ts, native/core/qn): the kernels against an F64 reference written here (the paper's
 * Eq. 7 and its exact derivatives by central finite differences), the hard function against the scalar codec's
 * decode, and the post-training fit against its own initialisation and against exact k-means.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, quantize, qnBackward, qnForward, qnInit, qnQuantizer, type QnFunction } from '../lib/index.js';
import { WeightpressError } from '../lib/errors.js';
import { loadNative } from '../lib/load.js';
import { encode, gaussian, mulberry32, nearestSse, readSafetensors, decodeBytes, tempDir, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

// ---- F64 reference (Yang et al. 2019, Eq. 7): y = α (Σ sᵢ σ(T (β x − bᵢ)) − o), o = ½ Σ sᵢ by default ----
const sig = (u: number) => 1 / (1 + Math.exp(-u));
function ref(x: number, f: QnFunction, T: number): number {
  const Y = f.levels;
  const o = f.offset ?? 0.5 * (Y[Y.length - 1] - Y[0]);
  let acc = 0;
  for (let i = 0; i + 1 < Y.length; i++) acc += (Y[i + 1] - Y[i]) * (T === Infinity ? (f.beta * x - f.biases[i] > 0 ? 1 : 0) : sig(T * (f.beta * x - f.biases[i])));
  return f.alpha * (acc - o);
}
/** Σ gy · f(x) in F64, the scalar whose derivatives qnBackward returns. */
function dot(xs: ArrayLike<number>, gy: ArrayLike<number>, f: QnFunction, T: number): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += gy[i] * ref(xs[i], f, T);
  return s;
}
function fd(g: (h: number) => number, at: number): number {
  const h = 1e-6 * Math.max(1, Math.abs(at));
  return (g(at + h) - g(at - h)) / (2 * h);
}
const close = (a: number, b: number, rel: number, abs = 0) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) + abs;

const TERNARY: QnFunction = { levels: [-1, 0, 1], alpha: 0.03, beta: 25, biases: [-0.05, 0.05] };
const W3: QnFunction = { levels: [-4, -2, -1, 0, 1, 2, 4], alpha: 0.01, beta: 60, biases: [-2.7, -1.4, -0.05, 0.05, 1.6, 3.1] };
const BINARY: QnFunction = { levels: [-1, 1], alpha: 0.05, beta: 20, biases: [0] };
const ACT: QnFunction = { levels: [0, 1, 2, 3], alpha: 0.4, beta: 2.5, biases: [0.5, 1.5, 2.5], offset: 0 };

describe('qn kernels', () => {
  const r = mulberry32(3);
  const xs = Float32Array.from({ length: 40 }, () => (r() - 0.5) * 0.12);
  const gy = Float32Array.from({ length: 40 }, () => r() - 0.3);

  it.each([
    ['ternary', TERNARY],
    ['W3(±4)', W3],
    ['binary', BINARY],
    ['activations {0..3}, o = 0', ACT],
  ] as const)('%s: gradients for x, α, β and every bias equal central finite differences (F64 reference)', (_n, f) => {
    const x = f === ACT ? Float32Array.from(xs, (v) => v * 20 + 0.6) : xs;
    for (const T of [1, 4, 20]) {
      const g = qnBackward(x, gy, f, { temperature: T });
      expect(close(g.alpha, fd((a) => dot(x, gy, { ...f, alpha: a }, T), f.alpha), 1e-4), `T=${T} alpha`).toBe(true);
      expect(close(g.beta, fd((b) => dot(x, gy, { ...f, beta: b }, T), f.beta), 1e-4), `T=${T} beta`).toBe(true);
      f.biases.forEach((b0, i) => {
        const want = fd((b) => dot(x, gy, { ...f, biases: f.biases.map((v, j) => (j === i ? b : v)) }, T), b0);
        expect(close(g.biases[i], want, 1e-4, 1e-12), `T=${T} bias ${i}: ${g.biases[i]} vs ${want}`).toBe(true);
      });
      for (let i = 0; i < x.length; i++) {
        const want = gy[i] * fd((v) => ref(v, f, T), x[i]);
        expect(close(g.x[i], want, 1e-4, 1e-9 * f.alpha * f.beta * T), `T=${T} x[${i}]: ${g.x[i]} vs ${want}`).toBe(true);
      }
    }
  });

  it('soft forward equals the F64 reference; as T grows it equals the hard function', () => {
    for (const f of [TERNARY, W3, BINARY, ACT]) {
      const x = f === ACT ? Float32Array.from(xs, (v) => v * 20 + 0.6) : xs;
      const y = qnForward(x, f, { temperature: 7 });
      for (let i = 0; i < x.length; i++) expect(close(y[i], ref(x[i], f, 7), 1e-6, 1e-9)).toBe(true);
      const hard = qnForward(x, f);
      for (let i = 0; i < x.length; i++) {
        // The step function of the reference, away from the thresholds.
        const dist = Math.min(...f.biases.map((b) => Math.abs(f.beta * x[i] - b)));
        if (dist < 1e-4) continue;
        expect(hard[i]).toBe(Math.fround(ref(x[i], f, Infinity)));
        const soft = qnForward(x, f, { temperature: 1e8 });
        expect(Math.abs(soft[i] - hard[i])).toBeLessThanOrEqual(1e-6 * Math.abs(f.alpha));
      }
    }
  });

  it('the hard function equals the scalar codec decode of the same levels and thresholds, bit for bit', async () => {
    const native = loadNative();
    const n = 10_000;
    const x = Float32Array.from(gaussian(n, 9), (v) => v * 0.04);
    for (const f of [TERNARY, W3, BINARY, ACT]) {
      const q = qnQuantizer(f);
      const bits = Math.ceil(Math.log2(q.levels.length));
      const codes = new Uint8Array(Math.ceil((n * bits) / 8) + 8);
      const codebook = new Uint8Array(4 << bits);
      const data = new Uint8Array(x.buffer.slice(0));
      await native.quantize({ data, dtype: 'F32', numel: n }, { method: 'qn', bits, granularity: 'tensor', sliceSize: n, codebookDtype: 'F32', fixedLevels: q.levels, fixedThresholds: q.thresholds }, codes, codebook);
      const out = new Uint8Array(n * 4);
      await native.dequantize({ codes, codebook, codebookDtype: 'F32', numel: n, bits, sliceSize: n }, 'F32', out);
      const hard = qnForward(x, f);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(hard.buffer))).toBe(0);
    }
  });

  it('results do not depend on the thread count; bad functions are typed errors', () => {
    const x = Float32Array.from(gaussian(100_000, 4), (v) => v * 0.05);
    const g = Float32Array.from(gaussian(100_000, 5));
    const a = qnBackward(x, g, W3, { temperature: 5, threads: 1 });
    const b = qnBackward(x, g, W3, { temperature: 5, threads: 3 });
    expect([b.alpha, b.beta, ...b.biases]).toEqual([a.alpha, a.beta, ...a.biases]);
    expect(Buffer.from(b.x.buffer).equals(Buffer.from(a.x.buffer))).toBe(true);
    const bad: [QnFunction, RegExp][] = [
      [{ ...TERNARY, alpha: 0 }, /alpha/],
      [{ ...TERNARY, biases: [0.05, -0.05] }, /ascending/],
      [{ ...TERNARY, levels: [1, 0, -1] }, /ascending/],
      [{ ...TERNARY, biases: [0] }, /biases/],
    ];
    for (const [f, msg] of bad) {
      const e = (() => {
        try {
          qnForward(x.subarray(0, 4), f);
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(WeightpressError);
      expect((e as WeightpressError).code).toBe('E_ARGUMENT');
      expect((e as Error).message).toMatch(msg);
    }
    expect(() => qnBackward(x, g, TERNARY, { temperature: Infinity })).toThrow(/finite temperature/);
    expect(() => qnForward(Float32Array.of(NaN), TERNARY)).toThrow(/not finite/);
  });
});

// ---- the post-training fit against the weight error ----
/** Σ w (q(x) − x)² with the codec's assignment (x > thresholds[j] moves past level j). */
function thresholdSse(x: ArrayLike<number>, levels: ArrayLike<number>, th: ArrayLike<number>, w?: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    let j = 0;
    while (j < th.length && x[i] > th[j]) j++;
    s += (w ? w[i] : 1) * (levels[j] - x[i]) ** 2;
  }
  return s;
}

describe('qn post-training fit (weight objective)', () => {
  const native = loadNative();
  // Symmetric sets (each value and its negative): their optimal 2- and 3-level quantizers are symmetric, which a
  // symmetric level set with frozen biases can represent. The others only must not end above the initialisation.
  const mirror = (v: Float64Array) => Float64Array.from([...v, ...Array.from(v, (x) => -x)]);
  const lap = mulberry32(22);
  const data: Record<string, [Float64Array, boolean]> = {
    gaussian: [mirror(Float64Array.from(gaussian(2000, 21), (v) => 0.02 * v)), true],
    laplacian: [mirror(Float64Array.from({ length: 2000 }, () => -0.02 * Math.log(1 - lap()))), true],
    skewed: [Float64Array.from(gaussian(4000, 23), (v) => 0.02 * (v > 0 ? v * 2 : v) + 0.003), false],
    'few values': [Float64Array.from({ length: 500 }, (_, i) => [-0.1, 0, 0.02, 0.3][i % 4]), false],
  };
  it.each(Object.keys(data))('%s: never ends above its initialisation; symmetric data: within 1 percent of exact k-means (binary, ternary)', (name) => {
    const [x, symmetric] = data[name];
    for (const learnBiases of [false, true])
      for (const levels of [[-1, 1], [-1, 0, 1], [-4, -2, -1, 0, 1, 2, 4]]) {
        const k = 2 ** Math.ceil(Math.log2(levels.length));
        const fit = native.quantizer('qn', x, null, { k, levels, learnBiases });
        const init = qnInit(x, levels);
        const e0 = thresholdSse(x, init.levels, init.thresholds);
        const e = thresholdSse(x, fit.levels, fit.thresholds);
        expect(e, `${levels.length} levels`).toBeLessThanOrEqual(e0 * (1 + 1e-12));
        if (symmetric && levels.length <= 3) {
          const km = nearestSse(x, native.solveSync('kmeans-optimal', x, null, { k: levels.length }));
          expect(e / km, `${levels.length} levels: qn ${e}, k-means ${km}`).toBeLessThanOrEqual(1.01);
        }
      }
  });

  it('importance weights are honoured; the fit is the same for any thread count', () => {
    const x = Float64Array.from(gaussian(3000, 31), (v) => 0.02 * v);
    const w = Float64Array.from(x, (v) => (v > 0 ? 10 : 1));
    const fit = native.quantizer('qn', x, w, { k: 4, levels: [-1, 0, 1] });
    const init = qnInit(x, [-1, 0, 1]);
    expect(thresholdSse(x, fit.levels, fit.thresholds, w)).toBeLessThanOrEqual(thresholdSse(x, init.levels, init.thresholds, w));
    // Weighted towards the positive side, the fitted positive level serves the positives better than the negatives' mirror.
    const unweighted = native.quantizer('qn', x, null, { k: 4, levels: [-1, 0, 1] });
    expect(thresholdSse(x, fit.levels, fit.thresholds, w)).toBeLessThanOrEqual(thresholdSse(x, unweighted.levels, unweighted.thresholds, w) * (1 + 1e-12));
    const one = native.quantizer('qn', x, null, { k: 4, levels: [-1, 0, 1], threads: 1 });
    const three = native.quantizer('qn', x, null, { k: 4, levels: [-1, 0, 1], threads: 3 });
    expect(Array.from(three.levels)).toEqual(Array.from(one.levels));
    expect(Array.from(three.thresholds)).toEqual(Array.from(one.thresholds));
  });
});

// ---- the calibrated fit (layer-output error) and --method qn end to end ----
/** tr((W − Ŵ) H (W − Ŵ)ᵀ) in F64. */
function outputError(w: ArrayLike<number>, wh: ArrayLike<number>, h: ArrayLike<number>, rows: number, m: number): number {
  let s = 0;
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < m; i++) {
      const ei = w[r * m + i] - wh[r * m + i];
      if (ei === 0) continue;
      for (let j = 0; j < m; j++) s += ei * h[i * m + j] * (w[r * m + j] - wh[r * m + j]);
    }
  return s;
}

describe('qn with calibration', () => {
  const rows = 12, m = 24;
  const r = mulberry32(41);
  const w = Float64Array.from(gaussian(rows * m, 42), (v) => 0.05 * v);
  // Correlated inputs: x = A z, so H = Σ x xᵀ is far from diagonal.
  const A = Array.from({ length: m * m }, () => r() - 0.5);
  const xs = Array.from({ length: 200 }, () => {
    const z = Array.from({ length: m }, () => r() - 0.5);
    return Array.from({ length: m }, (_, i) => z.reduce((s, zj, j) => s + A[i * m + j] * zj, 0) + (i % 3 === 0 ? 2 : 0));
  });
  const h = new Float64Array(m * m);
  for (const x of xs) for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) h[i * m + j] += x[i] * x[j];
  const input = join(tmp.dir, 'mlp.safetensors');
  const cal = join(tmp.dir, 'cal.safetensors');
  writeSafetensors(input, [{ name: 'fc.weight', dtype: 'F32', shape: [rows, m], data: encode(w, 'F32') }]);
  writeSafetensors(cal, [{ name: 'fc', dtype: 'F32', shape: [m, m], data: encode(h, 'F32') }]);
  const hf = Float32Array.from(h);
  const w32 = Float32Array.from(w);

  it.each(['tensor', 'row'] as const)('granularity %s: the stored result is the fit, no worse than its initialisation under tr((W−Ŵ)H(W−Ŵ)ᵀ)', async (granularity) => {
    const out = join(tmp.dir, `q-${granularity}.safetensors`);
    const dec = join(tmp.dir, `d-${granularity}.safetensors`);
    const progress: number[] = [];
    await quantize(input, out, { method: 'qn', levels: 'ternary', granularity, calibration: cal, epochs: 8, minElements: 1, onProgress: (p) => p.within && progress.push(p.within.done) });
    await decode(out, dec);
    const wh = decodeBytes(readSafetensors(dec).tensor('fc.weight'), 'F32');
    const scheme = JSON.parse(readSafetensors(out).metadata.weightpress).tensors['fc.weight'];
    const cal0 = scheme.params.calibration;
    expect(cal0.objective).toBe('calibration');
    const z = outputError(w32, new Float64Array(rows * m), hf, rows, m);
    // The recorded objective is the decoded checkpoint's output error (computed here independently).
    expect(close(outputError(w32, wh, hf, rows, m) / z, cal0.finalObjective, 1e-4)).toBe(true);
    expect(cal0.finalObjective).toBeLessThanOrEqual(cal0.initObjective);
    // The initialisation is the paper's: check its objective here from qnInit of each slice.
    let e0 = 0;
    const per = granularity === 'row' ? m : rows * m;
    for (let s = 0; s < (rows * m) / per; s++) {
      const sl = w32.subarray(s * per, (s + 1) * per);
      const f = qnInit(Float64Array.from(sl), [-1, 0, 1]);
      const q = new Float64Array(per);
      sl.forEach((v, i) => {
        let j = 0;
        while (j < f.thresholds.length && v > f.thresholds[j]) j++;
        q[i] = f.levels[j];
      });
      const whole = Float64Array.from(w32);
      whole.set(q, s * per);
      e0 += outputError(w32, whole, hf, rows, m);
    }
    if (granularity === 'tensor') expect(close(e0 / z, cal0.initObjective, 1e-4)).toBe(true);
    // Progress within the tensor: the fit's epochs (all 8 reported), then the slices' assignment.
    expect(progress).toContain(8);
  });

  it('the calibrated fit is deterministic for any thread count, and lowers the output error below the weight-error fit', async () => {
    const native = loadNative();
    const run = async (threads: number) => {
      const latent = new Float32Array(rows * m);
      const res = await native.qnFitCalibrated(w32, hf, { rows, inFeatures: m, rowsPerSlice: rows, levels: [-1, 0, 1], epochs: 10, threads }, latent);
      return { latent, res };
    };
    const a = await run(1);
    const b = await run(3);
    expect(Buffer.from(b.latent.buffer).equals(Buffer.from(a.latent.buffer))).toBe(true);
    expect(b.res.objective).toBe(a.res.objective);
    expect(a.res.history.map((e) => e.temperature)).toEqual(Array.from({ length: 10 }, (_, e) => 10 + 10 * e));
    // Against the weight-error fit of the same tensor (one function, ternary), measured under H here.
    const wf = native.quantizer('qn', Float64Array.from(w32), null, { k: 4, levels: [-1, 0, 1] });
    const wq = Float64Array.from(w32, (v) => {
      let j = 0;
      while (j < wf.thresholds.length && v > wf.thresholds[j]) j++;
      return wf.levels[j];
    });
    const z = outputError(w32, new Float64Array(rows * m), hf, rows, m);
    expect(a.res.objective).toBeLessThan(outputError(w32, wq, hf, rows, m) / z);
  });

  it('refuses group granularity with calibration, levels that do not fit the bits, and a bad level list; cancels', async () => {
    const out = join(tmp.dir, 'never.safetensors');
    const err = async (o: object) => (await quantize(input, out, { method: 'qn', minElements: 1, ...o }).catch((e: unknown) => e)) as WeightpressError;
    expect((await err({ calibration: cal, granularity: 'group' })).message).toMatch(/granularity tensor or row/);
    expect((await err({ levels: '-4,-2,-1,0,1,2,4', bits: 2 })).message).toMatch(/7 levels do not fit in 2 bits/);
    expect((await err({ levels: '1,0,-1' })).code).toBe('E_ARGUMENT');
    expect((await err({ levels: 'ternary', granularity: 'row', method: 'kmeans' })).message).toMatch(/levels/);
    const ac = new AbortController();
    const e = await err({ calibration: cal, epochs: 100000, signal: ac.signal, onProgress: () => ac.abort() });
    expect(e.code).toBe('E_CANCELLED');
    expect(existsSync(out)).toBe(false);
  });
});
