/**
 * GGUF export with llama.cpp's K-quants and 32-weight formats (lib/gguf.ts, native/core/kquants.cpp).
 *
 * Oracles, all written in the test from published definitions (test/ggml-ref.ts): a GGUF reader (ggml's
 * docs/gguf.md), decoders of every block type from ggml-common.h's layouts and ggml-quants.c's dequantize_row_*
 * (every exported tensor decodes with them bit for bit as weightpress's own decoder reads it, and to the SQNR the
 * export reports), reference quantizers for Q6_K (with and without importance) and Q8_0, and llama.cpp's own Q4_K
 * SQNR on the shared checkpoints (bench/RESULTS.md "block": emotion 23.07, mobileface 22.11, movenet 21.80 dB).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { dequantizeGguf, exportGguf, type GgufQuantType } from '../lib/gguf.js';
import { GGML, GGML_NAME, dequantRef, readGguf, refQ6K, refQ8_0 } from './ggml-ref.js';
import { decodeBytes, encode, gaussian, mulberry32, readSafetensors, tempDir, toF16, fromF16, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const shared = join(__dirname, '..', '..', 'shared', 'data');
const fixture = join(__dirname, 'fixtures', 'emotion.f16.safetensors');
const FALLBACK: Record<string, string> = { Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0' };
const TYPES = ['Q4_K', 'Q5_K', 'Q6_K', 'Q8_0', 'Q5_0', 'Q5_1'] as const;

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Exports `file` as `type` and checks every tensor of the file against the references; returns what it read. */
async function exportAndCheck(file: string, type: GgufQuantType, out: string, extra: Record<string, unknown> = {}) {
  const rep = await exportGguf(file, out, { type, ...extra });
  const g = readGguf(out);
  expect(g.magic).toBe('GGUF');
  expect(g.version).toBe(3);
  expect(g.infos.length).toBe(rep.tensors.length);
  const src = readSafetensors(file);
  const shapes = JSON.parse((g.kv['weightpress.original_shapes'] as string | undefined) ?? '{}') as Record<string, number[]>;
  const decoded = new Map<string, { x: Float64Array; y: Float32Array; shape: number[] }>();
  let end = 0;
  for (const [i, info] of g.infos.entries()) {
    const r = rep.tensors[i];
    const tname = GGML_NAME[info.type];
    expect(r.type).toBe(tname);
    const numel = info.ne.reduce((a, b) => a * b, 1);
    const { qk, bytes } = GGML[tname] ?? { qk: 1, bytes: ({ I8: 1, I16: 2, I32: 4, I64: 8, F64: 8 } as Record<string, number>)[tname] };
    const nbytes = (numel / qk) * bytes;
    expect(info.offset % 32).toBe(0);
    expect(info.offset).toBeGreaterThanOrEqual(end);
    end = info.offset + nbytes;
    const data = g.data(info, nbytes);
    const e = src.header[r.name];
    const x = decodeBytes(src.tensor(r.name), e.dtype);
    expect(shapes[info.name] ?? [...info.ne].reverse()).toEqual(e.shape.length ? e.shape : [1]);
    let y: Float32Array;
    if (qk > 1) {
      y = dequantRef(tname, data, numel);
      // weightpress's own decoder reads the same values, bit for bit.
      expect(sameBits(y, await dequantizeGguf(tname as GgufQuantType, data, numel)), `${r.name} (${tname})`).toBe(true);
      // The type is the export's, or llama.cpp's fallback for rows that do not fit its block.
      const rows = e.shape[e.shape.length - 1], flat = numel / e.shape[0];
      const fits = (q: number) => rows % q === 0 || flat % q === 0;
      if (tname === type) expect(fits(GGML[type].qk)).toBe(true);
      else {
        expect(tname).toBe(FALLBACK[type]);
        expect(fits(GGML[type].qk)).toBe(false);
        expect(r.fallback).toMatch(/as llama.cpp does/);
      }
    } else {
      y = Float32Array.from(decodeBytes(data, tname));
      if (tname !== e.dtype) {
        // llama.cpp's last fallback: F16, for rows that are not a multiple of 32.
        expect(tname).toBe('F16');
        expect(e.shape[e.shape.length - 1] % 32 !== 0 && (numel / e.shape[0]) % 32 !== 0).toBe(true);
        for (let k = 0; k < x.length; k++) if (y[k] !== fromF16(toF16(x[k]))) expect.fail(`${r.name}[${k}]: ${y[k]} is not F16(${x[k]})`);
      } else expect(Buffer.from(data).equals(Buffer.from(src.tensor(r.name)))).toBe(true);
    }
    let s = 0, q = 0;
    for (let k = 0; k < x.length; k++) {
      s += x[k] * x[k];
      q += (y[k] - x[k]) ** 2;
    }
    if (r.quantized || q > 0) {
      expect(q / r.sse, r.name).toBeCloseTo(1, 6);
      expect(s / r.signal, r.name).toBeCloseTo(1, 9);
    } else expect(r.sse).toBe(0);
    decoded.set(r.name, { x, y, shape: e.shape });
  }
  expect(g.dataStart + Math.ceil(end / 32) * 32).toBe(g.buf.length);
  return { rep, decoded };
}

