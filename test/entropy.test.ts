/**
 * Entropy coders (native/core/entropy, docs/ENTROPY.md): canonical Huffman and rANS in a chunked blob.
 *
 * Oracles written here, independently of the code under test: Lloyd-Max thresholds of N(0,1) by Lloyd's
 * iteration on the density, the histogram entropy, a heap-based Huffman code, a brute-force length-limited
 * code for small alphabets, XXH64 in BigInt, a blob parser, and complete Huffman and rANS decoders that
 * follow docs/ENTROPY.md bit by bit.
 */
import { describe, expect, it } from 'vitest';

import { loadNative } from '../lib/load.js';
import { gaussian, mulberry32 } from './helpers.js';

// ---------------------------------------------------------------------------------------------------------
// The addon's entropy functions (native/addon/entropy.cpp).

interface EncodeResult {
  blob: Uint8Array;
  coder: 'huffman' | 'ans';
  n: number;
  alphabet: number;
  chunk: number;
  chunks: number;
  maxLen?: number;
  probBits?: number;
  entropy: number;
  avgCodeLength: number;
  tableBytes: number;
  payloadBytes: number;
  totalBytes: number;
}
interface InfoResult extends Omit<EncodeResult, 'blob'> {
  codeLengths?: number[];
  frequencies?: number[];
}
interface EntropyAddon {
  entropyEncode(
    symbols: Uint8Array,
    opts: { coder: 'huffman' | 'ans'; alphabet: number; chunk?: number; maxLen?: number; probBits?: number; threads?: number },
    cancel?: Int32Array,
  ): Promise<EncodeResult>;
  entropyDecode(blob: Uint8Array, out: Uint8Array, threads?: number, cancel?: Int32Array): Promise<void>;
  entropyInfo(blob: Uint8Array): InfoResult;
}
const native = loadNative() as unknown as EntropyAddon;

type CoderName = 'huffman' | 'ans';
const CODERS: CoderName[] = ['huffman', 'ans'];

async function roundTrip(sym: Uint8Array, opts: Parameters<EntropyAddon['entropyEncode']>[1]): Promise<EncodeResult> {
  const r = await native.entropyEncode(sym, opts);
  const out = new Uint8Array(sym.length).fill(0xee);
  await native.entropyDecode(r.blob, out, opts.threads);
  expect(equalBytes(out, sym), `decode(encode(x)) != x (${opts.coder}, n=${sym.length}, chunk=${opts.chunk})`).toBe(true);
  return r;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Awaits p (or calls it), which must fail with a weightpress error of this code (and message). */
async function expectCode(p: Promise<unknown> | (() => unknown), code: string, message?: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).toBeDefined();
  expect((caught as { code?: string }).code).toBe(code);
  if (message) expect((caught as Error).message).toMatch(message);
}

// ---------------------------------------------------------------------------------------------------------
// Independent oracles.

/** erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const s = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
const Phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

/** Decision thresholds of the Lloyd-Max quantizer of N(0,1) with 2^bits levels (Lloyd's iteration on the density). */
function lloydMaxThresholds(bits: number): number[] {
  const k = 1 << bits;
  let c = Array.from({ length: k }, (_, i) => -3 + (6 * (i + 0.5)) / k);
  let t: number[] = [];
  for (let it = 0; it < 2000; ++it) {
    t = c.slice(1).map((v, i) => 0.5 * (c[i] + v));
    const edges = [-Infinity, ...t, Infinity];
    c = c.map((_, i) => {
      const a = edges[i], b = edges[i + 1];
      const pa = a === -Infinity ? 0 : phi(a), pb = b === Infinity ? 0 : phi(b);
      const Fa = a === -Infinity ? 0 : Phi(a), Fb = b === Infinity ? 1 : Phi(b);
      return (pa - pb) / (Fb - Fa);
    });
  }
  return t;
}

/** n codes: N(0,1) samples (seeded) thresholded by the Lloyd-Max quantizer of 2^bits levels. */
function gaussianCodes(n: number, bits: number, seed: number): Uint8Array {
  const t = lloydMaxThresholds(bits);
  const x = gaussian(n, seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let lo = 0, hi = t.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (x[i] > t[m]) lo = m + 1;
      else hi = m;
    }
    out[i] = lo;
  }
  return out;
}

function histogram(sym: Uint8Array, A = 256): number[] {
  const h = new Array(A).fill(0);
  for (const s of sym) h[s]++;
  return h;
}

function entropyOf(h: number[]): number {
  const n = h.reduce((a, b) => a + b, 0);
  let H = 0;
  for (const c of h) if (c) H -= (c / n) * Math.log2(c / n);
  return H;
}

