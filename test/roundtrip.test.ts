/**
 * Round trips through files: quantize -> the test's own reader; decode(quantize(x)) == codebook[code]
 * exactly; kept tensors byte-identical; every float dtype, for a set of method x granularity cases (every
 * registered method and codec is round-tripped in codecs.test.ts, every method x granularity x entropy option
 * in regression.test.ts); determinism.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, inspect, quantize } from '../lib/index.js';
import { decodeBytes, encode, gaussian, mulberry32, readSafetensors, tempDir, unpackCodes, writeSafetensors, type RawTensor } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A small checkpoint with one tensor per float dtype, odd shapes, and tensors that must be kept. */
function makeCheckpoint(path: string, seed: number): RawTensor[] {
  const r = mulberry32(seed);
  const t: RawTensor[] = [];
  const mat = (rows: number, cols: number, scale: number) => Float64Array.from(gaussian(rows * cols, seed + rows), (v, i) => v * scale * (1 + (i % cols) / cols));
  t.push({ name: 'layer.0.w', dtype: 'F32', shape: [64, 96], data: encode(mat(64, 96, 0.05), 'F32') });
  t.push({ name: 'layer.1.w', dtype: 'BF16', shape: [48, 100], data: encode(mat(48, 100, 0.02), 'BF16') });
  t.push({ name: 'layer.2.w', dtype: 'F16', shape: [65, 8, 3, 3], data: encode(mat(65, 72, 0.1), 'F16') });
  t.push({ name: 'layer.3.w', dtype: 'F64', shape: [70, 70], data: encode(mat(70, 70, 1), 'F64') });
  t.push({ name: 'layer.0.b', dtype: 'F32', shape: [64], data: encode(Array.from({ length: 64 }, () => r()), 'F32') });
  t.push({ name: 'steps', dtype: 'I64', shape: [3], data: new Uint8Array(new BigInt64Array([1n, -2n, 3n]).buffer) });
  t.push({ name: 'mask', dtype: 'BOOL', shape: [5], data: new Uint8Array([1, 0, 1, 1, 0]) });
  t.push({ name: 'small.w', dtype: 'F16', shape: [3, 5], data: encode([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], 'F16') });
  writeSafetensors(path, t, { source: 'test' });
  return t;
}

const input = join(tmp.dir, 'model.safetensors');
const original = makeCheckpoint(input, 3);

const CASES = [
  { method: 'kmeans-optimal', granularity: 'row', bits: 4 },
  { method: 'kmeans-optimal', granularity: 'tensor', bits: 3 },
  { method: 'kmeans', granularity: 'group', groupSize: 40, bits: 2 },
  { method: 'uniform', granularity: 'row', bits: 5, symmetric: true },
  { method: 'uniform', granularity: 'tensor', bits: 1, step: 'minmax' },
  { method: 'kmeans-optimal', granularity: 'group', groupSize: 7, bits: 8, codebookDtype: 'F16' },
] as const;

