/**
 * The container reader against the reference safetensors reader (Hugging Face's, the Python package's Rust core:
 * safetensors.deserialize): a corpus of corner cases and seeded header mutations of real files, each given to
 * both. weightpress accepts exactly what the reference accepts, but for two documented deviations:
 * - duplicate keys: the reference keeps the last silently; weightpress refuses the ambiguous file (E_FORMAT);
 * - dtypes weightpress does not know (F4, F6_*, F8_E8M0 ...): E_DTYPE, a typed refusal of a valid container.
 * Skipped where python3 with the safetensors package is missing (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Checkpoint, WeightpressError, quantize } from '../lib/index.js';
import { encode, gaussian, mulberry32, tempDir, writeSafetensors } from './helpers.js';

const emotion = fileURLToPath(new URL('./fixtures/emotion.f16.safetensors', import.meta.url));

const REFERENCE = `
import json, sys
try:
    from safetensors import deserialize
except Exception:
    from safetensors._safetensors_rust import deserialize
out = []
for path in json.load(sys.stdin):
    try:
        deserialize(open(path, "rb").read())
        out.append("accept")
    except Exception as e:
        out.append("reject: " + str(e)[:200])
print(json.dumps(out))
`;

function reference(paths: string[]): string[] | undefined {
  const r = spawnSync('python3', ['-c', REFERENCE], { input: JSON.stringify(paths), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout);
}

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  ({ dir, cleanup } = tempDir());
});
afterAll(() => cleanup());

function file(name: string, header: string | Buffer, data: Uint8Array = new Uint8Array(0), declared?: bigint): string {
  const hb = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared ?? BigInt(hb.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, hb, data]));
  return p;
}

const u8 = (b: number, e: number, extra = '') => `{"dtype":"U8","shape":[${e - b}],"data_offsets":[${b},${e}]${extra}}`;

/** Hand-written corner cases (a header and data each). */
function cornerCases(): string[] {
  const c: [string, string | Buffer, number][] = [
    ['meta-null', `{"__metadata__":null,"a":${u8(0, 2)}}`, 2],
    ['meta-empty', `{"__metadata__":{},"a":${u8(0, 2)}}`, 2],
    ['meta-number', `{"__metadata__":{"k":1},"a":${u8(0, 2)}}`, 2],
    ['meta-array', `{"__metadata__":[],"a":${u8(0, 2)}}`, 2],
    ['meta-string', `{"__metadata__":"x","a":${u8(0, 2)}}`, 2],
    ['extra-field', `{"a":${u8(0, 2, ',"x":1')}}`, 2],
    ['leading-space', ` \n{"a":${u8(0, 2)}}`, 2],
    ['trailing-space', `{"a":${u8(0, 2)}}    `, 2],
    ['trailing-garbage', `{"a":${u8(0, 2)}} x`, 2],
    ['empty-header', '{}', 0],
    ['empty-header-with-data', '{}', 4],
    ['shape-float', `{"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}`, 2],
    ['shape-negative', `{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}`, 2],
    ['shape-string', `{"a":{"dtype":"U8","shape":["2"],"data_offsets":[0,2]}}`, 2],
    ['shape-missing', `{"a":{"dtype":"U8","data_offsets":[0,2]}}`, 2],
    ['offsets-reversed', `{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,0]}}`, 2],
    ['offsets-three', `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2,2]}}`, 2],
    ['offsets-gap', `{"a":${u8(0, 1)},"b":${u8(2, 3)}}`, 3],
    ['offsets-overlap', `{"a":${u8(0, 2)},"b":${u8(1, 3)}}`, 3],
    ['offsets-short', `{"a":${u8(0, 2)}}`, 3],
    ['offsets-past-end', `{"a":${u8(0, 4)}}`, 2],
    ['size-mismatch', `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4],
    ['shape-overflow', `{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}`, 0],
    ['dtype-lowercase', `{"a":{"dtype":"u8","shape":[2],"data_offsets":[0,2]}}`, 2],
    ['scalar-shape', `{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, 4],
    ['zero-elements', `{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"b":${u8(0, 2)}}`, 2],
    ['unicode-name', `{"\\u00e4\\ud83d\\ude00":${u8(0, 2)}}`, 2],
    ['lone-surrogate', `{"\\ud83d":${u8(0, 2)}}`, 2],
    ['invalid-utf8', Buffer.concat([Buffer.from('{"a\xff":', 'latin1'), Buffer.from(u8(0, 2)), Buffer.from('}')]), 2],
    ['not-json', 'hello', 0],
    ['array', `[${u8(0, 2)}]`, 2],
    ['nested-deep', `{"__metadata__":{"k":"v"},"a":${u8(0, 2)}}`, 2],
    ['duplicate-keys', `{"a":${u8(0, 2)},"a":${u8(0, 2)}}`, 2],
  ];
  return c.map(([name, h, n]) => file(`${name}.safetensors`, h, new Uint8Array(n).fill(1)));
}

/** Seeded mutations of the headers (and header lengths) of real files. */
async function mutations(count: number, seed: number): Promise<string[]> {
  const plain = join(dir, 'plain.safetensors');
  writeSafetensors(
    plain,
    [
      { name: 'w', dtype: 'F32', shape: [4, 8], data: encode(gaussian(32, 1), 'F32') },
      { name: 'b', dtype: 'F16', shape: [8], data: encode(gaussian(8, 2), 'F16') },
      { name: 'ids', dtype: 'I64', shape: [2], data: new Uint8Array(16) },
    ],
    { format: 'pt' },
  );
  const wp = join(dir, 'wp.safetensors');
  await quantize(plain, wp, { bits: 2, minElements: 8 });
  const bases = [plain, wp, emotion].map((p) => readFileSync(p));
  const r = mulberry32(seed);
  const out: string[] = [];
  const chars = Buffer.from('{}[]",:0123456789 -.eE\\u\x00\xff\xc3tfn', 'latin1');
  for (let k = 0; k < count; k++) {
    const b = Buffer.from(bases[k % bases.length]);
    const n = Number(b.readBigUInt64LE(0));
    const roll = r();
    if (roll < 0.85) {
      const edits = 1 + Math.floor(r() * 3);
      for (let e = 0; e < edits; e++) {
        const at = 8 + Math.floor(r() * Math.min(n, 4096));
        b[at] = r() < 0.5 ? b[at] ^ (1 << Math.floor(r() * 8)) : chars[Math.floor(r() * chars.length)];
      }
    } else {
      b.writeBigUInt64LE(BigInt(Math.max(0, n + Math.floor(r() * 17) - 8)), 0);
    }
    const p = join(dir, `m${k}.safetensors`);
    writeFileSync(p, b);
    out.push(p);
  }
  return out;
}

type Ours = 'accept' | 'reject' | 'dtype' | 'duplicate' | `untyped: ${string}`;

async function ours(path: string): Promise<Ours> {
  try {
    const ck = await Checkpoint.open(path);
    ck.close();
    return 'accept';
  } catch (e) {
    if (!(e instanceof WeightpressError) || e.file !== path) return `untyped: ${(e as Error).message}`;
    if (e.code === 'E_DTYPE') return 'dtype';
    if (e.code === 'E_FORMAT' && /duplicate key/.test(e.message)) return 'duplicate';
    return e.code === 'E_FORMAT' ? 'reject' : `untyped: ${e.code} ${e.message}`;
  }
}

describe('the container reader decides as the reference reader (safetensors.deserialize)', () => {
  it('on the corner cases and 1,500 seeded header mutations; the deviations are only the documented ones', async (ctx) => {
    const paths = [...cornerCases(), ...(await mutations(1500, 1130))];
    const ref = reference(paths);
    if (!ref) return ctx.skip();
    const disagreements: string[] = [];
    const tally = { accept: 0, reject: 0, dtype: 0, duplicate: 0 };
    for (const [i, p] of paths.entries()) {
      const o = await ours(p);
      const refAccepts = ref[i] === 'accept';
      if (o.startsWith('untyped')) disagreements.push(`${p}: ${o}`);
      else if (o === 'dtype' || o === 'duplicate') tally[o]++;
      else {
        tally[o as 'accept' | 'reject']++;
        if ((o === 'accept') !== refAccepts) disagreements.push(`${p.split('/').pop()}: weightpress ${o}s, the reference ${ref[i]}`);
      }
    }
    console.log(`reference reader: ${paths.length} files; weightpress accepts ${tally.accept}, rejects ${tally.reject} as the reference does; E_DTYPE ${tally.dtype}, duplicate keys ${tally.duplicate}`);
    expect(disagreements).toEqual([]);
    expect(tally.accept).toBeGreaterThan(10);
    expect(tally.reject).toBeGreaterThan(100);
    expect(tally.duplicate).toBeGreaterThan(0);
  }, 120_000);
});
