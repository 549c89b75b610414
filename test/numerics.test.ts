/**
 * Numerical range (issue 10), as properties over every registered codec, slicing and method:
 *  - scale equivariance: quantizing c*x with c = 2^k gives the same codes and stored scales, and levels exactly c
 *    times those of x (powers of two are exact in floating point);
 *  - a slice's SQNR is never below min-max uniform quantization of the same slice at the same bits (computed here);
 *  - inputs rebuilt by seeded generators from real failures ("dead" rows of 1e-33..1e-29 weights with tiny
 *    outliers) quantize with every method and never give inf, NaN or all-zero slices.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, quantize, type QuantizeOptions } from '../lib/index.js';
import { CODECS, QUANTIZING_CODECS } from '../lib/codecs/registry.js';
import { METHODS, codecsFor, type MethodName } from '../lib/methods/registry.js';
import { codecOptions } from './codec-options.js';
import { decodeBytes, encode, fromBf16, fromF16, gaussian, mulberry32, readSafetensors, rewriteMetadata, tempDir, toBf16, toF16, unpackCodes, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let serial = 0;
const fresh = (tag: string) => join(tmp.dir, `${tag}-${serial++}.safetensors`);

const BITS = 3;

/** Options a method needs to run at all (a rate, importance, a target count of values). */
function methodOptions(method: string, imp: string, bits = BITS): QuantizeOptions {
  if (method.startsWith('ecsq')) return { rate: 2 };
  if (method === 'qn') return { epochs: 3 } as QuantizeOptions;
  if (method === 'hessian-kmeans') return { importance: imp };
  if (method.startsWith('sparse-')) return { targetValues: 2 ** bits, ...(method === 'sparse-l1l2' ? { lambda2: 0.01 } : {}) };
  return {};
}

/**
 * Every way a registered codec slices a tensor: the values of its enum options that choose the slices
 * ('granularity', 'table'), one configuration per value ('block' granularity is the deprecated spelling of the
 * block codec, covered as that codec).
 */
function slicings(): { name: string; opts: QuantizeOptions }[] {
  const out: { name: string; opts: QuantizeOptions }[] = [];
  for (const name of QUANTIZING_CODECS) {
    const codec = CODECS.find((c) => c.name === name)!;
    const slicing = (codec.options ?? []).filter((s) => s.type === 'enum' && (s.name === 'granularity' || s.name === 'table'));
    if (!slicing.length) out.push({ name, opts: { codec: name } });
    for (const s of slicing)
      for (const v of s.values!) {
        if (s.name === 'granularity' && v === 'block') continue;
        out.push({ name: `${name}/${s.name}=${v}`, opts: { codec: name, [s.name]: v, ...(v === 'group' ? { groupSize: 32 } : {}) } as QuantizeOptions });
      }
  }
  return out;
}
const SLICINGS = slicings();

/** The registered methods a slicing's codec stores (codecsFor: the vector codec stores pq and lr2vq only). */
function methodsFor(sl: { opts: QuantizeOptions }): MethodName[] {
  return METHODS.filter((m) => codecsFor(m, QUANTIZING_CODECS).includes(sl.opts.codec ?? 'scalar')).map((m) => m.name as MethodName);
}

/** A job's options for its method: a method with its own codec takes codebook sizes (codecOptions) instead of bits. */
function forMethod(o: QuantizeOptions): QuantizeOptions {
  const entry = METHODS.find((m) => m.name === o.method);
  if (!entry || !('codec' in entry) || entry.codec === undefined) return o;
  const { bits: _bits, ...rest } = o;
  return { ...rest, ...codecOptions(entry.codec) };
}

function writeOne(path: string, x: ArrayLike<number>, shape: number[], dtype: 'F32' | 'F16' | 'BF16' = 'F32'): void {
  writeSafetensors(path, [{ name: 'w', dtype, shape, data: encode(x, dtype) }]);
}

