/**
 * Test-side references for GGUF files and ggml's block formats, written from the published definitions (ggml's
 * docs/gguf.md for the container; ggml-common.h's block_* structs and ggml-quants.c's dequantize_row_* for the
 * blocks), independently of weightpress's code. F32 arithmetic is emulated with Math.fround, one rounding per
 * operation, in the order the C code evaluates.
 */
import { readFileSync } from 'node:fs';

import { fromF16, toF16 } from './helpers.js';

const fr = Math.fround;

export interface GgufTensorInfo { name: string; ne: number[]; type: number; offset: number }

/** A whole GGUF v2/v3 file: KVs, tensor infos and where the data starts. */
export function readGguf(path: string) {
  const b = readFileSync(path);
  let p = 0;
  const u32 = () => { const v = b.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString('utf8', p, p + n); p += n; return s; };
  const value = (t: number): unknown => {
    switch (t) {
      case 0: return b.readUInt8(p++);
      case 1: return b.readInt8(p++);
      case 2: { const v = b.readUInt16LE(p); p += 2; return v; }
      case 3: { const v = b.readInt16LE(p); p += 2; return v; }
      case 4: return u32();
      case 5: { const v = b.readInt32LE(p); p += 4; return v; }
      case 6: { const v = b.readFloatLE(p); p += 4; return v; }
      case 7: { const v = b.readUInt8(p++); if (v > 1) throw new Error('bad bool'); return v === 1; }
      case 8: return str();
      case 9: { const et = u32(), n = u64(); return Array.from({ length: n }, () => value(et)); }
      case 10: return u64();
      case 11: { const v = Number(b.readBigInt64LE(p)); p += 8; return v; }
      case 12: { const v = b.readDoubleLE(p); p += 8; return v; }
      default: throw new Error(`unknown KV type ${t}`);
    }
  };
  const magic = b.toString('latin1', 0, 4);
  p = 4;
  const version = u32(), nt = u64(), nkv = u64();
  const kv: Record<string, unknown> = {};
  for (let i = 0; i < nkv; i++) { const k = str(); kv[k] = value(u32()); }
  const infos: GgufTensorInfo[] = [];
  for (let i = 0; i < nt; i++) {
    const name = str(), nd = u32();
    const ne = Array.from({ length: nd }, () => u64());
    infos.push({ name, ne, type: u32(), offset: u64() });
  }
  const align = (kv['general.alignment'] as number | undefined) ?? 32;
  const dataStart = Math.ceil(p / align) * align;
  // The padding between the tensor infos and the data is zeros.
  for (let i = p; i < dataStart; i++) if (b[i] !== 0) throw new Error('non-zero padding');
  const data = (t: GgufTensorInfo, bytes: number) => new Uint8Array(b.buffer, b.byteOffset + dataStart + t.offset, bytes);
  return { magic, version, kv, infos, align, dataStart, buf: b, data };
}

/** ggml_type ids and (weights, bytes) per block (ggml.h / ggml-common.h). */
export const GGML: Record<string, { id: number; qk: number; bytes: number }> = {
  F32: { id: 0, qk: 1, bytes: 4 }, F16: { id: 1, qk: 1, bytes: 2 }, Q4_0: { id: 2, qk: 32, bytes: 18 },
  Q5_0: { id: 6, qk: 32, bytes: 22 }, Q5_1: { id: 7, qk: 32, bytes: 24 }, Q8_0: { id: 8, qk: 32, bytes: 34 },
  Q4_K: { id: 12, qk: 256, bytes: 144 }, Q5_K: { id: 13, qk: 256, bytes: 176 }, Q6_K: { id: 14, qk: 256, bytes: 210 },
  IQ4_NL: { id: 20, qk: 32, bytes: 18 }, BF16: { id: 30, qk: 1, bytes: 2 },
};
export const GGML_NAME: Record<number, string> = Object.fromEntries(Object.entries(GGML).map(([k, v]) => [v.id, k]));

