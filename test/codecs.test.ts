/**
 * Every registered codec x every registered method: quantize, then decode with reference decoders written here from
 * the published layouts (docs/FORMAT.md for the scalar, vector and int codecs, docs/BLOCK.md for the block codec), independently of
 * the addon; the library's decode must give the same values bit for bit, the stored metrics must match the
 * reference values, and entropy-coded codes must decode to the same tensor. A new codec or method is covered as soon
 * as it is registered (a codec without a reference decoder here fails, by design).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { DIGEST_KEY, schemeDigest } from '../lib/format.js';
import { decode, quantize, type QuantizeOptions } from '../lib/index.js';
import { QUANTIZING_CODECS } from '../lib/codecs/registry.js';
import { METHODS, codecsFor } from '../lib/methods/registry.js';
import { decodeBytes, encode, fromF16, gaussian, mulberry32, readSafetensors, refInt, tempDir, unpackCodes, writeSafetensors, type ParsedFile } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const input = join(tmp.dir, 'in.safetensors');
const r = mulberry32(4);
const X = Float64Array.from(gaussian(32 * 64, 9), (v, i) => v * 0.02 * (1 + (i % 64) / 64) * (r() < 0.02 ? 6 : 1));
writeSafetensors(input, [
  { name: 'w', dtype: 'F32', shape: [32, 64], data: encode(X, 'F32') },
  { name: 'b', dtype: 'F32', shape: [32], data: encode(X.subarray(0, 32), 'F32') },
]);
const imp = join(tmp.dir, 'imp.safetensors');
writeSafetensors(imp, [{ name: 'w', dtype: 'F32', shape: [32, 64], data: encode(Array.from({ length: 32 * 64 }, () => 0.5 + r()), 'F32') }]);

const fr = Math.fround;

/** Scalar codec (docs/FORMAT.md): x[i] = codebook[floor(i / S)][code(i)]. */
function refScalar(f: ParsedFile, s: any, n: number): Float64Array {
  const codes = unpackCodes(f.tensor(s.codes), n, s.bits);
  const cb = decodeBytes(f.tensor(s.codebook), s.codebookDtype);
  const K = 2 ** s.bits;
  return Float64Array.from({ length: n }, (_, i) => fr(cb[Math.floor(i / s.sliceSize) * K + codes[i]]));
}

/** Block codec (docs/BLOCK.md): x[i] = fl32(s_b * T[g][code(i)]), plain F16 scales or q-bit codes under F16 super-scales. */
function refBlock(f: ParsedFile, s: any, n: number): Float64Array {
  const { blockSize: B, cols, table, doubleQuant } = s.block;
  const K = 2 ** s.bits;
  const nb = n / B;
  const raw = f.tensor(s.scales);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const sc = new Float64Array(nb);
  if (!doubleQuant) for (let b = 0; b < nb; b++) sc[b] = fromF16(dv.getUint16(2 * b, true));
  else {
    const { bits: q, superBlock: S } = doubleQuant;
    const bps = S / B;
    const nsb = Math.ceil(nb / bps);
    const c = unpackCodes(raw.subarray(Math.ceil((nsb * 2) / 8) * 8), nb, q);
    for (let b = 0; b < nb; b++) sc[b] = fr(fromF16(dv.getUint16(2 * Math.floor(b / bps), true)) * (c[b] - 2 ** (q - 1)));
  }
  const T = decodeBytes(f.tensor(s.codebook), 'F32');
  const codes = unpackCodes(f.tensor(s.codes), n, s.bits);
  return Float64Array.from({ length: n }, (_, i) => fr(sc[Math.floor(i / B)] * T[(table === 'row' ? Math.floor(i / cols) : 0) * K + codes[i]]));
}