/** Optimal (unlimited) Huffman code lengths by the textbook heap construction. */
function heapHuffmanLengths(h: number[]): number[] {
  const len = new Array(h.length).fill(0);
  type Node = { w: number; leaves: number[] };
  let heap: Node[] = [];
  h.forEach((w, s) => {
    if (w > 0) heap.push({ w, leaves: [s] });
  });
  if (heap.length === 1) {
    len[heap[0].leaves[0]] = 1;
    return len;
  }
  const pop = () => {
    let bi = 0;
    for (let i = 1; i < heap.length; i++) if (heap[i].w < heap[bi].w) bi = i;
    return heap.splice(bi, 1)[0];
  };
  while (heap.length > 1) {
    const a = pop(), b = pop();
    for (const s of [...a.leaves, ...b.leaves]) len[s]++;
    heap.push({ w: a.w + b.w, leaves: [...a.leaves, ...b.leaves] });
  }
  heap = [];
  return len;
}

/** Minimal sum c_i l_i over all length vectors with l_i in 1..cap and Kraft sum <= 1 (brute force). */
function bruteForceLimitedCost(weights: number[], cap: number): number {
  let best = Infinity;
  const l = new Array(weights.length).fill(1);
  const rec = (i: number, kraft: number, cost: number) => {
    if (kraft > 1 + 1e-12 || cost >= best) return;
    if (i === weights.length) {
      best = cost;
      return;
    }
    for (let v = 1; v <= cap; v++) {
      l[i] = v;
      rec(i + 1, kraft + 2 ** -v, cost + weights[i] * v);
    }
  };
  rec(0, 0, 0);
  return best;
}

const cost = (h: number[], len: number[]) => h.reduce((a, c, s) => a + c * len[s], 0);
const kraft = (len: number[]) => len.reduce((a, l) => a + (l ? 2 ** -l : 0), 0);

// XXH64 (the checksum of the layout), in BigInt.
const M64 = (1n << 64n) - 1n;
const XP1 = 0x9e3779b185ebca87n, XP2 = 0xc2b2ae3d27d4eb4fn, XP3 = 0x165667b19e3779f9n, XP4 = 0x85ebca77c2b2ae63n, XP5 = 0x27d4eb2f165667c5n;
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M64;
const xround = (acc: bigint, v: bigint) => (rotl((acc + v * XP2) & M64, 31n) * XP1) & M64;
function xxh64(b: Uint8Array, seed = 0n): bigint {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = b.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + XP1 + XP2) & M64, v2 = (seed + XP2) & M64, v3 = seed, v4 = (seed - XP1) & M64;
    while (p + 32 <= len) {
      v1 = xround(v1, dv.getBigUint64(p, true));
      v2 = xround(v2, dv.getBigUint64(p + 8, true));
      v3 = xround(v3, dv.getBigUint64(p + 16, true));
      v4 = xround(v4, dv.getBigUint64(p + 24, true));
      p += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
    for (const v of [v1, v2, v3, v4]) h = ((((h ^ xround(0n, v)) * XP1) & M64) + XP4) & M64;
  } else {
    h = (seed + XP5) & M64;
  }
  h = (h + BigInt(len)) & M64;
  while (p + 8 <= len) {
    h ^= xround(0n, dv.getBigUint64(p, true));
    h = (((rotl(h, 27n) * XP1) & M64) + XP4) & M64;
    p += 8;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(dv.getUint32(p, true)) * XP1) & M64;
    h = (((rotl(h, 23n) * XP2) & M64) + XP3) & M64;
    p += 4;
  }
  while (p < len) {
    h ^= (BigInt(b[p]) * XP5) & M64;
    h = (rotl(h, 11n) * XP1) & M64;
    p++;
  }
  h ^= h >> 33n;
  h = (h * XP2) & M64;
  h ^= h >> 29n;
  h = (h * XP3) & M64;
  h ^= h >> 32n;
  return h;
}
const xxh32lo = (b: Uint8Array) => Number(xxh64(b) & 0xffffffffn);

// ---------------------------------------------------------------------------------------------------------
// The blob, as docs/ENTROPY.md describes it.

interface Parsed {
  coder: number;
  param: number;
  alphabet: number;
  n: number;
  chunk: number;
  nchunks: number;
  codeBits: number;
  entropy: number;
  table: number[];
  meta: number; // offset of the chunk table
  base: number; // offset of the payloads
  ends: number[];
  sums: number[];
}

const round8 = (x: number) => Math.ceil(x / 8) * 8;

