/**
 * GGUF export (lib/gguf.ts): the file is read back with the minimal GGUF reader of test/ggml-ref.ts, written from
 * ggml's docs/gguf.md (header, typed KVs, tensor infos, alignment), Q4_0 and IQ4_NL blocks are decoded here from their
 * published layout (block_q4_0 / block_iq4_nl: F16 d, then 16 bytes whose low nibbles hold weights 0..15 and
 * high nibbles weights 16..31), and compared with the checkpoint.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { exportGguf } from '../lib/gguf.js';
import { readGguf, type GgufTensorInfo } from './ggml-ref.js';
import { decodeBytes, fromF16, readSafetensors, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const KVALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
const Q40 = Array.from({ length: 16 }, (_, i) => i - 8);
const TYPE = { F32: 0, F16: 1, Q4_0: 2, IQ4_NL: 20, BF16: 30, F64: 28, I8: 24, I16: 25, I32: 26, I64: 27 } as const;
const DT_TYPE: Record<string, number> = { F32: 0, F16: 1, BF16: 30, F64: 28, I8: 24, I16: 25, I32: 26, I64: 27 };


function tensorBytes(info: GgufTensorInfo): number {
  const n = info.ne.reduce((a, c) => a * c, 1);
  if (info.type === TYPE.Q4_0 || info.type === TYPE.IQ4_NL) return (n / 32) * 18;
  const size: Record<number, number> = { 0: 4, 1: 2, 30: 2, 28: 8, 24: 1, 25: 2, 26: 4, 27: 8 };
  return n * size[info.type];
}

/** Decodes Q4_0 / IQ4_NL blocks: per block the scale d and 32 values fl32(d · level). */
function decodeBlocks(bytes: Uint8Array, n: number, levels: number[]) {
  const out = new Float64Array(n), d = new Float64Array(n / 32);
  for (let b = 0; b < n / 32; b++) {
    const o = b * 18;
    d[b] = fromF16(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 2 + j];
      out[b * 32 + j] = Math.fround(d[b] * levels[q & 15]);
      out[b * 32 + 16 + j] = Math.fround(d[b] * levels[q >> 4]);
    }
  }
  return { out, d };
}

const shared = join(__dirname, '..', '..', 'shared', 'data');
const files = [join(__dirname, 'fixtures', 'emotion.f16.safetensors')];
if (existsSync(join(shared, 'mobileface.f32.safetensors'))) files.push(join(shared, 'mobileface.f32.safetensors'));