/** The stored tensors of 'w' in a weightpress file: U8 tensors as bytes, float tensors as numbers. */
function stored(path: string) {
  const f = readSafetensors(path);
  const scheme = JSON.parse(f.metadata.weightpress).tensors.w;
  expect(scheme.method, 'the tensor was quantized').not.toBe('keep');
  const bytes: Record<string, Buffer> = {};
  const floats: Record<string, Float64Array> = {};
  for (const [name, e] of Object.entries(f.header)) {
    if (!name.startsWith('w.')) continue;
    if (e.dtype === 'U8') bytes[name] = Buffer.from(f.tensor(name));
    else floats[name] = decodeBytes(f.tensor(name), e.dtype);
  }
  // Row offsets are F16 codes times a power of two (docs/FORMAT.md "Row offsets"): compare the offsets themselves.
  if (scheme.rowOffsetScale !== undefined) floats[scheme.rowOffset] = floats[scheme.rowOffset].map((v) => v * scheme.rowOffsetScale);
  return { scheme, bytes, floats };
}

async function dense(path: string): Promise<Float64Array> {
  const d = path + '.dense.safetensors';
  await decode(path, d, { dtype: 'F32' });
  return decodeBytes(readSafetensors(d).tensor('w'), 'F32');
}

/**
 * SQNR (dB) of min-max uniform quantization with 2^bits levels over [min, max], nearest level; `withZero`: over
 * [min(x, 0), max(x, 0)] with 0 on the grid (an integer zero point: the peer of a codec whose levels always include
 * 0, Codec.zeroLevel).
 */
function minmaxSqnr(x: ArrayLike<number>, bits: number, withZero = false): number {
  let lo = withZero ? 0 : Infinity,
    hi = withZero ? 0 : -Infinity,
    sig = 0;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
    sig += x[i] * x[i];
  }
  let step = (hi - lo) / (2 ** bits - 1);
  // withZero: 0 on the grid too (an integer zero point), levels (k - z) step, the step rounded to 11 significant
  // bits (the int codec's F16 scales, or its F32 fallback of F16 precision).
  if (withZero && step > 0) {
    const m = 2 ** Math.floor(Math.log2(step));
    step = (Math.round((step / m) * 1024) / 1024) * m;
  }
  const z = withZero && step > 0 ? Math.min(2 ** bits - 1, Math.max(0, Math.round(-lo / step))) : 0;
  const base = withZero ? -z * step : lo;
  let sse = 0;
  for (let i = 0; i < x.length; i++) {
    const q = step > 0 ? base + Math.min(2 ** bits - 1, Math.max(0, Math.round((x[i] - base) / step))) * step : lo;
    sse += (x[i] - q) ** 2;
  }
  return 10 * Math.log10(sig / sse);
}
function sqnr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let sig = 0,
    sse = 0;
  for (let i = 0; i < x.length; i++) {
    sig += x[i] * x[i];
    sse += (x[i] - y[i]) ** 2;
  }
  return 10 * Math.log10(sig / sse);
}

// A weight matrix with unequal rows and a few outliers; no magnitude below 2^-20, so that c*x stays a normal F32
// for every c used here (exactness of the scaled input itself).
const ROWS = 8,
  COLS = 64;
const rnd = mulberry32(10);
const X = Float64Array.from(gaussian(ROWS * COLS, 11), (v, i) => {
  const y = Math.fround(v * 0.05 * (1 + Math.floor(i / COLS) / 4) * (rnd() < 0.03 ? 8 : 1));
  return Math.abs(y) < 2 ** -20 ? 2 ** -20 : y;
});
const IMP = join(tmp.dir, 'imp.safetensors');
writeSafetensors(IMP, [
  {
    name: 'w',
    dtype: 'F32',
    shape: [ROWS, COLS],
    data: encode(
      Array.from({ length: ROWS * COLS }, () => 0.25 + rnd()),
      'F32',
    ),
  },
]);

/** Equal bytes up to trailing zero padding (the shorter one's length; the longer one's extra bytes all zero). */
function samePadded(a: Buffer, b: Buffer): boolean {
  const n = Math.min(a.length, b.length);
  if (!a.subarray(0, n).equals(b.subarray(0, n))) return false;
  return [a, b].every((x) => x.subarray(n).every((v) => v === 0));
}