describe.each(CASES)('quantize %o', (opts) => {
  const out = join(tmp.dir, `q-${opts.method}-${opts.granularity}-${opts.bits}.safetensors`);
  const dense = out.replace('.safetensors', '.dense.safetensors');
  let report: Awaited<ReturnType<typeof quantize>>;

  it('writes a valid safetensors file; kept tensors are byte-identical', async () => {
    report = await quantize(input, out, { ...opts } as Parameters<typeof quantize>[2]);
    const f = readSafetensors(out);
    expect(f.metadata.source).toBe('test');
    // Every tensor starts aligned for its dtype.
    for (const [name, e] of Object.entries(f.header)) {
      const size = { F64: 8, I64: 8, F32: 4, F16: 2, BF16: 2 }[e.dtype as 'F64'] ?? 1;
      expect((8 + f.headerLength + e.data_offsets[0]) % size, name).toBe(0);
    }
    for (const t of original) {
      const quantized = ['layer.0.w', 'layer.1.w', 'layer.2.w', 'layer.3.w'].includes(t.name);
      expect(t.name in f.header).toBe(!quantized);
      if (!quantized) expect(Buffer.from(f.tensor(t.name)).equals(Buffer.from(t.data))).toBe(true);
    }
  });

  it('decode(quantize(x)) equals codebook[code], and the metrics match an independent computation', async () => {
    await decode(out, dense, { dtype: 'F32' });
    const q = readSafetensors(out);
    const d = readSafetensors(dense);
    const scheme = JSON.parse(q.metadata.weightpress);
    const levels = 2 ** opts.bits;
    for (const t of original.filter((x) => x.name.startsWith('layer.') && x.name.endsWith('.w'))) {
      const s = scheme.tensors[t.name];
      const n = t.shape.reduce((a, b) => a * b, 1);
      const codes = unpackCodes(q.tensor(s.codes), n, opts.bits);
      const cb = decodeBytes(q.tensor(s.codebook), s.codebookDtype);
      const got = decodeBytes(d.tensor(t.name), 'F32');
      const x = decodeBytes(t.data, t.dtype);
      // The asked slicing, or a coarser one when its codebooks would make the tensor larger than keeping it (the
      // report warns): the stored granularity decides the slice size.
      if (s.granularity !== opts.granularity) expect(report.warnings?.some((w) => w.includes(`"${t.name}"`) && w.includes('more than keeping it'))).toBe(true);
      const sliceSize = s.granularity === 'tensor' ? n : s.granularity === 'row' ? n / t.shape[0] : s.groupSize ?? (opts as { groupSize?: number }).groupSize!;
      expect(s.sliceSize).toBe(sliceSize);
      let sse = 0, sig = 0, maxErr = 0;
      const distinct = new Map<number, Set<number>>();
      for (let i = 0; i < n; i++) {
        const slice = Math.floor(i / sliceSize);
        const want = Math.fround(cb[slice * levels + codes[i]]);
        expect(got[i]).toBe(want);
        // Nearest-level assignment: no stored level of the slice is closer.
        let best = Infinity;
        for (let c = 0; c < levels; c++) best = Math.min(best, Math.abs(x[i] - cb[slice * levels + c]));
        expect(Math.abs(x[i] - want)).toBeLessThanOrEqual(best + 1e-12 * Math.abs(x[i]));
        sse += (x[i] - want) ** 2;
        sig += x[i] ** 2;
        maxErr = Math.max(maxErr, Math.abs(x[i] - want));
        if (!distinct.has(slice)) distinct.set(slice, new Set());
        distinct.get(slice)!.add(want);
      }
      for (const set of distinct.values()) expect(set.size).toBeLessThanOrEqual(levels);
      const rep = report.tensors.find((r) => r.name === t.name)!;
      expect(rep.mse).toBeCloseTo(sse / n, 12);
      if (sse === 0) expect(rep.sqnrDb).toBeNull(); // exact: 7 values per group fit in 256 levels
      else expect(rep.sqnrDb!).toBeCloseTo(10 * Math.log10(sig / sse), 6);
      expect(rep.maxAbsErr).toBeCloseTo(maxErr, 12);
      const bytesOut = q.tensor(s.codes).byteLength + q.tensor(s.codebook).byteLength;
      expect(rep.bytesOut).toBe(bytesOut);
      expect(rep.bitsPerWeight).toBeCloseTo((bytesOut * 8) / n, 12);
    }
    // Dense output keeps every original name and shape, and the metadata minus the scheme.
    for (const t of original) expect(d.header[t.name].shape).toEqual(t.shape);
    expect(d.metadata.weightpress).toBeUndefined();
    expect(d.metadata.source).toBe('test');
  });

  it('inspect reports what quantize reported', async () => {
    const r = await inspect(out);
    // seconds and device describe the run, not the file.
    expect(r.tensors.map(({ seconds: _s, device: _d, ...t }) => t)).toEqual(report.tensors.map(({ seconds: _s, device: _d, ...t }) => t));
  });
});

