/**
 * Suite entropy: the entropy coders (native/core/entropy, docs/ENTROPY.md) on 4-bit Lloyd-Max Gaussian codes.
 *
 *   weightpress Huffman  entropyEncode / entropyDecode, coder 'huffman' (1 thread, all threads)
 *   weightpress rANS     entropyEncode / entropyDecode, coder 'ans'     (1 thread, all threads)
 *   zlib Huffman-only    zlib.deflateRawSync(strategy Z_HUFFMAN_ONLY) / inflateRawSync, Node's own zlib
 *   memcpy               Uint8Array.prototype.set of the same bytes: the machine's limit
 *
 * The symbols: n = BENCH_ENTROPY_MIB MiB (default 256, BENCH_QUICK=1: 16) of codes, each the index of the
 * Lloyd-Max cell (16 levels, thresholds by Lloyd's iteration on the N(0,1) density) of a standard Gaussian
 * draw, sampled by inverse transform (a uniform 32-bit number against the cells' CDF boundaries): entropy
 * 3.7653 bit. 1 symbol = 1 byte, so MB/s is symbols per microsecond. Targets (per core, one thread): Huffman
 * encode >= 1200 MB/s, decode >= 1860 MB/s at <= 3.815 bit/symbol.
 *
 *   npx tsx bench/entropy.bench.ts            (BENCH_QUICK=1 for the reduced size)
 */
import './env.js';

import { availableParallelism, loadavg } from 'node:os';
import { constants as zc, deflateRawSync, inflateRawSync } from 'node:zlib';

import { loadNative } from '../lib/load.js';
import { QUICK, Rng, benchHeader, emit, envInt, isMain, mdTable, note, timeTasks, type TaskSpec } from './common.js';

export const name = 'entropy';

interface EntropyAddon {
  entropyEncode(
    symbols: Uint8Array,
    opts: { coder: 'huffman' | 'ans'; alphabet: number; chunk?: number; threads?: number },
  ): Promise<{ blob: Uint8Array; entropy: number; avgCodeLength: number; tableBytes: number; payloadBytes: number; totalBytes: number }>;
  entropyDecode(blob: Uint8Array, out: Uint8Array, threads?: number): Promise<void>;
}

const SEED = 20240611;
const TARGET_ENC = 1200, TARGET_DEC = 1860, TARGET_BITS = 3.815;

function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
  const s = x < 0 ? -1 : 1, a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  return s * (1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a));
}
const Phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
const phi = (x: number) => (Number.isFinite(x) ? Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI) : 0);

/** CDF values at the decision thresholds of the 2^bits-level Lloyd-Max quantizer of N(0,1). */
function lloydMaxCdf(bits: number): number[] {
  const k = 1 << bits;
  let c = Array.from({ length: k }, (_, i) => -3 + (6 * (i + 0.5)) / k);
  let t: number[] = [];
  for (let it = 0; it < 2000; ++it) {
    t = c.slice(1).map((v, i) => 0.5 * (c[i] + v));
    const e = [-Infinity, ...t, Infinity];
    c = c.map((_, i) => (phi(e[i]) - phi(e[i + 1])) / ((e[i + 1] === Infinity ? 1 : Phi(e[i + 1])) - (e[i] === -Infinity ? 0 : Phi(e[i]))));
  }
  return t.map(Phi);
}

/** n codes by inverse transform: code = number of CDF boundaries below a uniform 32-bit draw. */
function lloydMaxCodes(n: number, bits: number, seed: number): { codes: Uint8Array; entropy: number } {
  const cdf = lloydMaxCdf(bits);
  const bounds = cdf.map((p) => Math.round(p * 2 ** 32));
  const codeOf = (u: number) => {
    let k = 0;
    while (k < bounds.length && u >= bounds[k]) ++k;
    return k;
  };
  // Buckets of the top 16 bits: the code, or 255 where a boundary falls inside the bucket.
  const lut = new Uint8Array(65536);
  for (let b = 0; b < 65536; ++b) {
    const lo = codeOf(b * 65536), hi = codeOf(b * 65536 + 65535);
    lut[b] = lo === hi ? lo : 255;
  }
  const codes = new Uint8Array(n);
  const rng = new Rng(seed);
  const buf = new Uint32Array(1 << 16);
  for (let i = 0; i < n; i += buf.length) {
    const m = Math.min(buf.length, n - i);
    rng.fillU32(buf, m);
    for (let j = 0; j < m; ++j) {
      const u = buf[j];
      const c = lut[u >>> 16];
      codes[i + j] = c !== 255 ? c : codeOf(u);
    }
  }
  const p = [...cdf, 1].map((v, i) => v - (i ? cdf[i - 1] : 0));
  return { codes, entropy: -p.reduce((a, v) => a + v * Math.log2(v), 0) };
}

function sampleEntropy(codes: Uint8Array): number {
  const h = new Float64Array(256);
  for (let i = 0; i < codes.length; ++i) h[codes[i]]++;
  let H = 0;
  for (const c of h) if (c) H -= (c / codes.length) * Math.log2(c / codes.length);
  return H;
}