const h16 = (b: Uint8Array, o: number) => fromF16(b[o] | (b[o + 1] << 8));

/** The 6-bit (scale, min) pair j of a Q4_K / Q5_K super-block's 12 scale bytes (ggml's get_scale_min_k4). */
function scaleMin(q: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/**
 * Decodes `n` values of a block type, as ggml's dequantize_row_* do:
 * - Q4_K  {d, dmin F16; scales[12]; qs[128]}: per 64 weights two sub-blocks, low then high nibbles; d·sc·q − dmin·m
 * - Q5_K  {d, dmin; scales[12]; qh[32]; qs[128]}: as Q4_K plus a fifth bit from qh (bit 2i, 2i+1 for the i-th 64)
 * - Q6_K  {ql[128]; qh[64]; scales[16] int8; d}: per 128 weights, q = ql nibble | 2 bits of qh, minus 32; d·sc·q
 * - Q8_0  {d; qs[32] int8}: d·q
 * - Q5_0  {d; qh u32; qs[16]}: ((nibble | 5th bit) − 16)·d;   Q5_1 {d; m; qh; qs}: q·d + m
 */
export function dequantRef(type: string, b: Uint8Array, n: number): Float32Array {
  const { qk, bytes } = GGML[type];
  const y = new Float32Array(n);
  for (let blk = 0; blk < n / qk; blk++) {
    const o = blk * bytes, w = blk * qk;
    if (type === 'Q4_K' || type === 'Q5_K') {
      const d = h16(b, o), dmin = h16(b, o + 2);
      const qh = o + 16, qs = type === 'Q4_K' ? o + 16 : o + 48;
      for (let g = 0; g < 4; g++) {
        for (let half = 0; half < 2; half++) {
          const [sc, m] = scaleMin(b, o + 4, 2 * g + half);
          const d1 = fr(d * sc), m1 = fr(dmin * m);
          for (let l = 0; l < 32; l++) {
            let q = half ? b[qs + 32 * g + l] >> 4 : b[qs + 32 * g + l] & 0xf;
            if (type === 'Q5_K' && b[qh + l] & (1 << (2 * g + half))) q += 16;
            y[w + 64 * g + 32 * half + l] = fr(fr(d1 * q) - m1);
          }
        }
      }
    } else if (type === 'Q6_K') {
      const d = h16(b, o + 208);
      const sc = (i: number) => (b[o + 192 + i] << 24) >> 24;
      for (let h = 0; h < 2; h++) {
        const ql = o + 64 * h, qh = o + 128 + 32 * h, s = 8 * h;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
          const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
          const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
          const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
          const base = w + 128 * h;
          y[base + l] = fr(fr(d * sc(s + is)) * q1);
          y[base + l + 32] = fr(fr(d * sc(s + is + 2)) * q2);
          y[base + l + 64] = fr(fr(d * sc(s + is + 4)) * q3);
          y[base + l + 96] = fr(fr(d * sc(s + is + 6)) * q4);
        }
      }
    } else if (type === 'Q8_0') {
      const d = h16(b, o);
      for (let j = 0; j < 32; j++) y[w + j] = fr(((b[o + 2 + j] << 24) >> 24) * d);
    } else if (type === 'Q5_0' || type === 'Q5_1') {
      const d = h16(b, o), m = type === 'Q5_1' ? h16(b, o + 2) : 0;
      const qho = type === 'Q5_1' ? o + 4 : o + 2;
      const qh = (b[qho] | (b[qho + 1] << 8) | (b[qho + 2] << 16) | (b[qho + 3] << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const x0 = (b[qho + 4 + j] & 0xf) | (((qh >>> j) << 4) & 0x10);
        const x1 = (b[qho + 4 + j] >> 4) | ((qh >>> (j + 12)) & 0x10);
        if (type === 'Q5_1') {
          y[w + j] = fr(fr(x0 * d) + m);
          y[w + j + 16] = fr(fr(x1 * d) + m);
        } else {
          y[w + j] = fr((x0 - 16) * d);
          y[w + j + 16] = fr((x1 - 16) * d);
        }
      }
    } else throw new Error(`no reference decoder for ${type}`);
  }
  return y;
}

/** ggml's nearest_int: round half to even via a float add of 1.5 x 2^23. */
export function nearestInt(v: number): number {
  return fr(fr(v) + 12582912) - 12582912;
}

/** ggml's make_qx_quants with rmse_type 1 (weights x², or qw): symmetric codes l + nmax and the scale. */
function makeQx(n: number, nmax: number, x: Float32Array, o: number, L: Int8Array, lo: number, qw?: Float32Array, qo = 0): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) { const ax = Math.abs(x[o + i]); if (ax > amax) { amax = ax; max = x[o + i]; } }
  if (amax < 1e-15) { for (let i = 0; i < n; i++) L[lo + i] = 0; return 0; }
  const w = (i: number) => (qw ? qw[qo + i] : fr(x[o + i] * x[o + i]));
  const clamp = (l: number) => Math.max(-nmax, Math.min(nmax - 1, l));
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(fr(iscale * x[o + i])));
    L[lo + i] = l + nmax;
    sumlx = fr(sumlx + fr(fr(w(i) * x[o + i]) * l));
    suml2 = fr(suml2 + fr(fr(w(i) * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = 0; suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(fr(iscale * x[o + i])));
      sumlx = fr(sumlx + fr(fr(w(i) * x[o + i]) * l));
      suml2 = fr(suml2 + fr(fr(w(i) * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + clamp(nearestInt(fr(iscale * x[o + i])));
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/**
 * Q6_K as llama.cpp quantizes a row (quantize_row_q6_K_ref; with quant weights qw, quantize_row_q6_K_impl, which
 * passes the importance of each weight to make_qx_quants as its weight), decoded: 16 sub-blocks of 16, their
 * scales onto int8 under d = F16(max_scale / −128), then codes nearest(x / (d·sc)) in −32..31.
 */
export function refQ6K(x: Float32Array, cols: number, qw?: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const L = new Int8Array(256), scales = new Float32Array(16);
  for (let s = 0; s < x.length; s += 256) {
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      const sc = makeQx(16, 32, x, s + 16 * ib, L, 16 * ib, qw, qw ? (s % cols) + 16 * ib : 0);
      scales[ib] = sc;
      if (Math.abs(sc) > maxAbs) { maxAbs = Math.abs(sc); maxScale = sc; }
    }
    if (maxAbs < 1e-15) continue; // zeros
    const iscale = fr(-128 / maxScale);
    const d = fromF16(toF16(fr(1 / iscale)));
    for (let j = 0; j < 16; j++) {
      const sc = Math.min(127, nearestInt(fr(iscale * scales[j])));
      const dd = fr(d * sc);
      for (let i = 0; i < 16; i++) {
        const q = dd ? Math.max(-32, Math.min(31, nearestInt(fr(x[s + 16 * j + i] / dd)))) : L[16 * j + i] - 32;
        out[s + 16 * j + i] = fr(dd * q);
      }
    }
  }
  return out;
}

/** Q8_0 (quantize_row_q8_0_ref): d = absmax / 127 stored as F16, q = roundf(x / d) (half away from zero). */
export function refQ8_0(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d = fr(amax / 127), id = d ? fr(1 / d) : 0, dh = fromF16(toF16(d));
    for (let j = 0; j < 32; j++) {
      const v = fr(x[b + j] * id);
      const q = (Math.sign(v) * Math.floor(Math.abs(v) + 0.5)) | 0; // an int8: no -0
      out[b + j] = fr(q * dh);
    }
  }
  return out;
}
