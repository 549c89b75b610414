/**
 * Suite block: block-scaled 4-bit formats with a learned level table (docs/BLOCK.md) against llama.cpp's 4-bit
 * formats on the same weights: SQNR against bits per weight (scales, super-scales and tables counted), and the
 * throughput of the block quantizer on a large BF16 tensor against a memcpy of the same bytes.
 *
 *   npx tsx bench/block.bench.ts            (BENCH_QUICK=1 for a short run)
 *
 * Weights: every real checkpoint in ../shared/data (test/fixtures/emotion.f16 when that is missing), over the
 * tensors weightpress quantizes by default (>= 2 dims, >= 4096 elements) whose rows (numel / shape[0]) are a
 * multiple of 256; and a synthetic LLM-shaped matrix generated here: BENCH_BLOCK_ROWS x BENCH_BLOCK_COLS
 * (default 4096 x 4096, quick 512 x 4096) BF16, each row Student-t (5 dof) with a log-normal row scale, and
 * cols/512 outlier columns scaled x20.
 *
 * The references Q4_0, IQ4_NL and Q4_K are written here from llama.cpp's definitions (the same code as in
 * test/block.test.ts, where they are checked against llama.cpp's own numbers). Entropy-coded rows give an
 * ESTIMATED size: the empirical entropy of the codes plus 1%, plus the scales and the table; the ECSQ rate
 * parameter is searched so that this estimate is 4.5 bits per weight.
 */
import './env.js';

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';

import type { NativeAddon as BlockAddon, NativeBlockParams } from '../lib/native.js';
import { loadNative } from '../lib/load.js';
import { QUICK, Rng, emit, envInt, fmtMs, isMain, machineInfo, mdTable, note } from './common.js';

export const name = 'block';

const native = loadNative() as unknown as BlockAddon & {
  quantize(t: object, p: object, codes: Uint8Array, codebook: Uint8Array): Promise<{ sse: number; signal: number }>;
};
const fr = Math.fround;

// ---------------------------------------------------------------------------------------------------------
// References (see test/block.test.ts for the definitions)