/** LSB-first indices of `bits` bits (docs/FORMAT.md), any width up to 16. */
function unpackWide(bytes: Uint8Array, n: number, bits: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let b = 0; b < bits; b++) {
      const bit = i * bits + b;
      v |= ((bytes[bit >> 3] >> (bit & 7)) & 1) << b;
    }
    out[i] = v;
  }
  return out;
}

/**
 * Vector codec (docs/FORMAT.md "Vector-quantized tensors"): B[g][c][i] = Σ_j C[g][c][j] · P[j][i] (F32, j ascending;
 * no projection: B = C), x[r][c] = fl32(B[g(r)][code[r][floor(c / M)]][c mod M] · s_r).
 */
function refVector(f: ParsedFile, s: any, n: number): Float64Array {
  const { subvector: M, centroids: K, rank: D, rows, cols, codebookRows, projection, scales } = s.vector;
  const P = Math.ceil(cols / M);
  const codes = unpackWide(f.tensor(s.codes), rows * P, s.bits);
  const C = decodeBytes(f.tensor(s.codebook), s.codebookDtype);
  const proj = projection ? decodeBytes(f.tensor(projection), s.codebookDtype) : undefined;
  const sc = scales ? decodeBytes(f.tensor(scales), f.header[scales].dtype as 'F32' | 'F16') : undefined;
  const groups = Math.ceil(rows / codebookRows);
  const B = new Float64Array(groups * K * M);
  for (let g = 0; g < groups; g++)
    for (let c = 0; c < K; c++)
      for (let i = 0; i < M; i++) {
        let acc = 0;
        if (!proj) acc = C[(g * K + c) * M + i];
        else for (let j = 0; j < D; j++) acc = fr(acc + fr(C[(g * K + c) * D + j] * proj[j * M + i]));
        B[(g * K + c) * M + i] = acc;
      }
  const out = new Float64Array(n);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const v = B[(Math.floor(r / codebookRows) * K + codes[r * P + Math.floor(c / M)]) * M + (c % M)];
      out[r * cols + c] = sc ? fr(v * sc[r]) : v;
    }
  return out;
}

const REFERENCE_CODEC: Record<string, (f: ParsedFile, s: any, n: number) => Float64Array> = { scalar: refScalar, block: refBlock, vector: refVector, int: refInt };

/**
 * Row offsets (docs/FORMAT.md "Row offsets", format version 2): x'[r][c] = fl32(x[r][c] + o[r]), o[r] the [rows]
 * F16/F32 tensor the entry names in rowOffset times rowOffsetScale (a power of two, default 1); rows = shape[0]
 * (a 1-D tensor is one row).
 */
function withRowOffsets(f: ParsedFile, s: any, x: Float64Array): Float64Array {
  if (s.rowOffset === undefined) return x;
  const D = s.rowOffsetScale ?? 1;
  const o = Array.from(decodeBytes(f.tensor(s.rowOffset), s.rowOffsetDtype), (v) => fr(v * D));
  const rows = s.shape.length >= 2 ? s.shape[0] : 1, cols = x.length / rows;
  return Float64Array.from(x, (v, i) => fr(v + o[Math.floor(i / cols)]));
}

const REFERENCE: Record<string, (f: ParsedFile, s: any, n: number) => Float64Array> = Object.fromEntries(
  Object.entries(REFERENCE_CODEC).map(([k, ref]) => [k, (f: ParsedFile, s: any, n: number) => withRowOffsets(f, s, ref(f, s, n))]),
);

function methodOptions(method: string): QuantizeOptions {
  if (method.startsWith('ecsq')) return { rate: 2 };
  if (method === 'pq') return { subvector: 5, centroids: 12, rowScale: true, codebookRows: 20 };
  if (method === 'lr2vq') return { subvector: 4, centroids: 8, rank: 3, codebookDtype: 'F16' };
  if (method === 'hessian-kmeans') return { importance: imp };
  if (method.startsWith('sparse-')) return { targetValues: 6, ...(method === 'sparse-l1l2' ? { lambda2: 0.01 } : {}) };
  return {};
}