/** The layout's fields, read without judging them (chunk entries only where they lie inside the blob). */
function layout(blob: Uint8Array): Parsed {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const coder = blob[9], param = blob[11];
  const alphabet = dv.getUint32(12, true);
  const n = Number(dv.getBigUint64(16, true));
  const chunk = dv.getUint32(24, true);
  const codeBits = Number(dv.getBigUint64(32, true));
  const entropy = dv.getFloat64(40, true);
  const table: number[] = [];
  for (let s = 0; s < alphabet && 48 + 2 * s + 2 <= blob.length; s++) table.push(coder === 0 ? blob[48 + s] : dv.getUint16(48 + 2 * s, true));
  const meta = 48 + round8(alphabet * (coder === 0 ? 1 : 2));
  const nchunks = n === 0 ? 0 : Math.ceil(n / chunk);
  const base = round8(meta + 12 * nchunks);
  const ends: number[] = [], sums: number[] = [];
  if (base <= blob.length) {
    for (let c = 0; c < nchunks; c++) {
      ends.push(Number(dv.getBigUint64(meta + 8 * c, true)));
      sums.push(dv.getUint32(meta + 8 * nchunks + 4 * c, true));
    }
  }
  return { coder, param, alphabet, n, chunk, nchunks, codeBits, entropy, table, meta, base, ends, sums };
}

/** The layout of a blob that must be well formed. */
function parse(blob: Uint8Array): Parsed {
  expect(String.fromCharCode(...blob.subarray(0, 4))).toBe('WPEC');
  expect(blob[8]).toBe(1);
  expect(blob[10]).toBe(4);
  expect(new DataView(blob.buffer, blob.byteOffset).getUint32(28, true)).toBe(0);
  const p = layout(blob);
  expect(p.base).toBeLessThanOrEqual(blob.length);
  return p;
}

/** Recomputes every checksum of a (tampered) blob, so that only the structural checks can reject it. */
function fixChecksums(blob: Uint8Array): void {
  const p = layout(blob);
  if (p.base > blob.length) return;
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let prev = 0;
  for (let c = 0; c < p.nchunks; c++) {
    const e = p.ends[c];
    if (e >= prev && p.base + e <= blob.length) dv.setUint32(p.meta + 8 * p.nchunks + 4 * c, xxh32lo(blob.subarray(p.base + prev, p.base + e)), true);
    prev = e;
  }
  dv.setUint32(4, xxh32lo(blob.subarray(8, p.base)), true);
}

/** Symbols of stream k of a chunk of m symbols: [floor(k m / 4), floor((k+1) m / 4)). */
const quarter = (m: number, k: number) => [Math.floor((k * m) / 4), Math.floor(((k + 1) * m) / 4)];

/** A Huffman decoder written from docs/ENTROPY.md: canonical codes (DEFLATE's), read LSB first, bit by bit. */
function referenceHuffmanDecode(blob: Uint8Array): Uint8Array {
  const p = parse(blob);
  expect(p.coder).toBe(0);
  const out = new Uint8Array(p.n);
  const used = p.table.filter((l) => l > 0).length;
  const count = new Array(17).fill(0);
  for (const l of p.table) if (l) count[l]++;
  const next = new Array(17).fill(0);
  let code = 0;
  for (let l = 1; l <= 16; l++) {
    code = (code + count[l - 1]) << 1;
    next[l] = code;
  }
  count[0] = 0;
  const byCode = new Map<string, number>();
  p.table.forEach((l, s) => {
    if (l) byCode.set(`${l}:${next[l]++}`, s);
  });
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  for (let c = 0; c < p.nchunks; c++) {
    const start = p.base + (c ? p.ends[c - 1] : 0), end = p.base + p.ends[c];
    const m = Math.min(p.chunk, p.n - c * p.chunk);
    const lens = [dv.getUint32(start, true), dv.getUint32(start + 4, true), dv.getUint32(start + 8, true)];
    lens.push(end - start - 12 - lens[0] - lens[1] - lens[2]);
    let pos = start + 12;
    for (let k = 0; k < 4; k++) {
      const [lo, hi] = quarter(m, k);
      let bit = 0;
      const rd = () => (blob[pos + (bit >> 3)] >> (bit++ & 7)) & 1;
      for (let i = lo; i < hi; i++) {
        if (used === 1) {
          out[c * p.chunk + i] = p.table.findIndex((l) => l > 0);
          continue;
        }
        let v = 0, l = 0;
        for (;;) {
          v = (v << 1) | rd();
          l++;
          const s = byCode.get(`${l}:${v}`);
          if (s !== undefined) {
            out[c * p.chunk + i] = s;
            break;
          }
          if (l > 16) throw new Error('bad code');
        }
      }
      expect(Math.ceil(bit / 8)).toBe(lens[k]);
      pos += lens[k];
    }
  }
  return out;
}

