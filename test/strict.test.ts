/**
 * Strict reading (issue #11): the container corner cases the reference safetensors reader decides (and files that
 * are no safetensors at all), weightpress's own files read against their container for every codec, and the
 * small inputs of the issue as regression tests: "__metadata__": null, a PyTorch zip or pickle, invalid UTF-8 in
 * names, a weightpress output given to quantize or export-gguf, --include matching nothing, export-gguf dropping
 * tensors it has no GGUF type for.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Checkpoint, WeightpressError, decode, exportGguf, inspect, quantize } from '../lib/index.js';
import { QUANTIZING_CODECS } from '../lib/codecs/registry.js';
import { codecOptions } from './codec-options.js';
import { DIGEST_KEY, schemeDigest } from '../lib/format.js';
import { encode, gaussian, rewriteMetadata, tempDir, writeSafetensors, type RawTensor } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let dir: string;
let cleanup: () => void;
let n = 0;
const fresh = (name: string) => join(dir, `${++n}-${name}`);
beforeAll(() => {
  ({ dir, cleanup } = tempDir());
});
afterAll(() => cleanup());

async function rejection(p: Promise<unknown>): Promise<WeightpressError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightpressError);
    return e as WeightpressError;
  }
  throw new Error('expected a rejection');
}

/** A header and data written byte for byte (the header as given: it may hold any bytes). */
function raw(path: string, header: Buffer, data: Uint8Array = new Uint8Array(0)): string {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([len, header, data]));
  return path;
}

function dense(path: string): string {
  writeSafetensors(path, [
    { name: 'w0', dtype: 'F32', shape: [16, 32], data: encode(gaussian(512, 3), 'F32') },
    { name: 'w1', dtype: 'F16', shape: [8, 32], data: encode(gaussian(256, 4), 'F16') },
    { name: 'bias', dtype: 'F32', shape: [32], data: encode(gaussian(32, 5), 'F32') },
  ]);
  return path;
}

