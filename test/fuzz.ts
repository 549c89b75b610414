/**
 * A seeded mutation fuzzer for weightpress's two readers: the safetensors container and the weightpress scheme in
 * its metadata (issue #11). The corpus: a small checkpoint quantized by every quantizing codec of the registry,
 * with packed and with entropy-coded codes. Each variant mutates one file: one field of the scheme (deleted, set
 * to null, a number nudged, scaled or replaced, a string swapped for another field's value, an entry dropped or
 * renamed), with its digest left as written or re-signed (as a writer of that scheme would have), one byte of the
 * header, the header length, the file's length, or one byte of the data. Each variant is decoded and inspected;
 * the oracle:
 * - no crash and no untyped error: every failure is a WeightpressError naming the variant's file, E_FORMAT or
 *   E_DTYPE (the file is bad), E_IO (it is short) or E_RANGE (a mutated value beyond the output dtype);
 * - no partial output: a failed decode leaves its output directory empty;
 * - a mutated scheme or header either fails so, or decodes exactly (names, dtypes, shapes, bytes) as the file
 *   did before the mutation; a re-signed scheme either fails so or decodes to exactly the tensors (names, dtypes,
 *   shapes) it describes;
 * - a mutated byte inside an entropy-coded stream fails (the stream's checksums).
 * test/fuzz.test.ts runs a fixed corpus inside npm test; `npm run fuzz -- --count N [--seed S]` runs more.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { WeightpressError, decode, inspect, quantize } from '../lib/index.js';
import { QUANTIZING_CODECS } from '../lib/codecs/registry.js';
import { codecOptions } from './codec-options.js';
import { DIGEST_KEY, schemeDigest } from '../lib/format.js';
import { encode, gaussian, mulberry32, readSafetensors, rewriteMetadata, writeSafetensors } from './helpers.js';

export interface FuzzReport {
  tried: number;
  /** Variants that failed with a typed error. */
  rejected: number;
  /** Variants that decoded exactly as their unmutated file. */
  same: number;
  /**
   * Variants that decoded to other values, as they may: data mutations outside entropy streams (packed codes carry
   * no checksum), and re-signed schemes (to the tensors they describe).
   */
  decodedOther: number;
  /** What broke the oracle, one line each. */
  failures: string[];
  byKind: Record<string, { tried: number; rejected: number }>;
}

interface Base {
  label: string;
  path: string;
  bytes: Buffer;
  /** The decoded tensors: name -> dtype, shape and bytes (hex of a hash would do; the bytes are small). */
  decoded: Map<string, { dtype: string; shape: number[]; data: Buffer }>;
  /** Byte ranges (absolute, in the file) of entropy-coded payload. */
  streams: [number, number][];
}

function readDecoded(path: string): Base['decoded'] {
  const f = readSafetensors(path);
  const m = new Map<string, { dtype: string; shape: number[]; data: Buffer }>();
  for (const [name, e] of Object.entries(f.header)) m.set(name, { dtype: e.dtype, shape: e.shape, data: Buffer.from(f.tensor(name)) });
  return m;
}

function sameDecoded(a: Base['decoded'], b: Base['decoded']): boolean {
  if (a.size !== b.size) return false;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.dtype !== x.dtype || JSON.stringify(y.shape) !== JSON.stringify(x.shape) || !y.data.equals(x.data)) return false;
  }
  return true;
}

/** The corpus: one small checkpoint through every quantizing codec, packed and entropy-coded. */
export async function corpus(dir: string): Promise<Base[]> {
  mkdirSync(dir, { recursive: true });
  const input = join(dir, 'dense.safetensors');
  writeSafetensors(input, [
    { name: 'w0', dtype: 'F32', shape: [16, 32], data: encode(gaussian(16 * 32, 11), 'F32') },
    { name: 'w1', dtype: 'F16', shape: [8, 32], data: encode(gaussian(8 * 32, 12), 'F16') },
    { name: 'bias', dtype: 'F32', shape: [32], data: encode(gaussian(32, 13), 'F32') },
    { name: 'steps', dtype: 'I64', shape: [1], data: new Uint8Array(8) },
  ]);
  const bases: Base[] = [];
  for (const codec of QUANTIZING_CODECS) {
    for (const entropy of ['none', 'huffman', 'ans'] as const) {
      const label = `${codec}-${entropy}`;
      const path = join(dir, `${label}.safetensors`);
      await quantize(input, path, { codec, entropy, ...codecOptions(codec), minElements: 64 });
      const out = join(dir, `${label}.dense.safetensors`);
      await decode(path, out);
      const f = readSafetensors(path);
      const scheme = JSON.parse(f.metadata.weightpress) as { tensors: Record<string, { stream?: string; streamBytes?: number }> };
      const streams: [number, number][] = [];
      for (const s of Object.values(scheme.tensors)) {
        if (!s.stream) continue;
        const begin = 8 + f.headerLength + f.header[s.stream].data_offsets[0];
        streams.push([begin, begin + s.streamBytes!]);
      }
      bases.push({ label, path, bytes: readFileSync(path), decoded: readDecoded(out), streams });
    }
  }
  return bases;
}

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Every path to a value inside a JSON value. */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (at.length) out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