/** An rANS decoder written from docs/ENTROPY.md. */
function referenceRansDecode(blob: Uint8Array): Uint8Array {
  const p = parse(blob);
  expect(p.coder).toBe(1);
  const P = p.param, M = 2 ** P, L = 2 ** 15;
  const cum: number[] = [];
  let acc = 0;
  for (const f of p.table) {
    cum.push(acc);
    acc += f;
  }
  expect(acc).toBe(M);
  const slotSym = new Uint8Array(M);
  p.table.forEach((f, s) => slotSym.fill(s, cum[s], cum[s] + f));
  const out = new Uint8Array(p.n);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  for (let c = 0; c < p.nchunks; c++) {
    const start = p.base + (c ? p.ends[c - 1] : 0), end = p.base + p.ends[c];
    const m = Math.min(p.chunk, p.n - c * p.chunk);
    const x = [0, 1, 2, 3].map((j) => dv.getUint32(start + 4 * j, true));
    let q = start + 16;
    for (let i = 0; i < m; i++) {
      const j = i % 4;
      const slot = x[j] % M;
      const s = slotSym[slot];
      out[c * p.chunk + i] = s;
      x[j] = p.table[s] * Math.floor(x[j] / M) + slot - cum[s];
      if (x[j] < L) {
        x[j] = x[j] * 65536 + dv.getUint16(q, true);
        q += 2;
      }
    }
    expect(q).toBe(end);
    expect(x).toEqual([L, L, L, L]);
  }
  return out;
}

function randomSymbols(n: number, A: number, seed: number, skew = 1): Uint8Array {
  const r = mulberry32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(A - 1, Math.floor(A * r() ** skew));
  return out;
}

/** Symbols with Fibonacci frequencies 1, 1, 2, 3, 5, ... (an optimal code would be as deep as the alphabet). */
function fibonacciSymbols(A: number): Uint8Array {
  const f = [1, 1];
  while (f.length < A) f.push(f[f.length - 1] + f[f.length - 2]);
  const out = new Uint8Array(f.reduce((a, b) => a + b, 0));
  let o = 0;
  f.forEach((c, s) => {
    out.fill(s, o, o + c);
    o += c;
  });
  // Interleave deterministically so chunks see a mix.
  const r = mulberry32(99);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

describe('oracles', () => {
  it('XXH64 matches the published values', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(xxh64(enc(''))).toBe(0xef46db3751d8e999n);
    expect(xxh64(enc('a'))).toBe(0xd24ec4f1a98c6e5bn);
    expect(xxh64(enc('abc'))).toBe(0x44bc2cf5ad770999n);
    expect(xxh64(Uint8Array.from({ length: 100 }, (_, i) => i))).toBe(0x6ac1e58032166597n);
  });
  it('Lloyd-Max 4-bit thresholds and entropy are the classical ones', () => {
    const t = lloydMaxThresholds(4);
    expect(t[15 - 1]).toBeCloseTo(2.401, 2); // Max (1960): 2.4008
    expect(t[8]).toBeCloseTo(0.2582, 3);
    const edges = [-Infinity, ...t, Infinity];
    const p = edges.slice(1).map((b, i) => (b === Infinity ? 1 : Phi(b)) - (edges[i] === -Infinity ? 0 : Phi(edges[i])));
    expect(-p.reduce((a, v) => a + v * Math.log2(v), 0)).toBeCloseTo(3.7653, 3);
  });
});