describe('the container: what the reference reader accepts, weightpress accepts', () => {
  it('"__metadata__": null is no metadata (the reference reader\'s Option), and the tensors read', async () => {
    const data = encode([1, 2], 'F32');
    const p = raw(fresh('null-meta.safetensors'), Buffer.from(JSON.stringify({ __metadata__: null, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } })), data);
    const ck = await Checkpoint.open(p);
    try {
      expect(ck.metadata).toEqual({});
      expect(Buffer.from(ck.bytes('a')).equals(Buffer.from(data))).toBe(true);
    } finally {
      ck.close();
    }
  });

  it('invalid UTF-8 anywhere in the header is E_FORMAT (the reference reads it with str::from_utf8); two names that differ only there are never merged', async () => {
    const entry = (b: number) => `"a\xff${String.fromCharCode(b)}":{"dtype":"U8","shape":[1],"data_offsets":[${b - 0x41},${b - 0x40}]}`;
    const cases: [string, Buffer][] = [
      ['two names differing in invalid bytes', Buffer.concat([Buffer.from('{'), Buffer.from(entry(0x41), 'latin1'), Buffer.from(','), Buffer.from(entry(0x42), 'latin1'), Buffer.from('}')])],
      ['an overlong encoding', Buffer.from([...Buffer.from('{"__metadata__":{"k":"'), 0xc0, 0xaf, ...Buffer.from('"}}')])],
      ['a UTF-16 surrogate encoded in UTF-8', Buffer.from([...Buffer.from('{"__metadata__":{"k":"'), 0xed, 0xa0, 0x80, ...Buffer.from('"}}')])],
      ['a truncated sequence at the end of a string', Buffer.from([...Buffer.from('{"__metadata__":{"k":"'), 0xe2, 0x82, ...Buffer.from('"}}')])],
    ];
    for (const [what, header] of cases) {
      const p = raw(fresh('utf8.safetensors'), header, new Uint8Array(2));
      const e = await rejection(Checkpoint.open(p));
      expect({ what, code: e.code, file: e.file }).toEqual({ what, code: 'E_FORMAT', file: p });
      expect(e.message).toMatch(/UTF-8/);
    }
    // Valid multi-byte UTF-8 names are fine.
    const ok = raw(fresh('utf8-ok.safetensors'), Buffer.from(JSON.stringify({ 'gewicht.ä€😀': { dtype: 'U8', shape: [1], data_offsets: [0, 1] } })), new Uint8Array(1));
    const ck = await Checkpoint.open(ok);
    expect(ck.tensors().map((t) => t.name)).toEqual(['gewicht.ä€😀']);
    ck.close();
  });

  it('a PyTorch zip or pickle checkpoint, a GGUF file: named as such, not as a huge header length', async () => {
    const zip = fresh('pytorch_model.bin');
    writeFileSync(zip, Buffer.concat([Buffer.from('PK\x03\x04\x00\x00\x08\x08', 'latin1'), Buffer.alloc(64, 7)]));
    const pickle = fresh('legacy.bin');
    writeFileSync(pickle, Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8]), Buffer.alloc(64)]));
    const gguf = fresh('x.gguf');
    writeFileSync(gguf, Buffer.concat([Buffer.from('GGUF\x03\x00\x00\x00', 'latin1'), Buffer.alloc(64)]));
    for (const [p, like] of [[zip, /zip archive.*PyTorch/], [pickle, /pickle.*PyTorch/], [gguf, /GGUF/]] as const) {
      const e = await rejection(Checkpoint.open(p));
      expect({ code: e.code, file: e.file }).toEqual({ code: 'E_FORMAT', file: p });
      expect(e.message).toMatch(/not a safetensors file/);
      expect(e.message).toMatch(like);
      expect(e.message).not.toMatch(/header length/);
      // And through the CLI: one line, exit 1 (a bad file, not a usage error).
      const r = spawnSync(process.execPath, [CLI, 'quantize', p, '-o', fresh('o.safetensors')], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/E_FORMAT .*not a safetensors file/);
    }
  });
});