describe('scale equivariance: c*x for c = 2^k gives the same codes and c times the levels', () => {
  for (const sl of SLICINGS) {
    it.each(methodsFor(sl))(`${sl.name}, method %s`, async (method) => {
      // F32 codebooks: with the default F16 ones, scales beyond F16's range fall back to F32 levels that are not the
      // F16-rounded levels of the unscaled run (equivariance holds within one codebook dtype).
      const takesDtype = (CODECS.find((c) => c.name === (sl.opts.codec ?? 'scalar'))!.options ?? []).some((s) => s.name === 'codebookDtype');
      const f32 = takesDtype ? { codebookDtype: 'F32' as const } : {};
      const opts: QuantizeOptions = forMethod({ ...sl.opts, method, bits: BITS, entropy: 'none', include: ['w'], ...f32, ...methodOptions(method, IMP) });
      const base = fresh('eq');
      writeOne(base, X, [ROWS, COLS]);
      await quantize(base, base + '.q', opts);
      const ref = stored(base + '.q');
      for (const k of [-100, -60, -20, 20, 60]) {
        const c = 2 ** k;
        const p = fresh('eq');
        writeOne(
          p,
          Array.from(X, (v) => v * c),
          [ROWS, COLS],
        );
        await quantize(p, p + '.q', opts);
        const got = stored(p + '.q');
        // Codes are compared up to their padding: a documented fallback to wider scales (int: F32 instead of F16)
        // moves the 8-byte alignment of what follows, so the zero padding after the codes may differ in length.
        for (const [name, b] of Object.entries(ref.bytes)) expect(samePadded(got.bytes[name], b), `${name} at c = 2^${k}`).toBe(true);
        for (const [name, v] of Object.entries(ref.floats)) expect(Array.from(got.floats[name]), `${name} at c = 2^${k}`).toEqual(Array.from(v, (y) => y * c));
      }
    });
  }
});

/**
 * A "dead" output row as found in a real checkpoint: 1024 weights of magnitude 10^U(-33,-29), both signs, plus a
 * few outliers (-4.2e-19, 1.8e-12, some of 10^U(-23,-21)); here beside ordinary rows.
 */
function deadRows(seed: number, rows: number, cols: number): Float64Array {
  const r = mulberry32(seed);
  const g = gaussian(rows * cols, seed + 1);
  const x = new Float64Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    const b = row * cols;
    if (row % 2 === 0) {
      for (let i = 0; i < cols; i++) x[b + i] = Math.fround(g[b + i] * 0.02);
      continue;
    }
    for (let i = 0; i < cols; i++) x[b + i] = Math.fround((r() < 0.5 ? -1 : 1) * 10 ** (-33 + 4 * r()));
    x[b + 3] = Math.fround(-4.2e-19);
    x[b + 100] = Math.fround(1.8e-12);
    for (const i of [5, 50, 500, 900]) x[b + i] = Math.fround((r() < 0.5 ? -1 : 1) * 10 ** (-23 + 2 * r()));
  }
  return x;
}

describe('dead rows (1e-33..1e-29 with tiny outliers): every method and slicing quantizes them, never below min-max uniform', () => {
  const rows = 4,
    cols = 1024;
  const x = deadRows(5, rows, cols);
  const imp = join(tmp.dir, 'dead-imp.safetensors');
  writeSafetensors(imp, [{ name: 'w', dtype: 'F32', shape: [rows, cols], data: encode(new Float64Array(rows * cols).fill(1), 'F32') }]);
  for (const dtype of ['F32', 'BF16'] as const) {
    for (const sl of SLICINGS) {
      it.each(methodsFor(sl))(`${dtype} ${sl.name}, method %s`, async (method) => {
        const p = fresh('dead');
        writeOne(p, x, [rows, cols], dtype);
        const xs = decodeBytes(encode(x, dtype), dtype);
        const mo = methodOptions(method, imp, 4);
        const rep = await quantize(p, p + '.q', forMethod({ ...sl.opts, method, bits: 4, include: ['w'], ...mo }));
        const y = await dense(p + '.q');
        for (const v of y) expect(Number.isFinite(v)).toBe(true);
        const t = rep.tensors.find((q) => q.name === 'w')!;
        expect(t.sqnrDb).not.toBeNull();
        // Per slice that owns its levels (a row or group codebook, a row's table; else the whole tensor): never below
        // min-max uniform of that slice at the same bits (an ECSQ method at its rate: fixed-rate uniform with
        // 2^floor(rate) levels has at most that entropy), except for methods whose objective adds a shrinking penalty
        // or a fixed grid (declared in the registry).
        const distortion = (METHODS.find((m) => m.name === method)!.objective ?? 'distortion') === 'distortion';
        // A vector method at 16 codewords for 4 weights spends 1 bit per weight: min-max uniform at 1 bit is its peer.
        const vector = !!(METHODS.find((m) => m.name === method) as { codec?: string }).codec;
        const bits = method.startsWith('ecsq') ? Math.floor(mo.rate!) : vector ? 1 : 4;
        const len = stored(p + '.q').scheme.sliceSize as number; // the slicing used (a coarser one may replace the asked)
        for (let a = 0; a < rows * cols; a += len) {
          const xr = xs.subarray(a, a + len),
            yr = y.subarray(a, a + len);
          // Other objectives: still never worse than storing zeros.
          const zero = !!CODECS.find((c) => c.name === (sl.opts.codec ?? 'scalar'))!.zeroLevel;
          expect(sqnr(xr, yr), `slice at ${a}`).toBeGreaterThanOrEqual(distortion ? minmaxSqnr(xr, bits, zero) - 1e-9 : 1e-9);
        }
      });
    }
  }
});

