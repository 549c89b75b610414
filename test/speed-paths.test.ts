/**
 * The fast paths of issue 15 give what the plain definitions give:
 * - per-group scalar quantization (slices that tile the pipeline's 64K chunks are solved and assigned chunk by
 *   chunk; min-max uniform grids are placed from one scan; codes are counted with float compares) against a
 *   reference written here from the documented definition (levels lo + i (hi - lo) / (k - 1), stored as F32; a
 *   value takes the number of midpoints of the stored levels below it), and against the same groups quantized one
 *   tensor at a time (the per-slice path);
 * - the streaming safetensors header reader on 10^5 entries, and which problem it reports first when a header
 *   has a bad entry and a JSON syntax error after it (the syntax error, as when the whole header was parsed first).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Checkpoint } from '../lib/checkpoint.js';
import { loadNative } from '../lib/load.js';
import { encode, fromBf16, gaussian, mulberry32, tempDir, toBf16, unpackCodes, writeSafetensors } from './helpers.js';

const native = loadNative();
const K = 16;

/** Group values of a test tensor: Gaussian, with a constant group, a group of signed zeros, and outliers. */
function values(n: number, seed: number): Float64Array {
  const x = gaussian(n, seed);
  const r = mulberry32(seed + 1);
  for (let i = 0; i < n; i++) if (r() < 0.002) x[i] *= 40;
  x.fill(0.375, 128, 256);
  for (let i = 256; i < 384; i++) x[i] = i % 2 ? 0 : -0;
  return x;
}

async function quantize(data: Uint8Array, dtype: string, numel: number, sliceSize: number, step: 'minmax' | 'mse', threads = 2) {
  const ns = Math.ceil(numel / sliceSize);
  const codes = new Uint8Array(Math.ceil((numel * 4) / 8 / 8) * 8 + 8), codebook = new Uint8Array(ns * K * 4);
  const stats = await native.quantize({ data, dtype, numel }, { method: 'uniform', bits: 4, granularity: 'group', sliceSize, codebookDtype: 'F32', threads, device: 'cpu', solverParams: { step } }, codes, codebook);
  return { codes: unpackCodes(codes, numel, 4), levels: new Float32Array(codebook.buffer), stats };
}

describe('uniform per group: the fused and min-max paths', () => {
  for (const dtype of ['BF16', 'F32'] as const) {
    it(`min-max grids per group of 128 (${dtype}) are the documented ones, and so are the codes`, async () => {
      const n = 128 * 1024 + 128 * 7;  // several 64K chunks and a partial one
      const x64 = values(n, 7);
      const x = dtype === 'BF16' ? Float64Array.from(x64, (v) => fromBf16(toBf16(v))) : Float64Array.from(x64, Math.fround);
      const { codes, levels } = await quantize(encode(x, dtype), dtype, n, 128, 'minmax');
      let mismatched = 0;
      for (let g = 0; g < n / 128; g++) {
        const v = x.subarray(g * 128, (g + 1) * 128);
        let lo = Infinity, hi = -Infinity;
        for (const a of v) { lo = Math.min(lo, a); hi = Math.max(hi, a); }
        const step = (hi - lo) / (K - 1);
        const L = new Float64Array(K);
        for (let i = 0; i < K; i++) L[i] = Math.fround(step > 0 ? lo + step * i : lo);  // a constant group: its value
        for (let i = 0; i < K; i++) if (levels[g * K + i] !== L[i]) mismatched++;
        for (let j = 0; j < 128; j++) {
          let q = 0;
          if (step > 0) for (let t = 0; t + 1 < K; t++) if (0.5 * (L[t] + L[t + 1]) < v[j]) q++;
          if (codes[g * 128 + j] !== q) mismatched++;
        }
      }
      expect(mismatched).toBe(0);
    });
  }

  for (const step of ['mse', 'minmax'] as const) {
    it(`a tensor quantized per group of 128 (${step}) equals its groups quantized one by one`, async () => {
      const n = 128 * 600;
      const data = encode(values(n, 11), 'BF16');
      const whole = await quantize(data, 'BF16', n, 128, step);
      let sse = 0;
      for (let g = 0; g < n / 128; g++) {
        const one = await quantize(data.subarray(g * 256, (g + 1) * 256), 'BF16', 128, 128, step, 1);
        expect(Array.from(one.levels)).toEqual(Array.from(whole.levels.subarray(g * K, (g + 1) * K)));
        expect(Array.from(one.codes)).toEqual(Array.from(whole.codes.subarray(g * 128, (g + 1) * 128)));
        sse += one.stats.sse;
      }
      expect(Math.abs(whole.stats.sse - sse)).toBeLessThanOrEqual(1e-12 * sse);  // the same errors, summed in another order
    });
  }

  it('the result does not depend on the thread count', async () => {
    const n = 128 * 2048;
    const data = encode(values(n, 5), 'F32');
    const a = await quantize(data, 'F32', n, 128, 'mse', 1), b = await quantize(data, 'F32', n, 128, 'mse', 2);
    expect(Buffer.from(a.codes).equals(Buffer.from(b.codes))).toBe(true);
    expect(Buffer.from(a.levels.buffer).equals(Buffer.from(b.levels.buffer))).toBe(true);
    expect(a.stats.sse).toBe(b.stats.sse);
  });
});