const f16buf = new Uint16Array(1);
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
function toF16Bits(x: number): number {
  f32buf[0] = x;
  const xb = u32buf[0];
  const sign = (xb >>> 16) & 0x8000;
  const ax = xb & 0x7fffffff;
  if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);
  if (ax >= 0x477ff000) return sign | 0x7c00;
  if (ax < 0x38800000) {
    if (ax < 0x33000000) return sign;
    const e = ax >>> 23, m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  const r = (ax + 0xfff + ((ax >>> 13) & 1) - 0x38000000) >>> 13;
  return sign | r;
}
function fromF16Bits(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const f16 = (v: number) => fromF16Bits(toF16Bits(v));
void f16buf;
const nearestInt = (v: number) => fr(fr(v) + 12582912) - 12582912;

export function refQ4_0(x: Float32Array, out: Float32Array): void {
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) { const v = x[b + j]; if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; } }
    const d = fr(max / -8), id = d ? fr(1 / d) : 0, dh = f16(d);
    for (let j = 0; j < 32; j++) out[b + j] = fr(dh * (Math.min(15, Math.trunc(fr(fr(x[b + j] * id) + 8.5))) - 8));
  }
}
const KV = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
function kvIndex(v: number): number {
  if (v <= KV[0]) return 0;
  if (v >= KV[15]) return 15;
  let lo = 0, hi = 15;
  while (hi - lo > 1) { const m = (lo + hi) >> 1; if (v < KV[m]) hi = m; else lo = m; }
  return v - KV[hi - 1] < KV[hi] - v ? hi - 1 : hi;
}
function refIq4Nl(x: Float32Array, out: Float32Array): void {
  const w = new Float64Array(32);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) { const v = x[b + j]; w[j] = fr(v * v); if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; } }
    if (amax < 1e-15) { for (let j = 0; j < 32; j++) out[b + j] = 0; continue; }
    let d = fr(-max / KV[0]), id = fr(1 / d), sqx = 0, sq2 = 0;
    for (let j = 0; j < 32; j++) { const q = KV[kvIndex(fr(id * x[b + j]))]; sqx += w[j] * q * x[b + j]; sq2 += w[j] * q * q; }
    d = sq2 > 0 ? sqx / sq2 : 0;
    let best = d * sqx;
    for (let t = -7; t <= 7; t++) {
      id = fr((t + KV[0]) / max); sqx = 0; sq2 = 0;
      for (let j = 0; j < 32; j++) { const q = KV[kvIndex(fr(id * x[b + j]))]; sqx += w[j] * q * x[b + j]; sq2 += w[j] * q * q; }
      if (sq2 > 0 && sqx * sqx > best * sq2) { d = sqx / sq2; best = d * sqx; }
    }
    d = fr(d);
    const dh = f16(d);
    id = d ? fr(1 / d) : 0;
    for (let j = 0; j < 32; j++) out[b + j] = fr(dh * KV[kvIndex(fr(id * x[b + j]))]);
  }
}
const La = new Uint8Array(32);
function qkx2(x: Float32Array, o: number, w: Float64Array): [number, number] {
  let min = x[o], max = x[o], sw = w[0], sx = w[0] * x[o];
  for (let i = 1; i < 32; i++) { const v = x[o + i]; if (v < min) min = v; if (v > max) max = v; sw += w[i]; sx += w[i] * v; }
  if (min > 0) min = 0;
  if (max === min) return [0, -min];
  let iscale = fr(15 / (max - min));
  let scale = fr(1 / iscale), best = 0;
  for (let i = 0; i < 32; i++) {
    const l = Math.max(0, Math.min(15, nearestInt(iscale * (x[o + i] - min))));
    const df = scale * l + min - x[o + i];
    best += w[i] * df * df;
  }
  for (let is = 0; is <= 20; is++) {
    iscale = fr((-1 + 0.1 * is + 15) / (max - min));
    let sl = 0, sl2 = 0, sxl = 0;
    for (let i = 0; i < 32; i++) {
      const l = Math.max(0, Math.min(15, nearestInt(iscale * (x[o + i] - min))));
      La[i] = l; sl += w[i] * l; sl2 += w[i] * l * l; sxl += w[i] * l * x[o + i];
    }
    const D = sw * sl2 - sl * sl;
    if (D > 0) {
      let ts = (sw * sxl - sx * sl) / D, tm = (sl2 * sx - sl * sxl) / D;
      if (tm > 0) { tm = 0; ts = sxl / sl2; }
      let e = 0;
      for (let i = 0; i < 32; i++) { const df = ts * La[i] + tm - x[o + i]; e += w[i] * df * df; }
      if (e < best) { best = e; scale = ts; min = tm; }
    }
  }
  return [fr(scale), fr(-min)];
}
function refQ4K(x: Float32Array, out: Float32Array): void {
  const w = new Float64Array(32), sc = new Float64Array(8), mn = new Float64Array(8);
  for (let s = 0; s < x.length; s += 256) {
    let maxs = 0, maxm = 0;
    for (let j = 0; j < 8; j++) {
      const o = s + 32 * j;
      let s2 = 0;
      for (let l = 0; l < 32; l++) s2 += x[o + l] * x[o + l];
      const av = Math.sqrt(s2 / 32);
      for (let l = 0; l < 32; l++) w[l] = av + Math.abs(x[o + l]);
      [sc[j], mn[j]] = qkx2(x, o, w);
      if (sc[j] > maxs) maxs = sc[j];
      if (mn[j] > maxm) maxm = mn[j];
    }
    const is_ = maxs > 0 ? fr(63 / maxs) : 0, im = maxm > 0 ? fr(63 / maxm) : 0;
    const d = f16(maxs / 63), dmin = f16(maxm / 63);
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(is_ * sc[j])), lm = Math.min(63, nearestInt(im * mn[j]));
      const dd = fr(d * ls), dm = fr(dmin * lm), o = s + 32 * j;
      for (let l = 0; l < 32; l++) {
        const q = dd ? Math.max(0, Math.min(15, nearestInt((x[o + l] + dm) / dd))) : 0;
        out[o + l] = fr(fr(dd * q) - dm);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Data

export interface Tensor {
  name: string;
  dtype: string;
  data: Uint8Array;
  numel: number;
  cols: number;
  x: Float32Array;
}

function decode(data: Uint8Array, dtype: string): Float32Array {
  const n = data.byteLength / (dtype === 'F32' ? 4 : 2);
  const out = new Float32Array(n);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
    else if (dtype === 'BF16') u[i] = dv.getUint16(2 * i, true) << 16;
    else out[i] = fromF16Bits(dv.getUint16(2 * i, true));
  }
  return out;
}

export function checkpointTensors(file: string): Tensor[] {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  delete h.__metadata__;
  const out: Tensor[] = [];
  for (const [k, v] of Object.entries<{ dtype: string; shape: number[]; data_offsets: [number, number] }>(h)) {
    const ne = v.shape.reduce((a, c) => a * c, 1);
    if (v.shape.length < 2 || ne < 4096 || !['F32', 'F16', 'BF16'].includes(v.dtype) || (ne / v.shape[0]) % 256) continue;
    const data = new Uint8Array(b.buffer, b.byteOffset + 8 + n + v.data_offsets[0], v.data_offsets[1] - v.data_offsets[0]);
    out.push({ name: k, dtype: v.dtype, data, numel: ne, cols: ne / v.shape[0], x: decode(data, v.dtype) });
  }
  return out;
}

/** The synthetic LLM-shaped BF16 matrix (rows Student-t, 5 dof, log-normal row scales, outlier columns x20). */
export function llmMatrix(rows: number, cols: number, seed = 20261122): Tensor {
  const r = new Rng(seed);
  const nu = 5;
  const outliers = new Uint8Array(cols);
  for (let k = 0; k < Math.max(1, cols >> 9); k++) outliers[Math.floor(r.uniform() * cols)] = 1;
  const raw = new Uint16Array(rows * cols);
  const x = new Float32Array(rows * cols);
  const u = new Uint32Array(x.buffer);
  for (let i = 0; i < rows; i++) {
    const rs = 0.02 * Math.exp(0.4 * r.normal());
    for (let j = 0; j < cols; j++) {
      let chi = 0;
      for (let k = 0; k < nu; k++) { const z = r.normal(); chi += z * z; }
      const v = (r.normal() / Math.sqrt(chi / nu)) * rs * (outliers[j] ? 20 : 1);
      const idx = i * cols + j;
      x[idx] = v;
      const bits = u[idx];
      const h = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
      raw[idx] = h;
      u[idx] = h << 16;  // x holds the BF16 value
    }
  }
  return { name: `synthetic ${rows}x${cols} BF16`, dtype: 'BF16', data: new Uint8Array(raw.buffer), numel: rows * cols, cols, x };
}

// ---------------------------------------------------------------------------------------------------------
// Measures

interface Row {
  method: string;
  bpw: number;
  sse: number;
  ms: number;
  note?: string;
}

async function learned(ts: Tensor[], p: NativeBlockParams, entropy = false) {
  let sse = 0, bits = 0, n = 0, ebits = 0, ms = 0;
  const hist: number[] = [];
  for (const t of ts) {
    const sz = native.blockSizes(t.numel, t.cols, p);
    const t0 = performance.now();
    const st = await native.blockQuantize({ data: t.data, dtype: t.dtype, numel: t.numel, cols: t.cols }, p,
      new Uint8Array(sz.codesBytes), new Uint8Array(sz.scalesBytes), new Uint8Array(sz.tableBytes));
    ms += performance.now() - t0;
    sse += st.sse;
    bits += st.bits;
    n += st.n;
    ebits += st.bits - st.n * (p.bits ?? 4) + st.n * st.codeEntropy * 1.01;
    if (!hist.length) hist.push(...st.history);
  }
  return { sse, bpw: (entropy ? ebits : bits) / n, ms, hist };
}

function reference(ts: Tensor[], f: (x: Float32Array, o: Float32Array) => void) {
  let sse = 0;
  const t0 = performance.now();
  for (const t of ts) {
    const y = new Float32Array(t.numel);
    f(t.x, y);
    for (let i = 0; i < t.numel; i++) sse += (t.x[i] - y[i]) ** 2;
  }
  return { sse, ms: performance.now() - t0 };
}

async function perRowKmeans(ts: Tensor[]) {
  let sse = 0, bits = 0, n = 0, ms = 0;
  for (const t of ts) {
    const rows = t.numel / t.cols;
    const codes = new Uint8Array(Math.ceil((t.numel * 4) / 8 / 8) * 8);
    const cb = new Uint8Array(rows * 16 * 4);
    const t0 = performance.now();
    const st = await native.quantize({ data: t.data, dtype: t.dtype, numel: t.numel }, { method: 'kmeans-optimal', bits: 4, granularity: 'row', sliceSize: t.cols, codebookDtype: 'F32' }, codes, cb);
    ms += performance.now() - t0;
    sse += st.sse;
    bits += t.numel * 4 + rows * 16 * 32;
    n += t.numel;
  }
  return { sse, bpw: bits / n, ms };
}

/** ECSQ tables, 2^bits levels, codes entropy-coded: the rate parameter searched so the estimated size is `target`. */
async function ecsqAt(ts: Tensor[], base: NativeBlockParams, target: number, tries: number) {
  let lo = 1.5, hi = 4.5, best: Awaited<ReturnType<typeof learned>> & { rate: number } | undefined;
  for (let i = 0; i < tries; i++) {
    const rate = (lo + hi) / 2;
    const r = await learned(ts, { ...base, solver: 'ecsq', solverParams: { rate }, packBits: 8 }, true);
    if (r.bpw <= target) { lo = rate; if (!best || r.sse < best.sse) best = { ...r, rate }; }
    else hi = rate;
  }
  return best;
}

export const FORMAT: NativeBlockParams = { bits: 4, blockSize: 16, scale: 'optimal', table: 'tensor', doubleQuant: { bits: 6, superBlock: 256 } };

async function sqnrTable(label: string, ts: Tensor[], ecsqTries: number): Promise<string> {
  let signal = 0, n = 0;
  for (const t of ts) for (let i = 0; i < t.numel; i++) signal += t.x[i] * t.x[i];
  for (const t of ts) n += t.numel;
  note(`block: ${label} (${ts.length} tensors, ${n} weights)`);
  const rows: Row[] = [];
  const add = (method: string, r: { sse: number; bpw?: number; ms: number }, bpw?: number, noteText?: string) => {
    rows.push({ method, bpw: bpw ?? r.bpw!, sse: r.sse, ms: r.ms, note: noteText });
    note(`  ${method}: ${(10 * Math.log10(signal / r.sse)).toFixed(2)} dB`);
  };
  add('Q4_0 (llama.cpp reference)', reference(ts, refQ4_0), 4.5);
  add('IQ4_NL (llama.cpp reference)', reference(ts, refIq4Nl), 4.5);
  add('Q4_K (llama.cpp reference)', reference(ts, refQ4K), 4.5);
  add('exact k-means per row, 4 bits (F32 codebook per row)', await perRowKmeans(ts));
  add('IQ4_NL table, optimal scales (this engine, fixed table)', await learned(ts, { bits: 4, blockSize: 32, fixedTable: KV }));
  add('learned table, B32, F16 scales, absmax', await learned(ts, { bits: 4, blockSize: 32, scale: 'absmax' }));
  add('learned table, B32, F16 scales, optimal', await learned(ts, { bits: 4, blockSize: 32 }));
  add('learned table per row, B32, F16 scales, optimal', await learned(ts, { bits: 4, blockSize: 32, table: 'row' }));
  add('learned table, B32, 8-bit scales / 256, optimal', await learned(ts, { bits: 4, blockSize: 32, doubleQuant: { bits: 8, superBlock: 256 } }));
  add('learned table, B16, 6-bit scales / 256, absmax', await learned(ts, { ...FORMAT, scale: 'absmax' }));
  add('learned table, B16, 6-bit scales / 256, optimal, 3 rounds', await learned(ts, { ...FORMAT, rounds: 3 }));
  add('**learned table, B16, 6-bit scales / 256, optimal** (default rounds)', await learned(ts, FORMAT));
  add('learned table, B16, 7-bit scales / 512, optimal', await learned(ts, { ...FORMAT, doubleQuant: { bits: 7, superBlock: 512 } }));
  if (ecsqTries > 0) {
    const e = await ecsqAt(ts, { ...FORMAT, bits: 6 }, 4.5, ecsqTries);
    if (e) add('ECSQ table (64 levels), B16, 6-bit scales / 256, entropy-coded (estimate: H + 1%)', e, undefined, `rate ${e.rate.toFixed(3)}`);
    else note('  ECSQ: no rate in the search range met the size target');
  }
  const q4k = rows[2].sse;
  const table = mdTable(
    ['method', 'bits/weight', 'SQNR dB', 'vs Q4_K dB', 'time'],
    rows.map((r) => [
      r.method + (r.note ? ` (${r.note})` : ''),
      r.bpw.toFixed(4),
      (10 * Math.log10(signal / r.sse)).toFixed(2),
      (10 * Math.log10(q4k / r.sse) >= 0 ? '+' : '') + (10 * Math.log10(q4k / r.sse)).toFixed(2),
      fmtMs(r.ms),
    ]),
  );
  return `### ${label}\n\n${ts.length} tensor(s), ${n.toLocaleString('en-US')} weights.\n\n${table}\n`;
}

async function throughput(t: Tensor, reps: number): Promise<string> {
  const bytes = t.data.byteLength;
  const dst = new Uint8Array(bytes);
  let best = Infinity;
  for (let i = 0; i < Math.max(3, reps); i++) {
    const t0 = performance.now();
    dst.set(t.data);
    best = Math.min(best, performance.now() - t0);
  }
  const rows: (string | number)[][] = [['memcpy (TypedArray.set) of the same bytes', '-', fmtMs(best), `${(bytes / 1e6 / (best / 1e3)).toFixed(0)}`, '1']];
  const threads = [1, availableParallelism()].filter((v, i, a) => a.indexOf(v) === i);
  const configs: [string, NativeBlockParams][] = [
    ['learned, B16, 6-bit scales / 256, optimal (default rounds)', FORMAT],
    ['learned, B16, 6-bit scales / 256, optimal, 3 rounds', { ...FORMAT, rounds: 3 }],
    ['learned, B16, 6-bit scales / 256, absmax', { ...FORMAT, scale: 'absmax' }],
    ['IQ4_NL table, optimal scales (the GGUF export)', { bits: 4, blockSize: 32, fixedTable: KV }],
  ];
  for (const [label, p] of configs) {
    for (const th of threads) {
      note(`block: throughput ${label}, ${th} thread(s)`);
      let ms = Infinity;
      for (let i = 0; i < reps; i++) ms = Math.min(ms, (await learned([t], { ...p, threads: th })).ms);
      rows.push([label, th, fmtMs(ms), (bytes / 1e6 / (ms / 1e3)).toFixed(1), `${(ms / best).toFixed(0)}`]);
    }
  }
  // Decode.
  const p = FORMAT;
  const sz = native.blockSizes(t.numel, t.cols, p);
  const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), table = new Uint8Array(sz.tableBytes);
  await native.blockQuantize({ data: t.data, dtype: t.dtype, numel: t.numel, cols: t.cols }, { ...p, rounds: 0 }, codes, scales, table);
  for (const th of threads) {
    const out = new Uint8Array(t.numel * 2);
    let ms = Infinity;
    for (let i = 0; i < Math.max(3, reps); i++) {
      const t0 = performance.now();
      await native.blockDequantize({ codes, scales, table, numel: t.numel, cols: t.cols }, p, 'BF16', out, th);
      ms = Math.min(ms, performance.now() - t0);
    }
    rows.push(['blockDequantize to BF16', th, fmtMs(ms), (bytes / 1e6 / (ms / 1e3)).toFixed(0), `${(ms / best).toFixed(1)}`]);
  }
  return `### Throughput on ${t.name} (${(bytes / 2 ** 20).toFixed(0)} MiB)\n\n` +
    mdTable(['what', 'threads', 'time (best of ' + reps + ')', 'MB/s of BF16 input', 'x memcpy'], rows) + '\n';
}