/** Codecs with an F16 codebook option, and the slicings of those codecs. */
const F16_SLICINGS = SLICINGS.filter((sl) =>
  (CODECS.find((c) => c.name === sl.opts.codec)!.options ?? []).some((s) => s.name === 'codebookDtype' && s.values?.includes('F16')),
);

describe('F16 codebooks: exactly scaled while the levels fit F16, else F32 codebooks with a warning; never inf, NaN or zeros', () => {
  for (const sl of F16_SLICINGS) {
    it.each(methodsFor(sl))(`${sl.name}, method %s`, async (method) => {
      const opts: QuantizeOptions = forMethod({ ...sl.opts, method, bits: BITS, entropy: 'none', include: ['w'], codebookDtype: 'F16', ...methodOptions(method, IMP) });
      const base = fresh('f16');
      writeOne(base, X, [ROWS, COLS]);
      await quantize(base, base + '.q', opts);
      const ref = stored(base + '.q');
      expect(ref.scheme.codebookDtype).toBe('F16');
      const y0 = await dense(base + '.q');
      for (const k of [-100, -60, -20, 20, 60]) {
        const c = 2 ** k;
        const p = fresh('f16');
        writeOne(
          p,
          Array.from(X, (v) => v * c),
          [ROWS, COLS],
        );
        const rep = await quantize(p, p + '.q', opts);
        const got = stored(p + '.q');
        const y = await dense(p + '.q');
        for (const v of y) expect(Number.isFinite(v)).toBe(true);
        // No row comes back as zeros that does not at c = 1 (F16's range never zeroes a slice).
        for (let r = 0; r < ROWS; r++)
          expect(
            y.subarray(r * COLS, (r + 1) * COLS).some((v) => v !== 0),
            `row ${r} at c = 2^${k}`,
          ).toBe(y0.subarray(r * COLS, (r + 1) * COLS).some((v) => v !== 0));
        if (got.scheme.codebookDtype === 'F16') {
          // Codes are compared up to their padding: a documented fallback to wider scales (int: F32 instead of F16)
        // moves the 8-byte alignment of what follows, so the zero padding after the codes may differ in length.
        for (const [name, b] of Object.entries(ref.bytes)) expect(samePadded(got.bytes[name], b), `${name} at c = 2^${k}`).toBe(true);
          for (const [name, v] of Object.entries(ref.floats))
            expect(Array.from(got.floats[name]), `${name} at c = 2^${k}`).toEqual(Array.from(v, (z) => z * c));
        } else {
          expect(got.scheme.codebookDtype).toBe('F32');
          expect(
            rep.warnings?.some((w) => w.includes('"w"') && w.includes('F32 codebooks')),
            `warning at c = 2^${k}`,
          ).toBe(true);
        }
      }
    });
  }

  it('values near the top of F32 (1e30; a row with one 1.25e5 outlier) with F16 codebooks: F32 codebooks, a warning, finite metrics, inspect works', async () => {
    const { inspect } = await import('../lib/index.js');
    const g = gaussian(4 * 64, 3);
    for (const x of [Float64Array.from(g, (v) => v * 1e30), Float64Array.from(g, (v, i) => (i === 70 ? 1.25e5 : v * 0.1))]) {
      const p = fresh('top');
      writeOne(p, x, [4, 64]);
      const rep = await quantize(p, p + '.q', { codebookDtype: 'F16', include: ['w'] });
      expect(rep.warnings?.some((w) => w.includes('F32 codebooks'))).toBe(true);
      const t = rep.tensors.find((q) => q.name === 'w')!;
      expect(Number.isFinite(t.mse) && Number.isFinite(t.sqnrDb!) && t.sqnrDb! > 10).toBe(true);
      const again = await inspect(p + '.q');
      expect(again.tensors.find((q) => q.name === 'w')!.mse).toBe(t.mse);
      for (const v of await dense(p + '.q')) expect(Number.isFinite(v)).toBe(true);
    }
  });
});