const files = [fixture, ...['mobileface.f32.safetensors', 'movenet-lightning.bf16.safetensors'].map((f) => join(shared, f)).filter(existsSync)];

describe.each(files)('GGUF K-quant export of %s', (file) => {
  const base = file.split('/').pop()!;
  it.each(TYPES)('%s: every tensor decodes with the reference decoder as weightpress decodes it, to the reported SQNR', async (type) => {
    const { rep } = await exportAndCheck(file, type, join(tmp.dir, `${base}.${type}.gguf`));
    expect(rep.total.quantizedTensors).toBeGreaterThan(0);
    // Bits per weight of the formats: 4.5, 5.5, 6.5625, 8.5, 5.5, 6.
    const bpw: Record<string, number> = { Q4_K: 4.5, Q5_K: 5.5, Q6_K: 6.5625, Q8_0: 8.5, Q5_0: 5.5, Q5_1: 6 };
    for (const t of rep.tensors) if (t.quantized) expect(t.bitsPerWeight).toBe(bpw[t.type]);
    // More bits, less error: the least SQNR each format reaches on these weights.
    const floor: Record<string, number> = { Q4_K: 18, Q5_K: 24, Q6_K: 30, Q8_0: 40, Q5_0: 22, Q5_1: 24 };
    for (const t of rep.tensors) if (t.quantized && t.numel >= 4096 && t.type === type) expect(t.sqnrDb!, t.name).toBeGreaterThan(floor[type]);
    console.log(`${base} -> ${type}: ${rep.total.quantizedTensors} tensors quantized (${rep.tensors.filter((t) => t.fallback).length} fell back), SQNR ${rep.total.sqnrDb!.toFixed(2)} dB, ${rep.total.bitsPerWeight.toFixed(3)} bits/weight`);
  });
});

describe("Q4_K reproduces llama.cpp's SQNR on the shared checkpoints", () => {
  // bench/RESULTS.md, "block": llama.cpp's quantize_row_q4_K_ref on the tensors with >= 2 dims, >= 4096 elements and
  // rows (numel / shape[0]) a multiple of 256.
  const LLAMA: Record<string, number> = { 'emotion.f16.safetensors': 23.07, 'mobileface.f32.safetensors': 22.11, 'movenet-lightning.bf16.safetensors': 21.8 };
  const avail = Object.keys(LLAMA).filter((f) => existsSync(join(shared, f)));
  it.skipIf(avail.length === 0).each(avail)('%s within 0.05 dB', async (f) => {
    const { decoded } = await exportAndCheck(join(shared, f), 'Q4_K', join(tmp.dir, `llama-${f}.gguf`));
    let s = 0, q = 0, n = 0;
    for (const { x, y, shape } of decoded.values()) {
      const numel = x.length;
      if (shape.length < 2 || numel < 4096 || (numel / shape[0]) % 256 !== 0) continue;
      n++;
      for (let k = 0; k < numel; k++) {
        s += x[k] * x[k];
        q += (y[k] - x[k]) ** 2;
      }
    }
    expect(n).toBeGreaterThan(0);
    const sqnr = 10 * Math.log10(s / q);
    console.log(`${f}: Q4_K SQNR ${sqnr.toFixed(3)} dB over ${n} tensors (llama.cpp: ${LLAMA[f]})`);
    expect(Math.abs(sqnr - LLAMA[f])).toBeLessThanOrEqual(0.05);
  });
});

/** An LLM-like matrix: Student-t rows of varying scale, a few outlier columns. */
function llmLike(rows: number, cols: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const g = gaussian(rows * cols * 2 + rows, seed + 1);
  const out = new Float32Array(rows * cols);
  for (let i = 0, gi = 0; i < rows; i++) {
    const rs = 0.02 * Math.exp(0.5 * g[gi++]);
    for (let j = 0; j < cols; j++) out[i * cols + j] = rs * g[gi++] * (1 + 4 * (r() < 0.01 ? 1 : 0)) * (1 + Math.abs(g[gi++]) * 0.3);
  }
  return out;
}