describe.each(QUANTIZING_CODECS)('codec %s', (codec) => {
  it.each(METHODS.filter((m) => codecsFor(m, QUANTIZING_CODECS).includes(codec)).map((m) => m.name))('method %s: reference decode = decode, metrics match, entropy coding is lossless', async (method) => {
    const ref = REFERENCE[codec];
    expect(ref, `a reference decoder for codec ${codec} in this test`).toBeDefined();
    const out = join(tmp.dir, `${codec}-${method}.safetensors`);
    const entry = METHODS.find((m) => m.name === method)!;
    const opts: QuantizeOptions = { codec, method, ...('codec' in entry ? {} : { bits: 3 }), entropy: 'none', include: ['w'], ...methodOptions(method) };
    const rep = await quantize(input, out, opts);
    const f = readSafetensors(out);
    const s = JSON.parse(f.metadata.weightpress).tensors.w;
    const n = X.length;
    const want = ref(f, s, n);
    await decode(out, out + '.dense', { dtype: 'F32' });
    const got = decodeBytes(readSafetensors(out + '.dense').tensor('w'), 'F32');
    expect(Array.from(got)).toEqual(Array.from(want));
    const x = decodeBytes(encode(X, 'F32'), 'F32');
    let sse = 0;
    for (let i = 0; i < n; i++) sse += (x[i] - want[i]) ** 2;
    const t = rep.tensors.find((q) => q.name === 'w')!;
    expect(t.mse).toBeCloseTo(sse / n, 14);
    // Bits per weight count every stored byte of the tensor.
    const stored = Object.keys(f.header).filter((k) => k.startsWith('w.__wp_')).reduce((a, k) => a + f.tensor(k).byteLength, 0);
    expect(t.bitsPerWeight).toBeCloseTo((stored * 8) / n, 12);
    // Entropy coding wraps any codec's codes: the same tensor comes back. (A method with a rate re-solves until the
    // written rate meets it, so its coded codes differ: there the decode must match the stored metrics instead.)
    const coded = join(tmp.dir, `${codec}-${method}-ans.safetensors`);
    const repCoded = await quantize(input, coded, { ...opts, entropy: 'ans' });
    await decode(coded, coded + '.dense', { dtype: 'F32' });
    const gotCoded = decodeBytes(readSafetensors(coded + '.dense').tensor('w'), 'F32');
    if (opts.rate === undefined) expect(Array.from(gotCoded)).toEqual(Array.from(want));
    else {
      let sse2 = 0;
      for (let i = 0; i < n; i++) sse2 += (x[i] - gotCoded[i]) ** 2;
      expect(repCoded.tensors.find((q) => q.name === 'w')!.mse).toBeCloseTo(sse2 / n, 14);
    }
  });
});