describe('decode to F16/BF16: a value beyond the dtype is a typed error unless allowOverflow (then saturated and counted)', () => {
  const x = Float64Array.from(gaussian(8 * 64, 21), (v, i) => (i % 50 === 0 ? 1e5 * Math.sign(v || 1) : v * 0.1));
  for (const codec of [...QUANTIZING_CODECS, 'keep'] as const) {
    it(`codec ${codec}`, async () => {
      const p = fresh('ovf');
      writeOne(p, x, [8, 64]);
      await quantize(p, p + '.q', codec === 'keep' ? { exclude: ['w'] } : { codec, ...(codec === 'vector' ? codecOptions(codec) : { ...codecOptions(codec), bits: 4 }), include: ['w'] });
      const ref = await dense(p + '.q'); // F32: the values an F16 output must hold
      const over = Array.from(ref).filter((v) => Math.abs(v) >= 65520).length; // rounds to inf in F16
      expect(over).toBeGreaterThan(0);
      await expect(decode(p + '.q', p + '.f16', { dtype: 'F16' })).rejects.toMatchObject({ code: 'E_RANGE', tensor: 'w' });
      const r = await decode(p + '.q', p + '.f16', { dtype: 'F16', allowOverflow: true });
      expect(r.saturated).toBe(over);
      expect(r.warnings.some((w) => w.includes(`${over} values`))).toBe(true);
      const y = decodeBytes(readSafetensors(p + '.f16').tensor('w'), 'F16');
      for (let i = 0; i < y.length; i++)
        expect(y[i]).toBe(Math.abs(ref[i]) >= 65520 ? Math.sign(ref[i]) * 65504 : decodeBytes(encode([ref[i]], 'F16'), 'F16')[0]);
    });
  }

  it('the CLI prints one E_RANGE line and exits non-zero; --allow-overflow says how many were saturated', async () => {
    const { spawnSync } = await import('node:child_process');
    const p = fresh('ovf-cli');
    writeOne(p, x, [8, 64]);
    await quantize(p, p + '.q', { include: ['w'] });
    const cli = join(__dirname, '..', 'dist', 'cli.js');
    const a = spawnSync(process.execPath, [cli, 'decode', p + '.q', '-o', p + '.f16', '--dtype', 'f16', '--quiet'], { encoding: 'utf8' });
    expect(a.status).not.toBe(0);
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    expect(a.stderr).toMatch(/E_RANGE .*tensor "w".*F16/);
    const b = spawnSync(process.execPath, [cli, 'decode', p + '.q', '-o', p + '.f16', '--dtype', 'f16', '--allow-overflow', '--quiet'], { encoding: 'utf8' });
    expect(b.status).toBe(0);
    expect(b.stderr).toMatch(/tensor "w": \d+ values beyond F16's range saturated/);
  });
});

describe('degenerate shapes: never larger than keeping the tensor; a 1-D tensor is one row', () => {
  const shapes: { shape: number[]; dtype: 'F32' | 'F16' | 'BF16' }[] = [
    { shape: [40, 7], dtype: 'F16' }, // rows of 7: per-row codebooks would take 77 bits per weight
    { shape: [3], dtype: 'BF16' }, // smaller than any codebook
    { shape: [2000], dtype: 'F32' }, // 1-D: one row, one codebook
    { shape: [16, 16], dtype: 'F16' }, // a table per 16-weight row
  ];
  for (const sl of SLICINGS) {
    it.each(methodsFor(sl))(`${sl.name}, method %s`, async (method) => {
      for (const { shape, dtype } of shapes) {
        const n = shape.reduce((a, b) => a * b, 1);
        const p = fresh('deg');
        const imp = p + '.imp.safetensors';
        writeSafetensors(imp, [{ name: 'w', dtype: 'F32', shape, data: encode(new Float64Array(n).fill(1), 'F32') }]);
        writeOne(
          p,
          Float64Array.from(gaussian(n, n), (v) => v * 0.1),
          shape,
          dtype,
        );
        const rep = await quantize(p, p + '.q', forMethod({ ...sl.opts, method, include: ['*'], ...methodOptions(method, imp, 4), bits: 4 }));
        const t = rep.tensors.find((q) => q.name === 'w')!;
        const srcBits = dtype === 'F32' ? 32 : 16;
        expect(t.bitsPerWeight, `${JSON.stringify(shape)} ${dtype}`).toBeLessThanOrEqual(srcBits);
        const asked = sl.opts.codec === 'block' ? 'block' : sl.opts.codec === 'vector' ? 'tensor' : (sl.opts as { granularity?: string }).granularity;
        if (t.method === 'keep' || t.granularity !== asked)
          expect(
            rep.warnings?.some((w) => w.includes('"w"')),
            `a warning names the tensor (${JSON.stringify(shape)})`,
          ).toBe(true);
        if (shape.length === 1 && n === 2000 && (sl.opts as { granularity?: string }).granularity === 'row') {
          const s = stored(p + '.q').scheme;
          expect(s.slices).toBe(1);
        }
      }
    });
  }
});

describe('memory: a large 1-D tensor stays within 2x its size for every codec', () => {
  // The vector codec works on F32 copies of the tensor (its subvectors, their weights): about 4x a 16-bit tensor.
  // Its memory is bounded per tensor but not within 2x; see the closing note of issue 13.
  it.each(QUANTIZING_CODECS.filter((c) => c !== 'vector'))(
    'codec %s',
    async (codec) => {
      const { execFileSync } = await import('node:child_process');
      const { writeFileSync } = await import('node:fs');
      // 8 MB of F16 (the reported case: 5e7 F16 weights, where one codebook per element took 3.2 GB on disk and
      // 16 GB of memory). (An F32 slice of millions of distinct values is another matter: the exact DP keeps
      // k x m back-pointers; see bench/RESULTS.md, issue 10.)
      const n = 4_000_000;
      const p = fresh('mem');
      writeOne(
        p,
        Float64Array.from(gaussian(n, 3), (v) => v * 0.05),
        [n],
        'F16',
      );
      const small = fresh('mem-small');
      writeOne(small, gaussian(4096, 4), [64, 64]);
      const script = p + '.mjs';
      // The child warms up on a small tensor (addon loaded, threads started), then reports its peak RSS before and
      // after the large one (ru_maxrss, KiB).
      writeFileSync(
        script,
        `import { quantize } from ${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))};
       const o = ${JSON.stringify({ codec, include: ['*'], ...codecOptions(codec), bits: undefined })};
       await quantize(${JSON.stringify(small)}, ${JSON.stringify(small + '.q')}, o);
       const before = process.resourceUsage().maxRSS;
       await quantize(${JSON.stringify(p)}, ${JSON.stringify(p + '.q')}, o);
       console.log(JSON.stringify({ before, after: process.resourceUsage().maxRSS }));`,
      );
      const { before, after } = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' }).trim().split('\n').pop()!);
      // Row offsets (--preserve-mean, on by default for the block codec) decode the tensor to F32 in memory to take
      // its row sums: 4 bytes per weight more, 2x a 16-bit tensor (a known excess, docs/FORMAT.md "Row offsets").
      const offsets = codec === 'block' ? 4 * n : 0;
      expect((after - before) * 1024).toBeLessThanOrEqual(2 * n * 2 + offsets);
    },
    120_000,
  );
});

describe('an importance file that is zero for a tensor: uniform weights in every codec (as for a zero slice)', () => {
  for (const sl of SLICINGS) {
    it.each(methodsFor(sl))(`${sl.name}, method %s`, async (method) => {
      const p = fresh('zimp');
      writeOne(p, X, [ROWS, COLS]);
      const out: Buffer[] = [];
      for (const fill of [0, 1]) {
        const imp = p + `.imp${fill}.safetensors`;
        writeSafetensors(imp, [{ name: 'w', dtype: 'F32', shape: [ROWS, COLS], data: encode(new Float64Array(ROWS * COLS).fill(fill), 'F32') }]);
        const { importance: _i, ...mo } = methodOptions(method, imp);
        const rep = await quantize(p, p + `.q${fill}`, forMethod({ ...sl.opts, method, bits: BITS, entropy: 'none', include: ['w'], ...mo, importance: imp }));
        if (fill === 0) expect(rep.warnings?.some((w) => w.includes('"w"') && w.includes('zero everywhere'))).toBe(true);
        const f = readSafetensors(p + `.q${fill}`);
        out.push(
          Buffer.concat(
            Object.keys(f.header)
              .filter((k) => k.startsWith('w.'))
              .sort()
              .map((k) => Buffer.from(f.tensor(k))),
          ),
        );
      }
      expect(out[0].equals(out[1])).toBe(true);
    });
  }
});

describe('block format, --table row, rows of 4544 (a multiple of 16, not of the 256-weight super-block)', () => {
  it('falls back per row naming the super-block and the --double-quant that fits', async () => {
    const p = fresh('sb');
    writeOne(p, gaussian(4 * 4544, 8), [4, 4544]);
    const rep = await quantize(p, p + '.q', { codec: 'block', table: 'row', include: ['w'] });
    expect(rep.warnings?.find((w) => w.includes('"w"'))).toMatch(/super-block 256 .*--double-quant 6\/64/);
    const fit = await quantize(p, p + '.q2', { codec: 'block', table: 'row', doubleQuant: { bits: 6, superBlock: 64 }, include: ['w'] });
    expect(fit.tensors.find((t) => t.name === 'w')!.granularity).toBe('block');
  });
});

// Issue 10 §4: rows of 216 (movenet-thunder's 3x3 convolutions over 24 channels) are not a multiple of the 16-weight
// block; with one table per tensor the blocks run over the flattened tensor instead of falling back per row.
describe('block format, rows not a multiple of the block size', () => {
  it('blocks span rows (block.cols = numel, version 2); the decode is the documented x̂[i] = s_⌊i/B⌋ T[code[i]]', async () => {
    const p = fresh('span');
    const x = Float64Array.from(gaussian(32 * 216, 12), (v, i) => v * 0.03 * (1 + (Math.floor(i / 216) % 4)));
    writeOne(p, x, [32, 24, 3, 3]);
    const rep = await quantize(p, p + '.q', { codec: 'block', include: ['w'], preserveMean: 'off' });
    expect(rep.warnings ?? []).toEqual([]);
    const t = rep.tensors.find((q) => q.name === 'w')!;
    expect(t.granularity).toBe('block');
    const f = readSafetensors(p + '.q');
    const sc = JSON.parse(f.metadata.weightpress);
    expect(sc.version).toBe(2);
    expect(sc.tensors.w.block.cols).toBe(32 * 216);
    // Reference decode from docs/BLOCK.md: 6-bit scale codes under an F16 super-scale per 256 weights, one table.
    const s = sc.tensors.w, n = x.length, B = 16, nb = n / B, bps = 256 / B, nsb = Math.ceil(nb / bps);
    const raw = f.tensor(s.scales);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const c = unpackCodes(raw.subarray(Math.ceil((nsb * 2) / 8) * 8), nb, 6);
    const T = decodeBytes(f.tensor(s.codebook), 'F32');
    const codes = unpackCodes(f.tensor(s.codes), n, 4);
    const want = Array.from({ length: n }, (_, i) => {
      const b = Math.floor(i / B);
      return Math.fround(Math.fround(fromF16(dv.getUint16(2 * Math.floor(b / bps), true)) * (c[b] - 32)) * T[codes[i]]);
    });
    await decode(p + '.q', p + '.d', { dtype: 'F32' });
    expect(Array.from(decodeBytes(readSafetensors(p + '.d').tensor('w'), 'F32'))).toEqual(want);
    // The sizes of a tensor whose rows the blocks tile: codes, 6-bit scale codes and F16 super-scales (each padded
    // to 8 bytes), one F32 table.
    const pad8 = (b: number) => Math.ceil(b / 8) * 8;
    expect(t.bitsPerWeight).toBeCloseTo((8 * (pad8(n / 2) + pad8(2 * nsb) + pad8((nb * 6) / 8) + 64)) / n, 9);
    // A file without such entries stays version 1 (readable by older readers).
    const q1 = await quantize(p, p + '.q1', { codec: 'block', include: ['w'], preserveMean: 'off', blockSize: 8, doubleQuant: { bits: 6, superBlock: 64 } });
    expect(q1.tensors.find((q) => q.name === 'w')!.granularity).toBe('block');
    expect(JSON.parse(readSafetensors(p + '.q1').metadata.weightpress).version).toBe(1);
  });

  it('row offsets are added in F32, then rounded once to the output dtype (decode --dtype F16 / BF16)', async () => {
    const p = fresh('meandt');
    writeOne(p, Float64Array.from(gaussian(16 * 256, 14), (v) => 0.02 * v + 0.01), [16, 256]);
    await quantize(p, p + '.q', { codec: 'block', include: ['w'] });
    await decode(p + '.q', p + '.f32', { dtype: 'F32' });
    const want = decodeBytes(readSafetensors(p + '.f32').tensor('w'), 'F32');
    for (const [dt, round] of [['F16', (v: number) => fromF16(toF16(v))], ['BF16', (v: number) => fromBf16(toBf16(v))]] as const) {
      await decode(p + '.q', p + '.' + dt, { dtype: dt });
      expect(Array.from(decodeBytes(readSafetensors(p + '.' + dt).tensor('w'), dt))).toEqual(Array.from(want, round));
    }
  });

  it('a version-1 file cannot claim version-2 fields', async () => {
    const p = fresh('span1');
    writeOne(p, gaussian(32 * 216, 13), [32, 216]);
    await quantize(p, p + '.q', { codec: 'block', include: ['w'] });
    const f = readSafetensors(p + '.q');
    const sc = JSON.parse(f.metadata.weightpress);
    expect(sc.tensors.w.rowOffset).toBe('w.__wp_row_offset');
    sc.version = 1;
    const { DIGEST_KEY, schemeDigest } = await import('../lib/format.js');
    const bad = p + '.v1';
    rewriteMetadata(p + '.q', bad, (m) => ({ ...m, weightpress: JSON.stringify(sc), [DIGEST_KEY]: schemeDigest(JSON.stringify(sc)) }));
    await expect(decode(bad, bad + '.d')).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/version 1 cannot hold row offsets/) });
  });
});