describe('what quantize and export-gguf refuse, and say so', () => {
  it('a weightpress output (a file, or a sharded directory) given to quantize or export-gguf: E_FORMAT naming it, saying to decode first', async () => {
    const input = dense(fresh('in.safetensors'));
    const q = fresh('q.safetensors');
    await quantize(input, q, { bits: 3, minElements: 64 });
    const shardedDir = fresh('sharded') + '/';
    // F32 codebooks: the shard size was chosen for them (the default became F16, issue 16).
    await quantize(input, shardedDir, { bits: 3, minElements: 64, maxShardSize: 1000, codebookDtype: 'F32' });
    const shards = readdirSync(shardedDir).filter((f) => f.includes('-of-'));
    expect(shards.length).toBeGreaterThan(1);
    for (const p of [q, shardedDir]) {
      for (const job of [() => quantize(p, fresh('qq.safetensors')), () => exportGguf(p, fresh('q.gguf'), { type: 'Q4_0' })]) {
        const e = await rejection(job());
        expect(e.code).toBe('E_FORMAT');
        expect(e.file === q || shards.some((s) => e.file === join(shardedDir, s))).toBe(true);
        expect(e.message).toMatch(/weightpress output.*decode it first/);
      }
    }
  });

  it('--include patterns that match nothing: E_ARGUMENT listing them; some unmatched among matched ones: a warning each', async () => {
    const input = dense(fresh('in.safetensors'));
    const out = fresh('o.safetensors');
    const e = await rejection(quantize(input, out, { include: ['nomatch*', '/^zz/'] }));
    expect(e.code).toBe('E_ARGUMENT');
    expect(e.message).toMatch(/"nomatch\*", "\/\^zz\/" match no tensor/);
    expect(readdirSync(dir).includes(out.split('/').pop()!)).toBe(false);
    const r = await quantize(input, out, { include: ['w*', 'nomatch*'], bits: 3 });
    expect(r.warnings).toContain('include pattern "nomatch*" matches no tensor');
    expect(r.tensors.filter((t) => t.method !== 'keep').map((t) => t.name)).toEqual(['w0', 'w1']);
  });

  it('export-gguf names every tensor it drops (F8, BOOL, U8...) on stderr and counts them; --strict refuses them (E_DTYPE, exit 1)', async () => {
    const input = fresh('mixed.safetensors');
    const tensors: RawTensor[] = [
      { name: 'w', dtype: 'F32', shape: [128, 64], data: encode(gaussian(128 * 64, 9), 'F32') },
      { name: 'mask', dtype: 'BOOL', shape: [8], data: new Uint8Array(8).fill(1) },
      { name: 'ids', dtype: 'U8', shape: [8], data: new Uint8Array(8).fill(3) },
      { name: 'scale8', dtype: 'F8_E4M3', shape: [8], data: new Uint8Array(8).fill(0x38) },
      { name: 'b', dtype: 'F32', shape: [64], data: encode(gaussian(64, 10), 'F32') },
    ];
    writeSafetensors(input, tensors);
    const r = await exportGguf(input, fresh('o.gguf'), { type: 'Q4_0' });
    expect(r.skipped.map((s) => s.name).sort()).toEqual(['ids', 'mask', 'scale8']);
    expect(r.total.tensors + r.skipped.length).toBe(tensors.length);
    const out = fresh('cli.gguf');
    const c = spawnSync(process.execPath, [CLI, 'export-gguf', input, '-o', out, '--type', 'Q4_0', '--no-compare'], { encoding: 'utf8' });
    expect(c.status).toBe(0);
    for (const s of ['mask', 'ids', 'scale8']) expect(c.stderr).toContain(`dropped tensor "${s}"`);
    expect(c.stdout).toMatch(/1 of 5 tensors as Q4_0, 1 kept, 3 dropped/);
    const strictOut = fresh('strict.gguf');
    const s = spawnSync(process.execPath, [CLI, 'export-gguf', input, '-o', strictOut, '--strict', '--no-compare'], { encoding: 'utf8' });
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/E_DTYPE .*"mask" \(BOOL\), "ids" \(U8\), "scale8" \(F8_E4M3\)/);
    expect(readdirSync(dir).some((f) => f.endsWith('strict.gguf'))).toBe(false);
  });
});

// ---- weightpress's own files, for every codec ----------------------------------------------------------------------

interface Variant {
  label: string;
  file: string;
}
const variants: Variant[] = [];

/** The file with its scheme changed by `edit` (and re-signed unless `keepDigest`). */
function edited(v: Variant, edit: (scheme: { tensors: Record<string, Record<string, unknown>> }) => void, keepDigest = false): string {
  const out = fresh(`${v.label}-edited.safetensors`);
  rewriteMetadata(v.file, out, (m) => {
    const scheme = JSON.parse(m.weightpress);
    edit(scheme);
    const s = JSON.stringify(scheme);
    return { ...m, weightpress: s, ...(keepDigest ? {} : { [DIGEST_KEY]: schemeDigest(s) }) };
  });
  return out;
}

/** decode and inspect of `file` both fail with E_FORMAT naming it (and decode leaves no output). */
async function bothRefuse(file: string, message: RegExp): Promise<void> {
  const outDir = fresh('out') + '/';
  for (const job of [() => decode(file, outDir), () => inspect(file)]) {
    const e = await rejection(job());
    expect({ code: e.code, file: e.file }).toEqual({ code: 'E_FORMAT', file });
    expect(e.message).toMatch(message);
  }
  expect(() => readdirSync(outDir)).toThrow();
}