export async function run(): Promise<string> {
  const native = loadNative() as unknown as EntropyAddon;
  const mib = envInt('BENCH_ENTROPY_MIB', 256, 16);
  const n = mib * 2 ** 20;
  const all = availableParallelism();
  note(`entropy: generating ${mib} MiB of 4-bit Lloyd-Max Gaussian codes`);
  const { codes, entropy: Htheory } = lloydMaxCodes(n, 4, SEED);
  const H = sampleEntropy(codes);
  const out = new Uint8Array(n);
  const la0 = loadavg()[0];

  interface Row { label: string; op: string; threads: string; bits: number | null; target?: number; task: TaskSpec }
  const rows: Row[] = [];
  const threadSets = all > 1 ? [1, all] : [1];
  const blobs: Record<string, Uint8Array> = {};
  for (const coder of ['huffman', 'ans'] as const) {
    const label = coder === 'huffman' ? 'weightpress Huffman' : 'weightpress rANS';
    const first = await native.entropyEncode(codes, { coder, alphabet: 16, threads: 1 });
    blobs[coder] = first.blob;
    await native.entropyDecode(first.blob, out, 1);
    if (Buffer.compare(out, codes) !== 0) throw new Error(`${coder}: decode(encode(x)) != x`);
    out.fill(0);
    const bits = (8 * first.totalBytes) / n;
    for (const t of threadSets) {
      rows.push({ label, op: 'encode', threads: String(t), bits, target: coder === 'huffman' && t === 1 ? TARGET_ENC : undefined,
        task: { name: `${label} encode ${t}t`, fn: () => native.entropyEncode(codes, { coder, alphabet: 16, threads: t }), iterations: 'auto', budgetMs: QUICK ? 2000 : 5000, maxIterations: QUICK ? 150 : 20 } });
    }
    for (const t of threadSets) {
      rows.push({ label, op: 'decode', threads: String(t), bits, target: coder === 'huffman' && t === 1 ? TARGET_DEC : undefined,
        task: { name: `${label} decode ${t}t`, fn: () => native.entropyDecode(blobs[coder], out, t), iterations: 'auto', budgetMs: QUICK ? 2000 : 5000, maxIterations: QUICK ? 150 : 20 } });
    }
  }
  const zopts = { strategy: zc.Z_HUFFMAN_ONLY };
  const zblob = deflateRawSync(codes, zopts);
  if (Buffer.compare(inflateRawSync(zblob), codes) !== 0) throw new Error('zlib round trip failed');
  const zbits = (8 * zblob.length) / n;
  rows.push({ label: 'zlib Huffman-only (node:zlib)', op: 'encode', threads: '1', bits: zbits,
    task: { name: 'zlib deflateRawSync Z_HUFFMAN_ONLY', fn: () => deflateRawSync(codes, zopts), iterations: 'auto', budgetMs: QUICK ? 2000 : 6000, maxIterations: QUICK ? 5 : 3 } });
  rows.push({ label: 'zlib Huffman-only (node:zlib)', op: 'decode', threads: '1', bits: zbits,
    task: { name: 'zlib inflateRawSync', fn: () => inflateRawSync(zblob), iterations: 'auto', budgetMs: QUICK ? 2000 : 6000, maxIterations: QUICK ? 5 : 3 } });
  rows.push({ label: 'memcpy (Uint8Array.set)', op: 'copy', threads: '1', bits: 8,
    task: { name: 'memcpy', fn: () => out.set(codes), iterations: 'auto', budgetMs: 1000, maxIterations: 20 } });

  const timings = await timeTasks('entropy', rows.map((r) => r.task), { iterations: 3, warmup: 1 });
  const la1 = loadavg()[0];
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const failures: string[] = [];
  const table = rows.map((r) => {
    const t = timings.get(r.task.name)!;
    const best = n / (t.min * 1e3), mean = n / (t.mean * 1e3);
    let verdict = '';
    if (r.target) {
      const ok = best >= r.target && (r.bits ?? 99) <= TARGET_BITS;
      verdict = `${ok ? 'yes' : '**no**'} (>= ${r.target} MB/s, <= ${TARGET_BITS} bit)`;
      if (!ok) failures.push(`${r.label} ${r.op}, 1 thread: ${fmt(best)} MB/s at ${r.bits?.toFixed(4)} bit/symbol (target >= ${r.target} MB/s, <= ${TARGET_BITS} bit)`);
    }
    return [r.label, r.op, r.threads, r.bits === null ? '-' : r.bits.toFixed(4), fmt(best), fmt(mean), String(t.samples), verdict];
  });
  const md = [
    `## entropy: Huffman and rANS on ${mib} MiB of 4-bit Lloyd-Max Gaussian codes`,
    '',
    `${n.toLocaleString('en-US')} symbols (1 byte each), seed ${SEED}; entropy of the sample ${H.toFixed(4)} bit/symbol ` +
      `(of the source ${Htheory.toFixed(4)}). bits/symbol = whole blob (header, tables, chunk offsets and checksums, ` +
      `payload) x 8 / n; chunks of 65536 symbols. MB/s = 10^6 symbols per second, best and mean of the runs, in one ` +
      `process on the same data. All threads = ${all}. Load average (1 min) ${la0.toFixed(2)} at start, ${la1.toFixed(2)} at end` +
      `${la0 > all * 0.5 || la1 > all * 0.5 ? ' (the machine was shared: expect noise, the best run is the fairest)' : ''}.`,
    '',
    mdTable(['coder', 'op', 'threads', 'bits/symbol', 'MB/s best', 'MB/s mean', 'runs', 'target (1 thread, Huffman)'], table,
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l']),
    '',
  ];
  if (failures.length) md.push('**Targets missed:**', '', ...failures.map((f) => `- ${f}`), '');
  return md.join('\n');
}

if (isMain(import.meta.url)) {
  emit(await benchHeader());
  emit(await run());
}