/** A legacy llama.cpp imatrix (.dat) with one entry, written from the published layout. */
function writeDat(path: string, entries: [string, Float32Array][]) {
  const parts: Buffer[] = [];
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  i32(entries.length);
  for (const [name, v] of entries) {
    i32(Buffer.byteLength(name));
    parts.push(Buffer.from(name));
    i32(1); // ncall
    i32(v.length);
    parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  i32(1);
  i32(0);
  writeFileSync(path, Buffer.concat(parts));
}

describe('the quantizers against references written here', () => {
  const rows = 8, cols = 512;
  const x = llmLike(rows, cols, 11);
  const imp = new Float32Array(cols);
  const rnd = mulberry32(5);
  for (let j = 0; j < cols; j++) imp[j] = rnd() < 0.05 ? 50 + 100 * rnd() : 0.1 + rnd();
  const file = join(tmp.dir, 'llm.safetensors');
  writeSafetensors(file, [{ name: 'blk.0.ffn_up.weight', dtype: 'F32', shape: [rows, cols], data: encode(x, 'F32') }]);
  const imatrix = join(tmp.dir, 'llm.imatrix.dat');

  const exported = async (type: GgufQuantType, opts: Record<string, unknown> = {}) => {
    const out = join(tmp.dir, `ref-${type}-${Object.keys(opts).join('')}.gguf`);
    const rep = await exportGguf(file, out, { type, ...opts });
    const g = readGguf(out);
    const info = g.infos[0];
    return { rep, y: dequantRef(type, g.data(info, (x.length / GGML[type].qk) * GGML[type].bytes), x.length) };
  };

  it('Q8_0 is quantize_row_q8_0_ref, bit for bit', async () => {
    expect(sameBits((await exported('Q8_0')).y, refQ8_0(x))).toBe(true);
  });

  it('Q6_K is quantize_row_q6_K_ref without importance and quantize_row_q6_K_impl with an imatrix, bit for bit', async () => {
    writeDat(imatrix, [['blk.0.ffn_up.weight', imp]]);
    expect(sameBits((await exported('Q6_K')).y, refQ6K(x, cols))).toBe(true);
    const { y, rep } = await exported('Q6_K', { imatrix });
    expect(rep.tensors[0].importance).toBe(true);
    expect(sameBits(y, refQ6K(x, cols, imp))).toBe(true);
  });

  it.each(['Q4_K', 'Q5_K', 'Q6_K', 'Q5_0', 'Q5_1'] as const)('%s with an imatrix lowers the importance-weighted error of the columns it weights', async (type) => {
    writeDat(imatrix, [['blk.0.ffn_up.weight', imp]]);
    const werr = (y: Float32Array) => {
      let e = 0;
      for (let k = 0; k < x.length; k++) e += imp[k % cols] * (y[k] - x[k]) ** 2;
      return e;
    };
    const plain = werr((await exported(type)).y);
    const weighted = werr((await exported(type, { imatrix })).y);
    console.log(`${type}: importance-weighted error ${plain.toExponential(3)} without the imatrix, ${weighted.toExponential(3)} with it`);
    expect(weighted).toBeLessThan(plain * 0.95);
  });
});

describe('fallbacks and errors', () => {
  it('rows that are not a multiple of 256 fall back as llama.cpp does, then F16 (F32 input), and the counts add up', async () => {
    const file = join(tmp.dir, 'mixed.safetensors');
    const g = gaussian(3 * 64 * 320, 3);
    const a = Float32Array.from(g.subarray(0, 64 * 512)), b = Float32Array.from(g.subarray(0, 64 * 96)), c = Float32Array.from(g.subarray(0, 64 * 100));
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [64, 512], data: encode(a, 'F32') },
      { name: 'b', dtype: 'F32', shape: [64, 96], data: encode(b, 'F32') },
      { name: 'c', dtype: 'F32', shape: [64, 100], data: encode(c, 'F32') },
    ]);
    for (const type of ['Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const { rep } = await exportAndCheck(file, type, join(tmp.dir, `mixed-${type}.gguf`));
      expect(rep.tensors.map((t) => t.type)).toEqual([type, FALLBACK[type], 'F16']);
      expect(rep.tensors[2].sqnrDb!).toBeGreaterThan(60);
    }
  });

  it('refuses an unknown type, importance with imatrix, a malformed imatrix; cancels', async () => {
    const out = join(tmp.dir, 'e.gguf');
    await expect(exportGguf(fixture, out, { type: 'Q3_K' as GgufQuantType })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(exportGguf(fixture, out, { type: 'Q4_K', imatrix: 'a', importance: 'b' })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    const bad = join(tmp.dir, 'bad.dat');
    writeFileSync(bad, Buffer.from([2, 0, 0, 0, 5, 0, 0, 0, 97]));
    await expect(exportGguf(fixture, out, { type: 'Q4_K', imatrix: bad })).rejects.toMatchObject({ code: 'E_FORMAT', file: bad });
    const ac = new AbortController();
    ac.abort();
    await expect(exportGguf(fixture, out, { type: 'Q6_K', signal: ac.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(existsSync(out)).toBe(false);
  });

  it('a NaN weight is refused, naming the tensor', async () => {
    const file = join(tmp.dir, 'nan.safetensors');
    const v = new Float32Array(64 * 256).fill(0.5);
    v[777] = NaN;
    writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [64, 256], data: encode(v, 'F32') }]);
    await expect(exportGguf(file, join(tmp.dir, 'nan.gguf'), { type: 'Q4_K' })).rejects.toMatchObject({ code: 'E_NONFINITE', tensor: 'w' });
  });
});