describe('round trips', () => {
  it('random data, both coders, several chunk sizes and thread counts; blob identical across thread counts', async () => {
    for (const coder of CODERS) {
      for (const [n, A, skew] of [[5000, 16, 1], [20000, 256, 2], [3001, 3, 1], [70000, 37, 3]] as const) {
        const sym = randomSymbols(n, A, n + A, skew);
        for (const chunk of [1, 7, 1000, 65536]) {
          if (chunk === 1 && n > 5000) continue;
          let first: Uint8Array | undefined;
          for (const threads of [1, 2, 4]) {
            const r = await roundTrip(sym, { coder, alphabet: A, chunk, threads });
            expect(r.chunks).toBe(Math.ceil(n / chunk));
            if (!first) first = r.blob;
            else expect(equalBytes(r.blob, first), `${coder} n=${n} chunk=${chunk}: blob differs with ${threads} threads`).toBe(true);
          }
        }
      }
    }
  });

  it('a large blob (over 4 MiB: memory mapped with huge pages where available)', async () => {
    const sym = randomSymbols(6_000_000, 256, 77);
    for (const coder of CODERS) {
      const r = await roundTrip(sym, { coder, alphabet: 256 });
      expect(r.totalBytes).toBeGreaterThan(5_900_000);
      expect(native.entropyInfo(r.blob).n).toBe(sym.length);
    }
  });

  it('adversarial inputs', async () => {
    const r = mulberry32(7);
    const perm = Uint8Array.from({ length: 256 }, (_, i) => i);
    for (let i = 255; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const skew = new Uint8Array(1_000_001);
    skew[654_321] = 255;
    const cases: [string, Uint8Array, number][] = [
      ['n = 0', new Uint8Array(0), 16],
      ['n = 1', Uint8Array.of(5), 16],
      ['n = 1, A = 1', Uint8Array.of(0), 1],
      ['one symbol only', new Uint8Array(100_000).fill(9), 10],
      ['all 256 equally likely', Uint8Array.from({ length: 256 * 400 }, (_, i) => i % 256), 256],
      ['all symbols distinct in a short input', perm, 256],
      ['1e6 zeros and one 255', skew, 256],
      ['Fibonacci frequencies (24 symbols)', fibonacciSymbols(24), 24],
      ['two symbols', Uint8Array.from({ length: 999 }, (_, i) => (i % 3 === 0 ? 1 : 0)), 2],
    ];
    for (const [name, sym, A] of cases) {
      for (const coder of CODERS) {
        for (const chunk of [3, 4096, 65536]) {
          if (chunk === 3 && sym.length > 200_000) continue;
          const res = await roundTrip(sym, { coder, alphabet: A, chunk });
          const h = histogram(sym, A);
          expect(res.entropy, name).toBeCloseTo(entropyOf(h), 9);
          if (coder === 'huffman') expect(res.avgCodeLength - res.entropy, `${name}: L - H`).toBeLessThan(1);
          if (sym.length === 0) expect(res.avgCodeLength).toBe(0);
        }
      }
      // One symbol used: the Huffman code spends no bits on it.
      if (name === 'one symbol only') {
        const res = await native.entropyEncode(sym, { coder: 'huffman', alphabet: A });
        expect(res.avgCodeLength).toBe(0);
        expect(res.payloadBytes).toBe(12 * res.chunks);
      }
    }
  });

  it('Fibonacci frequencies force the length cap; the capped code is a complete prefix code', async () => {
    const sym = fibonacciSymbols(30); // an unlimited Huffman code would be 29 bits deep
    const h = histogram(sym, 30);
    expect(Math.max(...heapHuffmanLengths(h))).toBe(29);
    for (const maxLen of [16, 12, 8, 5]) {
      const res = await roundTrip(sym, { coder: 'huffman', alphabet: 30, maxLen, chunk: 10_000 });
      const len = parse(res.blob).table;
      expect(Math.max(...len)).toBeLessThanOrEqual(maxLen);
      expect(Math.max(...len)).toBe(maxLen);
      expect(kraft(len)).toBe(1);
      expect(res.avgCodeLength).toBeCloseTo(cost(h, len) / sym.length, 12);
      expect(cost(h, len)).toBeGreaterThan(cost(h, heapHuffmanLengths(h)));
      // A cap of 16 costs little here; a cap of 5 for 30 symbols cannot stay within a bit of H.
      if (maxLen >= 12) expect(res.avgCodeLength - res.entropy).toBeLessThan(1);
      expect(native.entropyInfo(res.blob).codeLengths).toEqual(len);
    }
    await expectCode(native.entropyEncode(sym, { coder: 'huffman', alphabet: 30, maxLen: 4 }), 'E_ARGUMENT'); // 30 > 2^4
  });

  it('the blob follows docs/ENTROPY.md: a reference decoder written from the docs reads it', async () => {
    for (const [sym, A] of [
      [gaussianCodes(3000, 4, 1), 16],
      [randomSymbols(2500, 200, 3, 2), 200],
      [new Uint8Array(50).fill(3), 4],
      [Uint8Array.of(1, 0, 1), 2],
    ] as const) {
      for (const chunk of [1, 5, 700, 65536]) {
        const hu = await native.entropyEncode(sym, { coder: 'huffman', alphabet: A, chunk });
        expect(equalBytes(referenceHuffmanDecode(hu.blob), sym)).toBe(true);
        const an = await native.entropyEncode(sym, { coder: 'ans', alphabet: A, chunk });
        expect(equalBytes(referenceRansDecode(an.blob), sym)).toBe(true);
        for (const r of [hu, an]) {
          const p = parse(r.blob);
          expect(p.n).toBe(sym.length);
          expect(p.alphabet).toBe(A);
          expect(p.chunk).toBe(chunk);
          expect(p.entropy).toBe(r.entropy);
          expect(p.base).toBe(r.tableBytes);
          expect(r.blob.length).toBe(r.totalBytes);
          expect(r.totalBytes).toBe(r.tableBytes + r.payloadBytes);
          expect(p.ends[p.nchunks - 1]).toBe(r.payloadBytes);
          // Checksums as documented.
          expect(new DataView(r.blob.buffer, r.blob.byteOffset).getUint32(4, true)).toBe(xxh32lo(r.blob.subarray(8, p.base)));
          p.sums.forEach((s, c) => expect(s).toBe(xxh32lo(r.blob.subarray(p.base + (c ? p.ends[c - 1] : 0), p.base + p.ends[c]))));
          const info = native.entropyInfo(r.blob);
          expect(info).toMatchObject({ n: r.n, alphabet: A, chunk, chunks: p.nchunks, entropy: r.entropy, avgCodeLength: r.avgCodeLength, tableBytes: r.tableBytes, payloadBytes: r.payloadBytes, totalBytes: r.totalBytes });
        }
        expect(hu.avgCodeLength).toBe(parse(hu.blob).codeBits / sym.length);
        expect(an.avgCodeLength).toBe((8 * an.payloadBytes) / sym.length);
      }
    }
  });
});

describe('code quality', () => {
  it('Huffman lengths are optimal where the cap does not bind (vs a heap-based Huffman code)', async () => {
    const r = mulberry32(2024);
    for (let t = 0; t < 40; t++) {
      const A = 2 + Math.floor(r() * 255);
      const sym = randomSymbols(2000 + Math.floor(r() * 20000), A, 1000 + t, 1 + 4 * r());
      const h = histogram(sym, A);
      const opt = heapHuffmanLengths(h);
      if (h.filter((c) => c > 0).length < 2 || Math.max(...opt) > 16) continue;
      const res = await native.entropyEncode(sym, { coder: 'huffman', alphabet: A });
      const len = parse(res.blob).table;
      expect(kraft(len)).toBe(1);
      len.forEach((l, s) => expect(l > 0).toBe(h[s] > 0));
      expect(cost(h, len)).toBe(cost(h, opt));
      expect(res.avgCodeLength - res.entropy).toBeLessThan(1);
    }
  });

  it('capped Huffman lengths are optimal among all codes under the cap (brute force, small alphabets)', async () => {
    const r = mulberry32(5);
    for (let t = 0; t < 25; t++) {
      const A = 3 + Math.floor(r() * 6);
      const cap = Math.max(Math.ceil(Math.log2(A)), 2 + Math.floor(r() * 3));
      const w = Array.from({ length: A }, (_, i) => 1 + Math.floor(2 ** (r() * 14)) + (i === 0 ? 1 << 15 : 0));
      const sym = new Uint8Array(w.reduce((a, b) => a + b, 0));
      let o = 0;
      w.forEach((c, s) => (sym.fill(s, o, o + c), (o += c)));
      const res = await roundTrip(sym, { coder: 'huffman', alphabet: A, maxLen: cap, chunk: 4096 });
      const len = parse(res.blob).table;
      expect(Math.max(...len)).toBeLessThanOrEqual(cap);
      expect(kraft(len)).toBeLessThanOrEqual(1);
      expect(cost(w, len)).toBe(bruteForceLimitedCost(w, cap));
    }
  });

  // The best prefix code for one symbol at a time is 0.0439 (4-bit) and 0.0411 (5-bit) bit above H for these
  // sources (exact Lloyd-Max cell probabilities), so 0.03 is out of reach for any symbol-by-symbol Huffman
  // code: the test asserts optimality against the heap construction and L - H <= 0.045 (docs/ENTROPY.md).
  for (const bits of [4, 5]) {
    it(`${bits}-bit Lloyd-Max Gaussian codes: Huffman optimal and L - H <= 0.045, rANS within 0.01 bit of H`, async () => {
      const sym = gaussianCodes(1_000_000, bits, 17 + bits);
      const h = histogram(sym, 1 << bits);
      const H = entropyOf(h);
      const hu = await roundTrip(sym, { coder: 'huffman', alphabet: 1 << bits });
      expect(hu.entropy).toBeCloseTo(H, 10);
      expect(cost(h, parse(hu.blob).table)).toBe(cost(h, heapHuffmanLengths(h)));
      expect(hu.avgCodeLength - H).toBeGreaterThanOrEqual(0);
      expect(hu.avgCodeLength - H).toBeLessThanOrEqual(0.045);
      if (bits === 4) {
        expect(H).toBeCloseTo(3.7653, 2);
        expect(hu.avgCodeLength).toBeLessThanOrEqual(3.815);
        expect((8 * hu.totalBytes) / sym.length).toBeLessThanOrEqual(3.815);
      }
      const an = await roundTrip(sym, { coder: 'ans', alphabet: 1 << bits });
      expect(an.avgCodeLength - H).toBeGreaterThanOrEqual(-1e-9);
      expect(an.avgCodeLength - H).toBeLessThanOrEqual(0.01);
      expect((8 * an.totalBytes) / sym.length - H).toBeLessThanOrEqual(0.01);
      // Normalized frequencies: every used symbol keeps a nonzero frequency.
      const f = parse(an.blob).table;
      histogram(sym, 1 << bits).forEach((c, s) => expect(f[s] > 0).toBe(c > 0));
    });
  }

  it('rANS keeps rare symbols (frequency floor) and stays near H on a skewed 256-symbol source', async () => {
    const sym = randomSymbols(1_000_000, 256, 11, 6);
    sym[12345] = 255; // a single occurrence
    const H = entropyOf(histogram(sym));
    const an = await roundTrip(sym, { coder: 'ans', alphabet: 256 });
    expect(parse(an.blob).table[255]).toBeGreaterThan(0);
    expect(an.avgCodeLength - H).toBeLessThanOrEqual(0.01);
  });
});

describe('corrupt blobs are rejected with E_FORMAT, never a crash', () => {
  const small = gaussianCodes(400, 4, 3);
  for (const coder of CODERS) {
    it(`${coder}: every single-bit flip in the header, table and chunk table`, async () => {
      const { blob } = await native.entropyEncode(small, { coder, alphabet: 16, chunk: 64 });
      const p = parse(blob);
      expect(p.nchunks).toBe(7);
      const out = new Uint8Array(small.length);
      for (let byte = 0; byte < p.base; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const b = blob.slice();
          b[byte] ^= 1 << bit;
          await expectCode(native.entropyDecode(b, out), 'E_FORMAT');
          await expectCode(() => native.entropyInfo(b), 'E_FORMAT');
        }
      }
    });

    it(`${coder}: flips in the payload, truncation at every length, a shuffled offset table`, async () => {
      const { blob } = await native.entropyEncode(small, { coder, alphabet: 16, chunk: 64 });
      const p = parse(blob);
      const out = new Uint8Array(small.length);
      const r = mulberry32(8);
      for (let t = 0; t < 300; t++) {
        const b = blob.slice();
        const i = p.base + Math.floor(r() * (b.length - p.base));
        b[i] ^= 1 << Math.floor(r() * 8);
        await expectCode(native.entropyDecode(b, out), 'E_FORMAT');
      }
      for (let len = 0; len < blob.length; len++) await expectCode(native.entropyDecode(blob.subarray(0, len), out), 'E_FORMAT');
      const extended = new Uint8Array(blob.length + 1);
      extended.set(blob);
      await expectCode(native.entropyDecode(extended, out), 'E_FORMAT');
      // Shuffled chunk table (offsets and their checksums together).
      const b = blob.slice();
      const dv = new DataView(b.buffer);
      const order = [3, 0, 6, 1, 5, 2, 4];
      order.forEach((src, dst) => {
        dv.setBigUint64(p.meta + 8 * dst, BigInt(p.ends[src]), true);
        dv.setUint32(p.meta + 8 * p.nchunks + 4 * dst, p.sums[src], true);
      });
      await expectCode(native.entropyDecode(b, out), 'E_FORMAT');
      fixChecksums(b); // still rejected by the structure alone
      await expectCode(native.entropyDecode(b, out), 'E_FORMAT');
      await expectCode(() => native.entropyInfo(b), 'E_FORMAT');
    });

    it(`${coder}: tampering with repaired checksums is still caught by the structure, or decodes without a crash`, async () => {
      const { blob } = await native.entropyEncode(small, { coder, alphabet: 16, chunk: 64 });
      const p = parse(blob);
      const out = new Uint8Array(small.length);
      // payload: the damage is inside a chunk, which entropyInfo does not read.
      const tamper = async (edit: (b: Uint8Array, dv: DataView) => void, message: RegExp, payload = false) => {
        const b = blob.slice();
        edit(b, new DataView(b.buffer));
        fixChecksums(b);
        await expectCode(native.entropyDecode(b, out), 'E_FORMAT', message);
        if (!payload) await expectCode(() => native.entropyInfo(b), 'E_FORMAT', message);
      };
      // Offsets not increasing / out of range / trailing bytes.
      await tamper((_, dv) => dv.setBigUint64(p.meta + 8, BigInt(p.ends[0]), true), /not increasing/);
      await tamper((_, dv) => dv.setBigUint64(p.meta + 8 * 6, BigInt(p.ends[6] + 1), true), /past the payload/);
      await tamper((_, dv) => dv.setBigUint64(p.meta + 8 * 2, BigInt(p.ends[1] + 3), true), /not increasing/);
      await tamper((_, dv) => dv.setBigUint64(p.meta + 8 * 6, BigInt(p.ends[6] - 1), true), /after the last chunk/);
      // Header fields.
      await tamper((b) => (b[8] = 2), /version/);
      await tamper((b) => (b[9] = 7), /coder/);
      await tamper((b) => (b[10] = 8), /streams/);
      await tamper((_, dv) => dv.setUint32(28, 1, true), /reserved/);
      // Code bits: rANS's must equal 8 x the payload; Huffman's are checked loosely by entropyInfo (within the
      // stream padding) and exactly by decoding.
      await tamper((_, dv) => dv.setBigUint64(32, BigInt(p.codeBits + 8), true), /code bit/, coder === 'huffman');
      await tamper((_, dv) => dv.setBigUint64(32, BigInt(p.codeBits + 10_000), true), /code bit/);
      await tamper((_, dv) => dv.setFloat64(40, NaN, true), /entropy/);
      await tamper((_, dv) => dv.setBigUint64(16, BigInt(small.length * 1000), true), /truncated/);
      if (coder === 'huffman') {
        // Not a prefix code / incomplete / over the cap.
        const longest = p.table.indexOf(Math.max(...p.table));
        await tamper((b) => (b[48 + longest] -= 1), /Kraft/);
        await tamper((b) => (b[48 + longest] += 1), /complete prefix code/);
        await tamper((b) => (b[11] = Math.max(...p.table) - 1), /exceeds the cap/);
        await tamper((b) => (b[48 + p.table.findIndex((l) => l > 0)] = 0), /complete prefix code/);
      } else {
        await tamper((_, dv) => dv.setUint16(48, p.table[0] + 1, true), /sum/);
        await tamper((b) => (b[11] = p.param + 1), /sum/);
      }
      // A stream-size word that moves a Huffman stream boundary, or a word too many for rANS (the chunk
      // checksum repaired): caught by the decoders' end checks.
      const first = p.base;
      if (coder === 'huffman') {
        await tamper((_, dv) => dv.setUint32(first, dv.getUint32(first, true) + 1, true), /does not end at its end|padding/, true);
      } else {
        await tamper((_, dv) => dv.setUint32(first, 0x7fff, true), /state out of range/, true);
      }
      // Payload flips behind repaired checksums: decoded or rejected, never a crash; rANS's end-state check
      // and the Huffman stream-end and code-bit checks catch most.
      const r = mulberry32(11);
      let rejected = 0;
      const trials = 200;
      for (let t = 0; t < trials; t++) {
        const b = blob.slice();
        const i = p.base + Math.floor(r() * (b.length - p.base));
        b[i] ^= 1 << Math.floor(r() * 8);
        fixChecksums(b);
        const o = new Uint8Array(small.length);
        try {
          await native.entropyDecode(b, o);
        } catch (e) {
          expect((e as { code?: string }).code).toBe('E_FORMAT');
          rejected++;
        }
      }
      expect(rejected).toBeGreaterThan(trials * (coder === 'ans' ? 0.9 : 0.3));
    });
  }

  it('garbage and look-alikes', async () => {
    const out = new Uint8Array(10);
    await expectCode(native.entropyDecode(new Uint8Array(0), new Uint8Array(0)), 'E_FORMAT');
    await expectCode(native.entropyDecode(randomSymbols(5000, 256, 1), out), 'E_FORMAT');
    const fake = randomSymbols(5000, 256, 2);
    fake.set([0x57, 0x50, 0x45, 0x43]);
    await expectCode(native.entropyDecode(fake, out), 'E_FORMAT');
    await expectCode(() => native.entropyInfo(fake), 'E_FORMAT');
  });
});