// With importance the solvers still target the importance-weighted entropy; the codec's feedback on the written
// rate narrows the miss but cannot close it where the reachable rates jump (issue 10 §3, left open: the solvers
// need the counts beside the weights). So this property covers the unweighted case.
describe('rate targets: the written bits per weight land within 2 % of --rate', () => {
  // The vector methods' rate is the indices' entropy (entropy-constrained VQ), codebooks not counted: tested in
  // test/vector.test.ts against D(R) instead.
  const RATE_METHODS = METHODS.filter((m) => m.options.some((s) => s.name === 'rate') && !('codec' in m && m.codec)).map((m) => m.name);
  const n = 256 * 256;
  const x = Float64Array.from(gaussian(n, 31), (v) => v * 0.05);
  it.each(RATE_METHODS)(
    'method %s',
    async (method) => {
      expect(RATE_METHODS.length).toBeGreaterThan(0);
      const p = fresh('rate');
      writeOne(p, x, [256, 256]);
      for (const rate of [0.5, 1, 2, 4, 6]) {
        const rep = await quantize(p, p + '.q', { method, rate, granularity: 'tensor', include: ['w'] });
        // Every stored byte of the tensor, counted from the file (the test's own reader).
        const f = readSafetensors(p + '.q');
        const bytes = Object.keys(f.header)
          .filter((k) => k.startsWith('w.'))
          .reduce((a, k) => a + f.tensor(k).byteLength, 0);
        const bpw = (bytes * 8) / n;
        expect(Math.abs(bpw / rate - 1), `rate ${rate}: ${bpw}`).toBeLessThanOrEqual(0.02);
        expect(rep.tensors.find((t) => t.name === 'w')!.bitsPerWeight).toBeCloseTo(bpw, 9);
      }
    },
    120_000,
  );
});