function strings(v: unknown, out = new Set<string>()): Set<string> {
  if (typeof v === 'string') out.add(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) strings(x, out.add(k));
  return out;
}

/** One mutation of a scheme object (in place); its description. */
function mutateScheme(r: Rng, scheme: Record<string, unknown>): string {
  const all = paths(scheme);
  const path = pick(r, all);
  let parent: Record<string | number, unknown> = scheme;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1];
  const v = parent[key];
  const pool = [...strings(scheme), '', 'F16', 'BF16', 'F32', 'U8', 'row', 'tensor', 'group', 'network', 'block', 'ans', 'huffman', 'keep', 'scalar'];
  const op = Math.floor(r() * 6);
  let what: string;
  if (op === 0) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    what = 'deleted';
  } else if (op === 1) {
    parent[key] = null;
    what = 'null';
  } else if (typeof v === 'number') {
    const x = pick(r, [v + 1, v - 1, v * 2, Math.floor(v / 2), 0, -1, 0.5, 1e300, 2 ** 53]);
    parent[key] = x;
    what = `${v} -> ${x}`;
  } else if (typeof v === 'string') {
    const x = pick(r, pool);
    parent[key] = x;
    what = `${JSON.stringify(v)} -> ${JSON.stringify(x)}`;
  } else if (typeof v === 'boolean') {
    parent[key] = !v;
    what = 'flipped';
  } else if (v && typeof v === 'object' && !Array.isArray(v) && op === 2 && !Array.isArray(parent)) {
    // Rename the key (an entry under another tensor's name, or a field under another name).
    const x = pick(r, pool);
    delete parent[key];
    parent[x] = v;
    what = `renamed to ${JSON.stringify(x)}`;
  } else {
    const x = pick(r, [1, 'x', [], {}, true]);
    parent[key] = x;
    what = `-> ${JSON.stringify(x)}`;
  }
  return `scheme ${path.join('.')} ${what}`;
}

/**
 * The file with its __metadata__.weightpress replaced (tensors and data unchanged); `resign` also replaces the
 * scheme's digest, as a writer that made this scheme would have.
 */
function withScheme(bytes: Buffer, scheme: string, path: string, resign: boolean): void {
  writeFileSync(path, bytes);
  rewriteMetadata(path, path, (m) => ({ ...m, weightpress: scheme, ...(resign ? { [DIGEST_KEY]: schemeDigest(scheme) } : {}) }));
}

/**
 * Runs `count` variants from `seed` in `dir`. Never throws for a broken oracle: the report lists what broke it.
 */