export async function run(): Promise<string> {
  const rowsN = envInt('BENCH_BLOCK_ROWS', 4096, 512);
  const colsN = envInt('BENCH_BLOCK_COLS', 4096, 4096);
  const reps = envInt('BENCH_BLOCK_REPS', 2, 1);
  const ecsqTries = envInt('BENCH_BLOCK_ECSQ_TRIES', 5, 3);
  const shared = new URL('../../shared/data/', import.meta.url).pathname;
  const files: string[] = [];
  if (existsSync(shared)) for (const f of readdirSync(shared).sort()) if (f.endsWith('.safetensors')) files.push(shared + f);
  if (!files.length) files.push(new URL('../test/fixtures/emotion.f16.safetensors', import.meta.url).pathname);
  const parts = [
    '## block: block-scaled 4-bit formats with a learned table vs Q4_0 / IQ4_NL / Q4_K',
    '',
    machineInfo(),
    '',
    `Reproduce: \`${QUICK ? 'BENCH_QUICK=1 ' : ''}npx tsx bench/block.bench.ts\`. Bits/weight count codes, scales, super-scales ` +
      'and tables (padding excluded). SQNR = 10 log10(Σx² / Σ(x - x̂)²) over the tensors of the table. Q4_0, IQ4_NL and Q4_K are ' +
      'llama.cpp\'s reference quantizers re-implemented in TypeScript (single thread); the learned-table rows run in the addon ' +
      `with ${availableParallelism()} threads. Entropy-coded sizes are estimates (code entropy + 1%). The machine is shared: times are indicative.`,
    '',
  ];
  for (const f of files) parts.push(await sqnrTable(f.split('/').pop()!, checkpointTensors(f), ecsqTries));
  note(`block: generating the ${rowsN}x${colsN} synthetic matrix`);
  const synth = llmMatrix(rowsN, colsN);
  parts.push(await sqnrTable(synth.name, [synth], QUICK ? 0 : Math.min(ecsqTries, 3)));
  parts.push(await throughput(synth, reps));
  return parts.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await run());
}