// Row-mean preservation (issue #10 §4) for every codec and method: with preserveMean 'on', each row's sum of decoded
// weights equals the original's within the rounding of what is stored (the offset's dtype and the F32 sum
// x̂ + o), the reference decode (with offsets) equals the library's, and no weight error grows beyond rounding.
describe.each(QUANTIZING_CODECS)('codec %s, preserveMean on', (codec) => {
  it.each(METHODS.filter((m) => codecsFor(m, QUANTIZING_CODECS).includes(codec)).map((m) => m.name))('method %s: row sums kept, reference decode = decode', async (method) => {
    const entry = METHODS.find((m) => m.name === method)!;
    const base: QuantizeOptions = { codec, method, ...('codec' in entry ? {} : { bits: 3 }), entropy: 'none', include: ['w'], ...methodOptions(method) };
    const on = join(tmp.dir, `${codec}-${method}-mean.safetensors`), off = join(tmp.dir, `${codec}-${method}-nomean.safetensors`);
    const repOn = await quantize(input, on, { ...base, preserveMean: 'on' });
    const repOff = await quantize(input, off, { ...base, preserveMean: 'off' });
    const f = readSafetensors(on), fOff = readSafetensors(off);
    const sc = JSON.parse(f.metadata.weightpress);
    const s = sc.tensors.w;
    expect(sc.version).toBe(2);
    expect(JSON.parse(fOff.metadata.weightpress).tensors.w.rowOffset).toBeUndefined();
    expect(s.rowOffset).toBe('w.__wp_row_offset');
    const n = X.length, rows = 32, cols = 64;
    const want = REFERENCE[codec](f, s, n);
    await decode(on, on + '.dense', { dtype: 'F32' });
    const got = decodeBytes(readSafetensors(on + '.dense').tensor('w'), 'F32');
    expect(Array.from(got)).toEqual(Array.from(want));
    const x = decodeBytes(encode(X, 'F32'), 'F32');
    const o = Array.from(decodeBytes(f.tensor(s.rowOffset), s.rowOffsetDtype), (v) => v * (s.rowOffsetScale ?? 1));
    const eps = s.rowOffsetDtype === 'F16' ? 2 ** -11 : 2 ** -24;
    let sumErrOff = 0;
    const xOff = REFERENCE[codec](fOff, JSON.parse(fOff.metadata.weightpress).tensors.w, n);
    for (let r = 0; r < rows; r++) {
      let d = 0, dOff = 0, big = 0;
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        d += got[i] - x[i];
        dOff += xOff[i] - x[i];
        big = Math.max(big, Math.abs(got[i]));
      }
      sumErrOff = Math.max(sumErrOff, Math.abs(dOff));
      // |Σ x̂' − Σ x| ≤ cols · (rounding of the stored offset + half an F32 ulp of each corrected value)
      expect(Math.abs(d)).toBeLessThanOrEqual(cols * (Math.abs(o[r]) * eps + big * 2 ** -24) + 1e-12);
    }
    const mOn = repOn.tensors.find((q) => q.name === 'w')!, mOff = repOff.tensors.find((q) => q.name === 'w')!;
    // The offset is the MSE-optimal constant per row: the error falls, or stays within rounding.
    expect(mOn.mse).toBeLessThanOrEqual(mOff.mse * (1 + 1e-6));
    // 16 (F16) or 32 (F32) bits per row, counted.
    expect(mOn.bitsPerWeight - mOff.bitsPerWeight).toBeCloseTo((rows * (s.rowOffsetDtype === 'F16' ? 16 : 32)) / n, 12);
    void sumErrOff;
  });
});

