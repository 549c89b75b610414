/**
 * Test helpers written independently of the code under test: a seeded PRNG, Gaussian samples, a minimal
 * safetensors writer and reader (plain JSON + bytes), float16/bfloat16 conversion, and bit unpacking.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(n: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-300), v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBf16(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}
export function fromF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
/** Round-to-nearest-even float16 by search over the (monotone) positive codes. */
export function toF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0, hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (fromF16(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo < 0x7bff) {
    const d0 = a - fromF16(lo), d1 = fromF16(lo + 1) - a;
    if (d1 < d0 || (d1 === d0 && (lo & 1))) lo += 1;
  }
  return sign | lo;
}

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'F8_E4M3';
export const SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, U32: 4, U64: 8 };

/** Encodes float values into the bytes of a float dtype. */
export function encode(values: ArrayLike<number>, dtype: 'F64' | 'F32' | 'F16' | 'BF16'): Uint8Array {
  const n = values.length;
  if (dtype === 'F64') return new Uint8Array(Float64Array.from(values).buffer);
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  const u = new Uint16Array(n);
  for (let i = 0; i < n; i++) u[i] = dtype === 'F16' ? toF16(values[i]) : toBf16(values[i]);
  return new Uint8Array(u.buffer);
}
/** Decodes the bytes of a float dtype. */
export function decodeBytes(bytes: Uint8Array, dtype: string): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / SIZE[dtype];
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F64') out[i] = dv.getFloat64(i * 8, true);
    else if (dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === 'F16') out[i] = fromF16(dv.getUint16(i * 2, true));
    else if (dtype === 'BF16') out[i] = fromBf16(dv.getUint16(i * 2, true));
    else throw new Error(`decodeBytes: ${dtype}`);
  }
  return out;
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A minimal safetensors writer (the test's own, not the library's). */
export function writeSafetensors(path: string, tensors: RawTensor[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  writeFileSync(path, Buffer.concat([len, hb, ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]));
}

export interface ParsedFile {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  metadata: Record<string, string>;
  headerLength: number;
  tensor(name: string): Uint8Array;
}

/** A minimal safetensors reader (the test's own). */
export function readSafetensors(path: string): ParsedFile {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const all = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const metadata = all.__metadata__ ?? {};
  delete all.__metadata__;
  return {
    header: all,
    metadata,
    headerLength: n,
    tensor(name: string) {
      const e = all[name];
      if (!e) throw new Error(`no tensor ${name}`);
      return new Uint8Array(buf.buffer, buf.byteOffset + 8 + n + e.data_offsets[0], e.data_offsets[1] - e.data_offsets[0]);
    },
  };
}

/** Unpacks n codes of `bits` bits, LSB first (docs/FORMAT.md), bit by bit. */
export function unpackCodes(bytes: Uint8Array, n: number, bits: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let b = 0; b < bits; b++) {
      const t = i * bits + b;
      v |= ((bytes[t >> 3] >> (t & 7)) & 1) << b;
    }
    out[i] = v;
  }
  return out;
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'wp-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Weighted SSE of representing each value by its nearest level. */
export function nearestSse(x: ArrayLike<number>, levels: ArrayLike<number>, w?: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    let m = Infinity;
    for (let j = 0; j < levels.length; j++) m = Math.min(m, (x[i] - levels[j]) ** 2);
    s += (w ? w[i] : 1) * m;
  }
  return s;
}

/**
 * Copies the safetensors file `src` to `dst` with its __metadata__ changed by `edit` (tensors and data as they
 * were, in data order), written by the test's own writer.
 */
export function rewriteMetadata(src: string, dst: string, edit: (metadata: Record<string, string>) => Record<string, string>): void {
  const f = readSafetensors(src);
  const tensors: RawTensor[] = Object.entries(f.header)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: Uint8Array.from(f.tensor(name)) }));
  writeSafetensors(dst, tensors, edit({ ...f.metadata }));
}

/**
 * The int codec's stored tensor, decoded from docs/FORMAT.md ("Integer group tensors"): x = fl32(s_g · (u − z_g)),
 * g = row · ceil(cols / G) + floor(col / G), z_g = 2^(bits−1) (symmetric) or the stored zero point (bits bits each,
 * LSB first). `s` is the tensor's scheme entry, `n` its element count.
 */
export function refInt(f: ParsedFile, s: any, n: number): Float64Array {
  const { cols, groupSize: G, symmetric, scaleDtype, scales, zeros } = s.int;
  const gpr = Math.ceil(cols / G);
  const sc = decodeBytes(f.tensor(scales), scaleDtype);
  const z = symmetric ? undefined : unpackCodes(f.tensor(zeros), (n / cols) * gpr, s.bits);
  const u = unpackCodes(f.tensor(s.codes), n, s.bits);
  return Float64Array.from({ length: n }, (_, i) => {
    const g = Math.floor(i / cols) * gpr + Math.floor((i % cols) / G);
    return Math.fround(sc[g] * (u[i] - (z ? z[g] : 2 ** (s.bits - 1))));
  });
}