export async function fuzz(count: number, seed: number, dir: string, bases?: Base[]): Promise<FuzzReport> {
  const corpusBases = bases ?? (await corpus(join(dir, 'corpus')));
  const r = mulberry32(seed);
  const report: FuzzReport = { tried: 0, rejected: 0, same: 0, decodedOther: 0, failures: [], byKind: {} };
  const work = join(dir, 'work');
  for (let k = 0; k < count; k++) {
    const base = corpusBases[k % corpusBases.length];
    const file = join(work, `v${k}.safetensors`);
    const out = join(work, `v${k}.out`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const roll = r();
    let kind: 'scheme' | 'resigned' | 'header' | 'length' | 'data';
    let mutated: { tensors?: Record<string, { dtype?: unknown; shape?: unknown }> } | undefined;
    let what: string;
    let inStream = false;
    const headerLength = Number(base.bytes.readBigUInt64LE(0));
    if (roll < 0.55) {
      kind = roll < 0.2 ? 'scheme' : 'resigned';
      const scheme = JSON.parse(readSafetensors(base.path).metadata.weightpress);
      what = mutateScheme(r, scheme);
      withScheme(base.bytes, JSON.stringify(scheme), file, kind === 'resigned');
      mutated = scheme;
    } else if (roll < 0.8) {
      kind = 'header';
      const b = Buffer.from(base.bytes);
      const at = 8 + Math.floor(r() * headerLength);
      const old = b[at];
      b[at] = r() < 0.5 ? old ^ (1 << Math.floor(r() * 8)) : pick(r, [...Buffer.from('{}[]",:0123456789 \\\x00\xff\xc3', 'latin1')]);
      what = `header byte ${at}: ${old} -> ${b[at]}`;
      writeFileSync(file, b);
    } else if (roll < 0.9) {
      kind = 'length';
      const b = Buffer.from(base.bytes);
      if (r() < 0.5) {
        const n = pick(r, [0n, 1n, 7n, BigInt(headerLength - 1), BigInt(headerLength + 1), BigInt(b.length), 2n ** 63n, 2n ** 64n - 1n]);
        b.writeBigUInt64LE(n, 0);
        what = `header length -> ${n}`;
        writeFileSync(file, b);
      } else {
        const len = Math.floor(r() * b.length);
        what = `truncated to ${len} of ${b.length} bytes`;
        writeFileSync(file, b.subarray(0, len));
      }
    } else {
      kind = 'data';
      const b = Buffer.from(base.bytes);
      const start = 8 + headerLength;
      const at = start + Math.floor(r() * (b.length - start));
      b[at] ^= 1 + Math.floor(r() * 255);
      inStream = base.streams.some(([lo, hi]) => at >= lo && at < hi);
      what = `data byte ${at}${inStream ? ' (in an entropy-coded stream)' : ''}`;
      writeFileSync(file, b);
    }
    const where = `${base.label} #${k} ${what}`;
    const tally = (report.byKind[kind] ??= { tried: 0, rejected: 0 });
    tally.tried++;
    report.tried++;
    const typed = (e: unknown, call: string): boolean => {
      if (!(e instanceof WeightpressError)) {
        report.failures.push(`${where}: ${call} threw an untyped ${(e as Error)?.name}: ${(e as Error)?.message}`);
        return false;
      }
      // E_RANGE: a mutated codebook or scale whose decoded values exceed the output dtype (issue 10's typed refusal).
      if (!['E_FORMAT', 'E_DTYPE', 'E_IO', 'E_RANGE'].includes(e.code) || e.file !== file) {
        report.failures.push(`${where}: ${call} threw ${e.code} naming ${e.file ?? 'no file'}: ${e.message}`);
        return false;
      }
      return true;
    };
    let decoded: Base['decoded'] | undefined;
    try {
      const res = await decode(file, join(out, 'd.safetensors'));
      decoded = readDecoded(res.output);
    } catch (e) {
      if (typed(e, 'decode')) {
        report.rejected++;
        tally.rejected++;
      }
      const left = readdirSync(out);
      if (left.length) report.failures.push(`${where}: a failed decode left ${left.join(', ')}`);
    }
    try {
      await inspect(file);
    } catch (e) {
      typed(e, 'inspect');
    }
    if (!decoded) continue;
    if (sameDecoded(decoded, base.decoded)) report.same++;
    else if (kind === 'data' && !inStream) report.decodedOther++;
    else if (kind === 'resigned') {
      // A scheme a writer could have signed: the file decodes to exactly the tensors it describes.
      report.decodedOther++;
      const want = Object.entries(mutated?.tensors ?? {}).map(([n, t]) => `${n} ${t.dtype} ${JSON.stringify(t.shape)}`).sort();
      const got = [...decoded].map(([n, t]) => `${n} ${t.dtype} ${JSON.stringify(t.shape)}`).sort();
      if (JSON.stringify(want) !== JSON.stringify(got)) report.failures.push(`${where}: decoded ${got.join('; ')}, the scheme describes ${want.join('; ')}`);
    }
    else report.failures.push(`${where}: decoded, to other tensors than the unmutated file`);
    if (inStream) report.failures.push(`${where}: a mutated entropy-coded stream decoded without a checksum error`);
  }
  rmSync(work, { recursive: true, force: true });
  return report;
}