describe.each(files)('exportGguf %s', (file) => {
  const base = file.split('/').pop()!;
  it.each(['IQ4_NL', 'Q4_0'] as const)('%s: a valid, aligned GGUF v3 whose blocks decode to the checkpoint within the format error', async (type) => {
    const out = join(tmp.dir, `${base}.${type}.gguf`);
    const rep = await exportGguf(file, out, { type, name: 'test-model' });
    const g = readGguf(out);
    expect(g.magic).toBe('GGUF');
    expect(g.version).toBe(3);
    expect(g.kv['general.architecture']).toBe('weightpress-export');
    expect(g.kv['general.name']).toBe('test-model');
    expect(g.align).toBe(32);
    expect(g.dataStart % 32).toBe(0);
    expect(g.infos.length).toBe(rep.tensors.length);
    const names = JSON.parse((g.kv['weightpress.tensor_names'] as string | undefined) ?? '{}') as Record<string, string>;
    const shapes = JSON.parse((g.kv['weightpress.original_shapes'] as string | undefined) ?? '{}') as Record<string, number[]>;
    const src = readSafetensors(file);
    let end = 0, sse = 0, sig = 0, quantized = 0;
    const levels = type === 'IQ4_NL' ? KVALUES : Q40;
    for (const [i, info] of g.infos.entries()) {
      expect(Buffer.byteLength(info.name)).toBeLessThanOrEqual(63);
      expect(info.offset % 32).toBe(0);
      expect(info.offset).toBeGreaterThanOrEqual(end);
      const nbytes = tensorBytes(info);
      end = info.offset + nbytes;
      expect(g.dataStart + end).toBeLessThanOrEqual(g.buf.length);
      const orig = names[info.name] ?? info.name;
      const e = src.header[orig];
      expect(e, orig).toBeDefined();
      const shape = shapes[info.name] ?? [...info.ne].reverse();
      expect(shape).toEqual(e.shape.length ? e.shape : [1]);
      if (shapes[info.name]) expect(info.ne).toEqual([e.shape.reduce((a, c) => a * c, 1) / e.shape[0], e.shape[0]]);
      const data = new Uint8Array(g.buf.buffer, g.buf.byteOffset + g.dataStart + info.offset, nbytes);
      const r = rep.tensors[i];
      expect(r.name).toBe(orig);
      if (info.type === TYPE.Q4_0 || info.type === TYPE.IQ4_NL) {
        expect(info.type).toBe(TYPE[type]);
        quantized++;
        const x = decodeBytes(src.tensor(orig), e.dtype);
        const { out: y, d } = decodeBlocks(data, x.length, levels);
        let s = 0, q = 0;
        for (let k = 0; k < x.length; k++) {
          const err = Math.abs(x[k] - y[k]);
          // Each weight decodes to the nearest value its block's grid d · levels offers.
          const db = d[Math.floor(k / 32)];
          let best = Infinity;
          for (const l of levels) best = Math.min(best, Math.abs(x[k] - Math.fround(db * l)));
          if (err > best + 1e-6 * Math.abs(db) * 128 + 1e-30) expect.fail(`${orig}[${k}]: error ${err} > nearest ${best}`);
          s += x[k] * x[k];
          q += err * err;
        }
        expect(q / r.sse).toBeCloseTo(1, 6);
        expect(s / r.signal).toBeCloseTo(1, 9);
        if (x.length >= 4096) expect(10 * Math.log10(s / q)).toBeGreaterThan(type === 'IQ4_NL' ? 20 : 18);
        sse += q;
        sig += s;
      } else {
        // Kept as is.
        expect(info.type).toBe(DT_TYPE[e.dtype]);
        expect(Buffer.from(data).equals(Buffer.from(src.tensor(orig)))).toBe(true);
      }
    }
    expect(quantized).toBe(rep.total.quantizedTensors);
    expect(quantized).toBeGreaterThan(0);
    expect(rep.total.sqnrDb!).toBeCloseTo(10 * Math.log10(sig / sse), 6);
    expect(rep.total.bytes).toBe(g.buf.length);
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    console.log(`${base} -> GGUF ${type}: ${quantized} of ${g.infos.length} tensors quantized, SQNR ${rep.total.sqnrDb!.toFixed(2)} dB, ${rep.total.bitsPerWeight.toFixed(3)} bits/weight (file)`);
  });
});

describe('exportGguf errors', () => {
  it('rejects an unknown type and an aborted export, leaving no file', async () => {
    const file = files[0];
    await expect(exportGguf(file, join(tmp.dir, 'x.gguf'), { type: 'Q3_K' as 'Q4_0' })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    const ac = new AbortController();
    ac.abort();
    await expect(exportGguf(file, join(tmp.dir, 'y.gguf'), { type: 'Q4_0', signal: ac.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(existsSync(join(tmp.dir, 'y.gguf'))).toBe(false);
    await expect(exportGguf(file, join(tmp.dir, 'no-such-dir', 'z.gguf'), { type: 'Q4_0' })).rejects.toMatchObject({ code: 'E_IO' });
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects a misspelled option with the list of valid ones, and bad numbers, as quantize does', async () => {
    const file = files[0];
    await expect(exportGguf(file, join(tmp.dir, 'o.gguf'), { type: 'Q4_0', thread: 2 } as never)).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('threads') });
    await expect(exportGguf(file, join(tmp.dir, 'o.gguf'), { type: 'Q4_0', threads: -1 })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    expect(existsSync(join(tmp.dir, 'o.gguf'))).toBe(false);
  });

  it("the type table's ids are ggml.h's", async () => {
    const { GGML_TYPE } = await import('../lib/gguf.js');
    for (const [name, id] of Object.entries(TYPE)) expect(GGML_TYPE[name], name).toBe(id);
  });

  it('keeps tensors whose rows are not whole blocks, unless flattening is allowed', async () => {
    const file = files[0];
    const a = await exportGguf(file, join(tmp.dir, 'flat.gguf'), { type: 'IQ4_NL' });
    const b = await exportGguf(file, join(tmp.dir, 'noflat.gguf'), { type: 'IQ4_NL', flatten: false });
    expect(b.total.quantizedTensors).toBeLessThan(a.total.quantizedTensors);
    for (const t of b.tensors) if (t.quantized) expect(t.shape[t.shape.length - 1] % 32).toBe(0);
    const g = readGguf(join(tmp.dir, 'noflat.gguf'));
    expect(g.kv['weightpress.original_shapes']).toBeUndefined();
  });
});