describe('weightpress files are read strictly, for every codec (packed and entropy-coded)', () => {
  beforeAll(async () => {
    const input = dense(fresh('dense.safetensors'));
    for (const codec of QUANTIZING_CODECS)
      for (const entropy of ['none', 'huffman'] as const) {
        const file = fresh(`${codec}-${entropy}.safetensors`);
        await quantize(input, file, { codec, entropy, ...codecOptions(codec), minElements: 64 });
        variants.push({ label: `${codec}-${entropy}`, file });
      }
  });

  it('the unedited files decode (the controls)', async () => {
    for (const v of variants) await expect(decode(v.file, fresh('ok.safetensors'))).resolves.toMatchObject({ tensors: 3 });
  });

  it('any change to the scheme without its digest: E_FORMAT (e.g. the double-quantization bits, which change no stored size)', async () => {
    for (const v of variants) {
      await bothRefuse(edited(v, (s) => ((s.tensors.bias.metrics as Record<string, number>).mse = 1), true), /does not match its SHA-256/);
      if (v.label.startsWith('block')) {
        await bothRefuse(edited(v, (s) => ((s.tensors.w0.block as { doubleQuant: { bits: number } }).doubleQuant.bits = 5), true), /SHA-256/);
      }
    }
  });

  it('a scheme that leaves a tensor out, or a kept tensor under another dtype or shape: E_FORMAT, never decoded without it or under the wrong dtype', async () => {
    for (const v of variants) {
      await bothRefuse(edited(v, (s) => delete s.tensors.bias), /does not describe/);
      await bothRefuse(edited(v, (s) => (s.tensors.bias.dtype = 'BF16')), /kept tensor is F32 \[32\] in the file, the scheme says BF16/);
      await bothRefuse(edited(v, (s) => (s.tensors.bias.shape = [2, 16])), /kept tensor is F32 \[32\]/);
      // A huge shape: a typed error, not a RangeError from an allocation.
      await bothRefuse(edited(v, (s) => (s.tensors.bias.shape = [2 ** 40, 2 ** 40])), /more elements than any file holds/);
      // A quantized tensor's dtype: its stored metrics give it away (bytesIn).
      await bothRefuse(edited(v, (s) => (s.tensors.w1.dtype = 'F32')), /bytes in/);
    }
  });

  it('a malformed method or metrics: E_FORMAT from decode and inspect, not a TypeError', async () => {
    for (const v of variants) {
      await bothRefuse(edited(v, (s) => (s.tensors.w0.method = 7)), /method must be a string/);
      await bothRefuse(edited(v, (s) => (s.tensors.bias.metrics = 'fine')), /metrics must be an object/);
      await bothRefuse(edited(v, (s) => ((s.tensors.w0.metrics as Record<string, unknown>).mse = '0.1')), /metrics\.mse must be a number/);
    }
  });

  it('block scales must be exactly the size the block format needs (not merely at least), and codes exactly (plus alignment padding)', async () => {
    for (const v of variants.filter((x) => x.label.startsWith('block'))) {
      await bothRefuse(edited(v, (s) => ((s.tensors.w0.block as { blockSize: number }).blockSize = 32)), /scales .* expected U8/);
    }
    for (const v of variants.filter((x) => x.label.startsWith('scalar-none'))) {
      await bothRefuse(edited(v, (s) => (s.tensors.w0.bits = 2)), /codebook|codes/);
    }
  });

  it('the CLI reports a corrupt input as E_FORMAT naming the input, exit 1 (not a usage error naming the output)', () => {
    const v = variants[0];
    const bad = edited(v, (s) => delete s.tensors.bias);
    const out = fresh('cli-out.safetensors');
    const r = spawnSync(process.execPath, [CLI, 'decode', bad, '-o', out], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`E_FORMAT ${bad}`);
    expect(r.stderr).not.toContain(out);
    expect(readFileSync(bad).length).toBeGreaterThan(0);
  });
});