describe('registries and --help', () => {
  it('quantize --help names every codec and every method', () => {
    const help = execFileSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'quantize', '--help'], { encoding: 'utf8' });
    for (const c of QUANTIZING_CODECS) expect(help).toContain(c);
    for (const m of METHODS) expect(help).toContain(m.name);
  });

  it("granularity 'block' still works, with a deprecation warning, and gives the codec's bytes", async () => {
    const a = join(tmp.dir, 'dep-a.safetensors');
    const b = join(tmp.dir, 'dep-b.safetensors');
    const ra = await quantize(input, a, { granularity: 'block', include: ['w'] });
    const rb = await quantize(input, b, { codec: 'block', include: ['w'] });
    expect(ra.warnings?.some((w) => w.includes('deprecated'))).toBe(true);
    expect(rb.warnings ?? []).toEqual([]);
    expect(readSafetensors(a).metadata.weightpress).toBe(readSafetensors(b).metadata.weightpress);
  });

  it("every codec's solver gets the method's own options (one nested object across N-API)", async () => {
    // sparse-l1l2's lambda2 shapes the levels; both codecs must see it (the block codec once dropped it).
    for (const codec of codecsFor(METHODS.find((m) => m.name === 'sparse-l1l2')!, QUANTIZING_CODECS) as QuantizeOptions['codec'][]) {
      const tables = [];
      for (const lambda2 of [1e-4, 10]) {
        const out = join(tmp.dir, `l2-${codec}-${lambda2}.safetensors`);
        await quantize(input, out, { codec, method: 'sparse-l1l2', targetValues: 6, lambda2, bits: 3, include: ['w'] });
        const f = readSafetensors(out);
        tables.push(Buffer.from(f.tensor(JSON.parse(f.metadata.weightpress).tensors.w.codebook)));
      }
      expect(tables[0].equals(tables[1]), codec).toBe(false);
    }
  });

  it('every codec reports progress within a tensor (units done, non-decreasing, up to the total)', async () => {
    for (const codec of QUANTIZING_CODECS) {
      const within: { done: number; total: number }[] = [];
      const method = METHODS.find((m) => codecsFor(m, QUANTIZING_CODECS).includes(codec))!.name;
      await quantize(input, join(tmp.dir, `progress-${codec}.safetensors`), { codec, method, include: ['w'], ...methodOptions(method), onProgress: (p) => p.within && within.push(p.within) });
      expect(within.length, codec).toBeGreaterThan(0);
      for (let i = 0; i < within.length; i++) {
        expect(within[i].done).toBeLessThanOrEqual(within[i].total);
        if (i) expect(within[i].done).toBeGreaterThanOrEqual(within[i - 1].done);
      }
      expect(within[within.length - 1].done, codec).toBe(within[within.length - 1].total);
    }
  });

  it('the addon refuses a misspelled solver option, naming the known ones', async () => {
    const { loadNative } = await import('../lib/load.js');
    const native = loadNative();
    const data = new Uint8Array(encode(X, 'F32'));
    const call = () =>
      native.quantize({ data, dtype: 'F32', numel: X.length }, { method: 'kmeans', bits: 2, granularity: 'tensor', sliceSize: X.length, codebookDtype: 'F32', solverParams: { sede: 1 } as never }, new Uint8Array(X.length), new Uint8Array(16));
    expect(call).toThrow(/unknown solver option 'sede' \(known: seed, maxIter/);
  });

  it('a stored entry of a codec this reader does not know is refused, naming it', async () => {
    const out = join(tmp.dir, 'known.safetensors');
    await quantize(input, out, { include: ['w'] });
    const f = readSafetensors(out);
    const scheme = JSON.parse(f.metadata.weightpress);
    scheme.tensors.w.codec = 'vq';
    const bad = join(tmp.dir, 'unknown-codec.safetensors');
    writeSafetensors(
      bad,
      Object.entries(f.header).map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: f.tensor(name) })),
      // Re-signed as a writer of that codec would (an unsigned change is refused by the digest first).
      { ...f.metadata, weightpress: JSON.stringify(scheme), [DIGEST_KEY]: schemeDigest(JSON.stringify(scheme)) },
    );
    await expect(decode(bad, bad + '.dense')).rejects.toMatchObject({ code: 'E_FORMAT', tensor: 'w', message: expect.stringContaining('"vq"') });
  });

  it("a codec's options are refused with the other codec, and checked only when their codec is used", async () => {
    const out = join(tmp.dir, 'opts.safetensors');
    await expect(quantize(input, out, { codec: 'block', groupSize: 64 })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('scalar and int codecs only') });
    await expect(quantize(input, out, { codec: 'scalar', blockSize: 32 })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('block codec only') });
    // blockSize 24 does not divide the default super-block of 256: a clear message with the block codec only.
    await expect(quantize(input, out, { codec: 'block', blockSize: 24 })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('does not divide the super-block') });
    await expect(quantize(input, out, { codec: 'block', blockSize: 32, doubleQuant: false, include: ['w'] })).resolves.toBeDefined();
  });

  it('an unknown codec is refused with the list of codecs', async () => {
    await expect(quantize(input, join(tmp.dir, 'x.safetensors'), { codec: 'vq' as 'scalar' })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('scalar, block') });
  });
});