describe('determinism', () => {
  it('same options give byte-identical files for 1 and 2 threads, for every method', async () => {
    for (const method of ['kmeans', 'kmeans-optimal', 'uniform'] as const) {
      const a = join(tmp.dir, `det-${method}-1.safetensors`);
      const b = join(tmp.dir, `det-${method}-2.safetensors`);
      await quantize(input, a, { method, bits: 3, granularity: 'row', threads: 1, seed: 5 });
      await quantize(input, b, { method, bits: 3, granularity: 'row', threads: 2, seed: 5 });
      expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    }
  });
});

describe('the event loop stays free', () => {
  it('timers keep firing while a large tensor is quantized', async () => {
    const big = join(tmp.dir, 'big.safetensors');
    writeSafetensors(big, [{ name: 'w', dtype: 'F32', shape: [2048, 2048], data: encode(gaussian(2048 * 2048, 1), 'F32') }]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    const progress: number[] = [];
    const within: { done: number; total: number }[] = [];
    await quantize(big, join(tmp.dir, 'big.q.safetensors'), {
      method: 'kmeans-optimal', granularity: 'row',
      onProgress: (p) => (p.within ? within.push(p.within) : progress.push(p.index)),
    });
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // A blocked loop would run no timer at all until the job ends.
    expect(ticks).toBeGreaterThan(Math.min(20, elapsed / 5 / 4));
    expect(progress).toEqual([1]);
    // Within the tensor, its rows done reach onProgress as they are solved: movement on a long tensor.
    expect(within.length).toBeGreaterThan(0);
    for (let i = 0; i < within.length; i++) {
      expect(within[i].total).toBe(2048);
      expect(within[i].done).toBeLessThanOrEqual(2048);
      if (i) expect(within[i].done).toBeGreaterThanOrEqual(within[i - 1].done);
    }
  });
});

describe('device selection', () => {
  it("'auto' runs anywhere; 'cuda' without a device is a typed error", async () => {
    const { backends } = await import('../lib/index.js');
    const cuda = backends().find((b) => b.name === 'cuda')!;
    const out = join(tmp.dir, 'dev.safetensors');
    const r = await quantize(input, out, { device: 'auto', granularity: 'tensor' });
    expect(r.total.quantizedTensors).toBe(4);
    if (!cuda.available) {
      await expect(quantize(input, join(tmp.dir, 'never.safetensors'), { device: 'cuda' })).rejects.toMatchObject({ code: 'E_CUDA' });
    }
  });
});

describe('entropy-coded codes', () => {
  it('decode gives the same tensors as fixed-length codes, for huffman and ans, and the stream is smaller', async () => {
    const plain = join(tmp.dir, 'ent-none.safetensors');
    const rp = await quantize(input, plain, { method: 'kmeans-optimal', bits: 4, granularity: 'row' });
    await decode(plain, plain + '.dense');
    const want = readFileSync(plain + '.dense');
    for (const entropy of ['huffman', 'ans'] as const) {
      const coded = join(tmp.dir, `ent-${entropy}.safetensors`);
      const rc = await quantize(input, coded, { method: 'kmeans-optimal', bits: 4, granularity: 'row', entropy });
      await decode(coded, coded + '.dense');
      expect(readFileSync(coded + '.dense').equals(want)).toBe(true);
      for (const t of rc.tensors.filter((x) => x.method !== 'keep')) {
        const p = rp.tensors.find((x) => x.name === t.name)!;
        expect(t.mse).toBe(p.mse);
        expect(t.entropy!).toBeGreaterThan(0);
        expect(t.entropy!).toBeLessThanOrEqual(4);
        expect(t.avgCodeLength! - t.entropy!).toBeLessThan(entropy === 'huffman' ? 1 : 0.05);
        expect(t.avgCodeLength! - t.entropy!).toBeGreaterThanOrEqual(-1e-9);
      }
      const f = readSafetensors(coded);
      const s = JSON.parse(f.metadata.weightpress).tensors['layer.0.w'];
      expect(s.entropy).toBe(entropy);
      expect(s.codes).toBeUndefined();
      expect(f.tensor(s.stream).byteLength).toBeGreaterThanOrEqual(s.streamBytes);
    }
  });

  it('ecsq methods entropy-code by default and hit the rate', async () => {
    const out = join(tmp.dir, 'ecsq.safetensors');
    const r = await quantize(input, out, { method: 'ecsq', rate: 3, granularity: 'tensor' });
    for (const t of r.tensors.filter((x) => x.method !== 'keep')) {
      // The rate is the bits per weight written (codebook, stream, padding), within 2 %.
      expect(Math.abs(t.bitsPerWeight / 3 - 1)).toBeLessThan(0.02);
      expect(t.compressionRatio).toBeCloseTo(t.bytesIn / t.bytesOut, 12);
    }
    const s = JSON.parse(readSafetensors(out).metadata.weightpress).tensors['layer.0.w'];
    expect(s.entropy).toBe('huffman');
  });
});

describe("granularity 'block' (learned table, block scales)", () => {
  it('stores table, scales and codes; decode matches the stored metrics; rows blocks cannot tile fall back to per-row', async () => {
    const out = join(tmp.dir, 'block.safetensors');
    const r = await quantize(input, out, { granularity: 'block', blockSize: 16, doubleQuant: { bits: 6, superBlock: 256 } });
    // layer.0.w has rows of 96; layer.1.w rows of 100, not a multiple of 16, but 4800 weights: blocks over the
    // flattened tensor (version 2); layer.2.w (4680 weights) and layer.3.w (4900) are not whole blocks: per row.
    const g = Object.fromEntries(r.tensors.filter((t) => t.method !== 'keep').map((t) => [t.name, t.granularity]));
    expect(g).toEqual({ 'layer.0.w': 'block', 'layer.1.w': 'block', 'layer.2.w': 'row', 'layer.3.w': 'row' });
    expect(r.warnings?.filter((w) => w.includes('block size')).length).toBe(2);
    const f = readSafetensors(out);
    const schemes = JSON.parse(f.metadata.weightpress).tensors;
    const s = schemes['layer.0.w'];
    expect(s.block).toEqual({ blockSize: 16, cols: 96, table: 'tensor', scale: 'optimal', doubleQuant: { bits: 6, superBlock: 256 } });
    expect(schemes['layer.1.w'].block.cols).toBe(4800);
    expect(f.header[s.codebook].shape).toEqual([1, 16]);
    await decode(out, out + '.dense', { dtype: 'F32' });
    const d = readSafetensors(out + '.dense');
    const x = decodeBytes(original[0].data, 'F32');
    const y = decodeBytes(d.tensor('layer.0.w'), 'F32');
    let sse = 0, sig = 0;
    for (let i = 0; i < x.length; i++) { sse += (x[i] - y[i]) ** 2; sig += x[i] ** 2; }
    const rep = r.tensors.find((t) => t.name === 'layer.0.w')!;
    expect(rep.mse).toBeCloseTo(sse / x.length, 12);
    expect(rep.sqnrDb!).toBeCloseTo(10 * Math.log10(sig / sse), 6);
    // Scales (6-bit codes + F16 super-scales), 4-bit codes, the table and an F16 row offset per row of 96 (on by
    // default for this codec): about 4.44 bits per weight + the table + 16/96.
    expect(s.rowOffsetDtype).toBe('F16');
    expect(rep.bitsPerWeight).toBeLessThan(4 + 6 / 16 + 16 / 256 + (16 * 32) / x.length + 16 / 96 + 0.05);
  });

  it('entropy-coded block codes decode to the same tensors', async () => {
    const a = join(tmp.dir, 'block-a.safetensors');
    const b = join(tmp.dir, 'block-b.safetensors');
    await quantize(input, a, { granularity: 'block', include: ['layer.0.w'] });
    await quantize(input, b, { granularity: 'block', include: ['layer.0.w'], entropy: 'huffman' });
    await decode(a, a + '.dense');
    await decode(b, b + '.dense');
    expect(readFileSync(a + '.dense').equals(readFileSync(b + '.dense'))).toBe(true);
  });
});