describe('arguments', () => {
  it('rejects bad options and symbols outside the alphabet with E_ARGUMENT', async () => {
    const sym = Uint8Array.of(0, 1, 2, 3, 16);
    await expectCode(native.entropyEncode(sym, { coder: 'huffman', alphabet: 16 }), 'E_ARGUMENT');
    await expectCode(native.entropyEncode(sym, { coder: 'ans', alphabet: 16 }), 'E_ARGUMENT');
    const ok = Uint8Array.of(0, 1, 2);
    await expectCode(async () => native.entropyEncode(ok, { coder: 'huffman', alphabet: 0 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(ok, { coder: 'huffman', alphabet: 257 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(ok, { coder: 'huffman', alphabet: 4, chunk: 0 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(ok, { coder: 'huffman', alphabet: 4, maxLen: 17 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(ok, { coder: 'huffman', alphabet: 4, maxLen: 1 }), 'E_ARGUMENT'); // 3 symbols > 2^1
    await expectCode(async () => native.entropyEncode(ok, { coder: 'ans', alphabet: 4, probBits: 16 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(ok, { coder: 'lz' as CoderName, alphabet: 4 }), 'E_ARGUMENT');
    await expectCode(async () => native.entropyEncode(new Uint16Array(3) as unknown as Uint8Array, { coder: 'huffman', alphabet: 4 }), 'E_ARGUMENT');
  });

  it('decode needs an output of exactly n symbols', async () => {
    const sym = randomSymbols(1000, 16, 4);
    const { blob } = await native.entropyEncode(sym, { coder: 'huffman', alphabet: 16 });
    await expectCode(native.entropyDecode(blob, new Uint8Array(999)), 'E_ARGUMENT');
    await expectCode(native.entropyDecode(blob, new Uint8Array(1001)), 'E_ARGUMENT');
  });

  it('a raised cancel flag stops encode and decode with E_CANCELLED', async () => {
    const sym = randomSymbols(200_000, 16, 5);
    const flag = new Int32Array(1);
    flag[0] = 1;
    await expectCode(native.entropyEncode(sym, { coder: 'huffman', alphabet: 16 }, flag), 'E_CANCELLED');
    const { blob } = await native.entropyEncode(sym, { coder: 'ans', alphabet: 16 });
    await expectCode(native.entropyDecode(blob, new Uint8Array(sym.length), 1, flag), 'E_CANCELLED');
  });
});