describe('safetensors header: read member by member', () => {
  const { dir, cleanup } = tempDir();
  afterAll(cleanup);

  it('opens a header of 100,000 entries with every name, shape and offset', async () => {
    const n = 100_000;
    const tensors = [];
    for (let i = 0; i < n; i++) tensors.push({ name: `layers.${i}.w\u00e9`, dtype: 'F32' as const, shape: [1, 1 + (i % 2)], data: new Uint8Array(4 * (1 + (i % 2))) });
    const p = join(dir, 'many.safetensors');
    writeSafetensors(p, tensors, { format: 'pt' });
    const ck = await Checkpoint.open(p);
    try {
      const ts = ck.tensors();
      expect(ts.length).toBe(n);
      expect(ck.metadata).toEqual({ format: 'pt' });
      let bad = 0;
      for (let i = 0; i < n; i++) if (ts[i].name !== `layers.${i}.w\u00e9` || ts[i].shape[1] !== 1 + (i % 2) || ts[i].byteLength !== 4 * (1 + (i % 2))) bad++;
      expect(bad).toBe(0);
    } finally {
      ck.close();
    }
  });

  /** A file whose header is the given text (padded), with `data` bytes after it. */
  function rawFile(name: string, header: string, data = 8): string {
    while ((8 + Buffer.byteLength(header)) % 8) header += ' ';
    const hb = Buffer.from(header, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    const p = join(dir, name);
    writeFileSync(p, Buffer.concat([len, hb, Buffer.alloc(data)]));
    return p;
  }

  it('a bad entry before a JSON syntax error: the syntax error is reported', async () => {
    const p = rawFile('both.safetensors', '{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32",]}');
    await expect(Checkpoint.open(p)).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/invalid JSON header at byte/) });
  });

  it('the first bad entry in file order is reported, naming it', async () => {
    const p = rawFile('entries.safetensors', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"Q9","shape":[1],"data_offsets":[8,12]},"c":7}', 12);
    await expect(Checkpoint.open(p)).rejects.toMatchObject({ code: 'E_DTYPE', tensor: 'b' });
  });

  it('a duplicate name, also when spelled with an escape, is reported as that tensor', async () => {
    const p = rawFile('dup.safetensors', '{"ab":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a\\u0062":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}');
    await expect(Checkpoint.open(p)).rejects.toMatchObject({ code: 'E_FORMAT', tensor: 'ab', message: expect.stringMatching(/duplicate key/) });
  });
});
