/**
 * Malformed input: a corpus of broken safetensors files (written here, byte by byte, with the test's own
 * writer) that Checkpoint.open must reject with the exact error, valid controls that it must accept, sharded
 * checkpoints, and bad input to the quantize/decode pipeline (which must leave no output behind).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Checkpoint, WeightpressError, decode, quantize } from '../lib/index.js';
import { DIGEST_KEY, schemeDigest } from '../lib/format.js';
import { encode, gaussian, mulberry32, readSafetensors, tempDir, writeSafetensors, type RawTensor } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  ({ dir, cleanup } = tempDir());
});
afterAll(() => cleanup());

let counter = 0;
/** A fresh path (or directory) inside the temp dir. */
function fresh(name: string): string {
  return join(dir, `${++counter}-${name}`);
}

interface Expected {
  code: string;
  /** The file the error must name; undefined: the error must name none. */
  file?: string;
  /** The tensor the error must name; undefined: the error must name none. */
  tensor?: string;
  /** What the message must say. */
  message?: RegExp;
}

/** Awaits `p`, which must reject with a WeightpressError carrying exactly the expected code, file and tensor. */
async function expectError(p: Promise<unknown>, want: Expected): Promise<WeightpressError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, 'the call should have rejected').toBeDefined();
  expect(caught).toBeInstanceOf(WeightpressError);
  const e = caught as WeightpressError;
  expect({ code: e.code, file: e.file, tensor: e.tensor }).toEqual({ code: want.code, file: want.file, tensor: want.tensor });
  if (want.message) expect(e.message).toMatch(want.message);
  return e;
}

/** Writes a file: an 8-byte little-endian header length (`declared`, default the header's), header, data. */
function writeRaw(path: string, header: string, data: Uint8Array = new Uint8Array(0), declared?: bigint): void {
  const hb = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared ?? BigInt(hb.length));
  writeFileSync(path, Buffer.concat([len, hb, data]));
}

/** A header from an object (JSON.stringify keeps insertion order, so entries stay where the test puts them). */
function writeHeader(path: string, header: unknown, dataBytes: number): void {
  writeRaw(path, JSON.stringify(header), randomBytes(dataBytes, dataBytes));
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

const f32 = (shape: number[], begin: number) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'F32', shape, data_offsets: [begin, begin + 4 * n] };
};

// ---------------------------------------------------------------------------------------------------------
describe('Checkpoint.open rejects malformed files', () => {
  interface Case {
    name: string;
    write: (path: string) => void;
    code: 'E_FORMAT' | 'E_DTYPE';
    tensor?: string;
    message?: RegExp;
  }

  const cases: Case[] = [
    { name: 'empty file', write: (p) => writeFileSync(p, new Uint8Array(0)), code: 'E_FORMAT', message: /0 bytes/ },
    { name: 'file shorter than 8 bytes', write: (p) => writeFileSync(p, Uint8Array.of(2, 0, 0, 0, 0)), code: 'E_FORMAT', message: /5 bytes/ },
    {
      name: 'header length larger than the file (truncated)',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0) }), new Uint8Array(8), 4096n),
      code: 'E_FORMAT',
      message: /4096/,
    },
    {
      name: 'header length over 100 MB',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0) }), new Uint8Array(8), 100_000_001n),
      code: 'E_FORMAT',
      message: /100000001|100 ?MB/,
    },
    {
      name: 'header length 2^64-1',
      write: (p) => writeRaw(p, '{}', new Uint8Array(0), 0xffffffffffffffffn),
      code: 'E_FORMAT',
    },
    { name: 'header not JSON', write: (p) => writeRaw(p, '{"a": {"dtype": F32}}   '), code: 'E_FORMAT' },
    { name: 'header not JSON (plain text)', write: (p) => writeRaw(p, 'hello, world'), code: 'E_FORMAT' },
    { name: 'header is a JSON array', write: (p) => writeRaw(p, '[{"dtype":"F32","shape":[0],"data_offsets":[0,0]}]'), code: 'E_FORMAT' },
    { name: 'header is a JSON string', write: (p) => writeRaw(p, '"{}"'), code: 'E_FORMAT' },
    {
      name: 'trailing garbage after the JSON object',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0) }) + '  x', new Uint8Array(8)),
      code: 'E_FORMAT',
      message: /trailing/,
    },
    {
      name: 'trailing second object after the JSON object',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0) }) + '{}', new Uint8Array(8)),
      code: 'E_FORMAT',
    },
    {
      name: 'trailing NUL bytes inside the header',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0) }) + '\0\0\0', new Uint8Array(8)),
      code: 'E_FORMAT',
    },
    {
      name: 'duplicate tensor names',
      write: (p) => writeRaw(p, `{"dup":${JSON.stringify(f32([2], 0))},"dup":${JSON.stringify(f32([2], 8))}}`, new Uint8Array(16)),
      code: 'E_FORMAT',
      tensor: 'dup',
      message: /duplicate.*"dup"/,
    },
    { name: 'unknown dtype F7', write: (p) => writeHeader(p, { w: { dtype: 'F7', shape: [2], data_offsets: [0, 8] } }, 8), code: 'E_DTYPE', tensor: 'w', message: /F7/ },
    { name: 'lower-case dtype', write: (p) => writeHeader(p, { w: { dtype: 'f32', shape: [2], data_offsets: [0, 8] } }, 8), code: 'E_DTYPE', tensor: 'w' },
    { name: 'missing dtype', write: (p) => writeHeader(p, { w: { shape: [2], data_offsets: [0, 8] } }, 8), code: 'E_FORMAT', tensor: 'w', message: /dtype/ },
    { name: 'non-string dtype', write: (p) => writeHeader(p, { w: { dtype: 4, shape: [2], data_offsets: [0, 8] } }, 8), code: 'E_FORMAT', tensor: 'w' },
    { name: 'missing shape', write: (p) => writeHeader(p, { w: { dtype: 'F32', data_offsets: [0, 8] } }, 8), code: 'E_FORMAT', tensor: 'w', message: /shape/ },
    { name: 'missing data_offsets', write: (p) => writeHeader(p, { w: { dtype: 'F32', shape: [2] } }, 8), code: 'E_FORMAT', tensor: 'w', message: /data_offsets/ },
    { name: 'data_offsets with one entry', write: (p) => writeHeader(p, { w: { dtype: 'F32', shape: [2], data_offsets: [8] } }, 8), code: 'E_FORMAT', tensor: 'w' },
    { name: 'tensor entry not an object', write: (p) => writeHeader(p, { w: [0, 8] }, 8), code: 'E_FORMAT', tensor: 'w' },
    { name: 'negative shape entry', write: (p) => writeRaw(p, '{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', new Uint8Array(8)), code: 'E_FORMAT', tensor: 'w', message: /shape/ },
    { name: 'fractional shape entry', write: (p) => writeRaw(p, '{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}}', new Uint8Array(10)), code: 'E_FORMAT', tensor: 'w', message: /shape/ },
    { name: 'string shape entry', write: (p) => writeHeader(p, { w: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, 8), code: 'E_FORMAT', tensor: 'w' },
    { name: 'negative data offset', write: (p) => writeRaw(p, '{"w":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}}'), code: 'E_FORMAT', tensor: 'w' },
    {
      name: 'data_offsets end before begin',
      write: (p) => writeHeader(p, { a: f32([2], 0), w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8),
      code: 'E_FORMAT',
      tensor: 'w',
    },
    {
      name: 'data_offsets past the end (truncated data)',
      write: (p) => writeRaw(p, JSON.stringify({ a: f32([2], 0), w: f32([4, 4], 8) }), randomBytes(8 + 40, 1)),
      code: 'E_FORMAT',
      tensor: 'w',
      message: /truncated|past/,
    },
    {
      name: 'byte size not dtype size x shape',
      write: (p) => writeHeader(p, { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8),
      code: 'E_FORMAT',
      tensor: 'w',
      message: /12/,
    },
    {
      name: 'byte size of a 2-byte dtype off by one',
      write: (p) => writeHeader(p, { w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 11] } }, 11),
      code: 'E_FORMAT',
      tensor: 'w',
    },
    {
      name: 'shape whose size overflows 64 bits',
      write: (p) => writeRaw(p, '{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'),
      code: 'E_FORMAT',
      tensor: 'w',
    },
    {
      name: 'overlapping tensors',
      write: (p) => writeHeader(p, { a: f32([4], 0), b: f32([4], 8) }, 24),
      code: 'E_FORMAT',
      tensor: 'b',
      message: /overlap/,
    },
    {
      name: 'two tensors over the same bytes',
      write: (p) => writeHeader(p, { a: f32([2], 0), b: f32([2], 0) }, 8),
      code: 'E_FORMAT',
      tensor: 'b',
    },
    {
      name: 'gap between tensors',
      write: (p) => writeHeader(p, { a: f32([2], 0), b: f32([2], 12) }, 20),
      code: 'E_FORMAT',
      tensor: 'b',
      message: /gap/,
    },
    {
      name: 'first tensor not at offset 0',
      write: (p) => writeHeader(p, { a: f32([2], 8) }, 16),
      code: 'E_FORMAT',
      tensor: 'a',
    },
    {
      name: 'data section longer than the tensors cover',
      write: (p) => writeHeader(p, { a: f32([2], 0), b: f32([2], 8) }, 20),
      code: 'E_FORMAT',
      message: /20/,
    },
    {
      name: 'data section but no tensors',
      write: (p) => writeRaw(p, '{}', new Uint8Array(8)),
      code: 'E_FORMAT',
    },
    {
      name: '__metadata__ with a non-string value',
      write: (p) => writeHeader(p, { __metadata__: { ok: 'yes', n: 3 }, a: f32([2], 0) }, 8),
      code: 'E_FORMAT',
      message: /"n"/,
    },
    {
      name: '__metadata__ with a nested object value',
      write: (p) => writeHeader(p, { __metadata__: { o: { x: '1' } }, a: f32([2], 0) }, 8),
      code: 'E_FORMAT',
    },
    {
      name: '__metadata__ not an object',
      write: (p) => writeHeader(p, { __metadata__: ['format', 'pt'], a: f32([2], 0) }, 8),
      code: 'E_FORMAT',
      message: /__metadata__/,
    },
    {
      name: '__metadata__ a string',
      write: (p) => writeHeader(p, { __metadata__: 'pt', a: f32([2], 0) }, 8),
      code: 'E_FORMAT',
    },
  ];

  it.each(cases)('$name -> $code', async (c) => {
    const path = fresh('bad.safetensors');
    c.write(path);
    await expectError(Checkpoint.open(path), { code: c.code, file: path, tensor: c.tensor, message: c.message });
  });

  it('a non-existent path -> E_IO', async () => {
    const path = join(dir, 'no-such-file.safetensors');
    await expectError(Checkpoint.open(path), { code: 'E_IO', file: path });
  });

  it('a directory without model.safetensors -> E_IO', async () => {
    const d = fresh('empty-dir');
    mkdirSync(d);
    writeSafetensors(join(d, 'other.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(8) }]);
    await expectError(Checkpoint.open(d), { code: 'E_IO', file: d });
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('Checkpoint.open accepts valid files', () => {
  const DTYPES: [string, number][] = [
    ['F64', 8], ['F32', 4], ['F16', 2], ['BF16', 2], ['I64', 8], ['I32', 4], ['I16', 2], ['I8', 1], ['U8', 1], ['BOOL', 1], ['F8_E4M3', 1],
  ];

  it('every dtype: names, dtypes, shapes, metadata and bytes exactly as written', async () => {
    const path = fresh('all-dtypes.safetensors');
    const tensors: RawTensor[] = DTYPES.map(([dtype, size], i) => {
      const shape = [3, i + 1];
      let data = randomBytes(3 * (i + 1) * size, 100 + i);
      if (dtype === 'BOOL') data = data.map((b) => b & 1);
      return { name: `t.${dtype.toLowerCase()}`, dtype, shape, data };
    });
    writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode ✓' });
    const ckpt = await Checkpoint.open(path);
    try {
      expect(ckpt.path).toBe(path);
      expect(ckpt.files).toEqual([path]);
      expect(ckpt.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
      expect(ckpt.tensors().map((t) => [t.name, t.dtype, t.shape, t.numel, t.byteLength])).toEqual(
        tensors.map((t) => [t.name, t.dtype, t.shape, t.shape[0] * t.shape[1], t.data.byteLength]),
      );
      for (const t of tensors) expect(Buffer.from(ckpt.bytes(t.name)).equals(Buffer.from(t.data)), t.name).toBe(true);
    } finally {
      ckpt.close();
    }
  });

  it('a header padded with trailing spaces', async () => {
    const path = fresh('padded.safetensors');
    const data = encode([1.5, -2.25], 'F32');
    writeRaw(path, JSON.stringify({ a: f32([2], 0) }) + ' '.repeat(37), data);
    const ckpt = await Checkpoint.open(path);
    try {
      expect(ckpt.tensors().map((t) => t.name)).toEqual(['a']);
      expect([...new Float32Array(ckpt.bytes('a').slice().buffer)]).toEqual([1.5, -2.25]);
    } finally {
      ckpt.close();
    }
  });

  it('zero-element tensors (alone and between others)', async () => {
    const path = fresh('zero.safetensors');
    const a = encode([1, 2, 3, 4], 'F32');
    const b = encode([5, 6], 'F32');
    writeSafetensors(path, [
      { name: 'a', dtype: 'F32', shape: [2, 2], data: a },
      { name: 'empty', dtype: 'F16', shape: [0, 16], data: new Uint8Array(0) },
      { name: 'b', dtype: 'F32', shape: [2], data: b },
    ]);
    const ckpt = await Checkpoint.open(path);
    try {
      expect(ckpt.info('empty')).toMatchObject({ dtype: 'F16', shape: [0, 16], numel: 0, byteLength: 0 });
      expect(ckpt.bytes('empty').byteLength).toBe(0);
      expect(Buffer.from(ckpt.bytes('a')).equals(Buffer.from(a))).toBe(true);
      expect(Buffer.from(ckpt.bytes('b')).equals(Buffer.from(b))).toBe(true);
    } finally {
      ckpt.close();
    }

    const only = fresh('zero-only.safetensors');
    writeSafetensors(only, [{ name: 'z', dtype: 'F32', shape: [0], data: new Uint8Array(0) }]);
    const c2 = await Checkpoint.open(only);
    expect(c2.tensors().map((t) => [t.name, t.numel])).toEqual([['z', 0]]);
    c2.close();
  });

  it('a scalar (shape []) tensor and a header with no tensors at all', async () => {
    const path = fresh('scalar.safetensors');
    writeSafetensors(path, [{ name: 's', dtype: 'F64', shape: [], data: encode([Math.PI], 'F64') }]);
    const ckpt = await Checkpoint.open(path);
    expect(ckpt.info('s')).toMatchObject({ shape: [], numel: 1, byteLength: 8 });
    expect(new Float64Array(ckpt.bytes('s').slice().buffer)[0]).toBe(Math.PI);
    ckpt.close();

    const none = fresh('none.safetensors');
    writeRaw(none, '{}      ');
    const c2 = await Checkpoint.open(none);
    expect(c2.tensors()).toEqual([]);
    c2.close();
  });

  it('tensors listed out of data order', async () => {
    const path = fresh('order.safetensors');
    const bytes = randomBytes(24, 9);
    writeRaw(path, JSON.stringify({ late: f32([2], 16), early: f32([2], 0), mid: f32([2], 8) }), bytes);
    const ckpt = await Checkpoint.open(path);
    expect(Buffer.from(ckpt.bytes('early')).equals(Buffer.from(bytes.subarray(0, 8)))).toBe(true);
    expect(Buffer.from(ckpt.bytes('mid')).equals(Buffer.from(bytes.subarray(8, 16)))).toBe(true);
    expect(Buffer.from(ckpt.bytes('late')).equals(Buffer.from(bytes.subarray(16, 24)))).toBe(true);
    ckpt.close();
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('sharded checkpoints', () => {
  const shard1: RawTensor[] = [
    { name: 'layer.0.w', dtype: 'F32', shape: [4, 8], data: randomBytes(128, 21) },
    { name: 'layer.0.b', dtype: 'BF16', shape: [4], data: randomBytes(8, 22) },
  ];
  const shard2: RawTensor[] = [
    { name: 'layer.1.w', dtype: 'F16', shape: [8, 4], data: randomBytes(64, 23) },
    { name: 'step', dtype: 'I64', shape: [1], data: randomBytes(8, 24) },
  ];
  const S1 = 'model-00001-of-00002.safetensors';
  const S2 = 'model-00002-of-00002.safetensors';

  function writeSharded(weightMap?: Record<string, string>): string {
    const d = fresh('sharded');
    mkdirSync(d);
    writeSafetensors(join(d, S1), shard1, { format: 'pt' });
    writeSafetensors(join(d, S2), shard2, { format: 'pt' });
    const map = weightMap ?? Object.fromEntries([...shard1.map((t) => [t.name, S1]), ...shard2.map((t) => [t.name, S2])]);
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    return d;
  }

  async function checkAll(ckpt: Checkpoint, d: string): Promise<void> {
    expect(ckpt.files).toEqual([join(d, S1), join(d, S2)]);
    const all = [...shard1.map((t) => ({ ...t, file: join(d, S1) })), ...shard2.map((t) => ({ ...t, file: join(d, S2) }))];
    expect(ckpt.tensors().map((t) => t.name).sort()).toEqual(all.map((t) => t.name).sort());
    for (const t of all) {
      expect(ckpt.info(t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape, file: t.file, byteLength: t.data.byteLength });
      expect(Buffer.from(ckpt.bytes(t.name)).equals(Buffer.from(t.data)), t.name).toBe(true);
    }
  }

  it('open(index) sees every tensor of every shard with the right bytes', async () => {
    const d = writeSharded();
    const ckpt = await Checkpoint.open(join(d, 'model.safetensors.index.json'));
    try {
      expect(ckpt.path).toBe(join(d, 'model.safetensors.index.json'));
      await checkAll(ckpt, d);
    } finally {
      ckpt.close();
    }
  });

  it('open(directory) finds the index', async () => {
    const d = writeSharded();
    const ckpt = await Checkpoint.open(d);
    try {
      await checkAll(ckpt, d);
    } finally {
      ckpt.close();
    }
  });

  it('an index naming a missing shard -> E_IO naming that shard', async () => {
    const d = writeSharded({
      ...Object.fromEntries([...shard1.map((t) => [t.name, S1]), ...shard2.map((t) => [t.name, S2])]),
      extra: 'model-00003-of-00003.safetensors',
    });
    await expectError(Checkpoint.open(join(d, 'model.safetensors.index.json')), {
      code: 'E_IO',
      file: join(d, 'model-00003-of-00003.safetensors'),
    });
  });

  it('an index placing a tensor in the wrong shard -> E_FORMAT naming the tensor', async () => {
    const d = writeSharded({
      'layer.0.w': S1, 'layer.0.b': S1, 'layer.1.w': S1, step: S2,
    });
    await expectError(Checkpoint.open(join(d, 'model.safetensors.index.json')), {
      code: 'E_FORMAT',
      file: join(d, S2),
      tensor: 'layer.1.w',
    });
  });

  it('an index listing a tensor that no shard holds -> E_FORMAT naming the tensor', async () => {
    const d = writeSharded({
      'layer.0.w': S1, 'layer.0.b': S1, 'layer.1.w': S2, step: S2, 'layer.2.w': S2,
    });
    const idx = join(d, 'model.safetensors.index.json');
    await expectError(Checkpoint.open(idx), { code: 'E_FORMAT', file: idx, tensor: 'layer.2.w' });
  });

  it('a shard holding a tensor the index does not list -> E_FORMAT naming the tensor', async () => {
    const d = writeSharded({ 'layer.0.w': S1, 'layer.0.b': S1, 'layer.1.w': S2 });
    await expectError(Checkpoint.open(join(d, 'model.safetensors.index.json')), { code: 'E_FORMAT', file: join(d, S2), tensor: 'step' });
  });

  it('an index that is not JSON, or has no weight_map -> E_FORMAT', async () => {
    const d = fresh('bad-index');
    mkdirSync(d);
    const idx = join(d, 'model.safetensors.index.json');
    writeFileSync(idx, '{"weight_map": ');
    await expectError(Checkpoint.open(idx), { code: 'E_FORMAT', file: idx });
    writeFileSync(idx, JSON.stringify({ metadata: {} }));
    await expectError(Checkpoint.open(idx), { code: 'E_FORMAT', file: idx });
  });

  it('an index with a path outside its directory -> E_FORMAT naming the tensor', async () => {
    const d = writeSharded({ 'layer.0.w': `../${S1}` });
    const idx = join(d, 'model.safetensors.index.json');
    await expectError(Checkpoint.open(idx), { code: 'E_FORMAT', file: idx, tensor: 'layer.0.w' });
  });

  it('a malformed shard -> its own error, naming the shard', async () => {
    const d = writeSharded();
    writeFileSync(join(d, S2), Uint8Array.of(1, 2, 3));
    await expectError(Checkpoint.open(d), { code: 'E_FORMAT', file: join(d, S2) });
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('quantize rejects bad input and leaves nothing behind', () => {
  const ROWS = 64, COLS = 128;

  /** A checkpoint of `count` well-behaved [64,128] float tensors named w0, w1, ... */
  function goodInput(count: number, dtype: 'F32' | 'BF16' = 'F32'): string {
    const path = fresh('good.safetensors');
    const tensors: RawTensor[] = [];
    for (let i = 0; i < count; i++) tensors.push({ name: `w${i}`, dtype, shape: [ROWS, COLS], data: encode(gaussian(ROWS * COLS, 500 + i), dtype) });
    tensors.push({ name: 'bias', dtype: 'F32', shape: [ROWS], data: encode(gaussian(ROWS, 7), 'F32') });
    writeSafetensors(path, tensors);
    return path;
  }

  /** An empty directory for the output; the tests check it stays empty. */
  function outDir(): string {
    const d = fresh('out');
    mkdirSync(d);
    return d;
  }

  describe.each(['F32', 'BF16'] as const)('%s input', (dtype) => {
    it.each([
      ['NaN', NaN],
      ['+Inf', Infinity],
      ['-Inf', -Infinity],
    ])('a tensor containing %s -> E_NONFINITE naming it, no output and no temporary file', async (_label, bad) => {
      const input = fresh(`nonfinite-${dtype}.safetensors`);
      const values = gaussian(ROWS * COLS, 3);
      values[ROWS * COLS - 5] = bad; // late in the tensor, after most of it was read
      writeSafetensors(input, [
        // A good tensor first: the job has started writing when it meets the bad one.
        { name: 'first', dtype, shape: [ROWS, COLS], data: encode(gaussian(ROWS * COLS, 4), dtype) },
        { name: 'model.bad.weight', dtype, shape: [ROWS, COLS], data: encode(values, dtype) },
        { name: 'after', dtype, shape: [ROWS, COLS], data: encode(gaussian(ROWS * COLS, 5), dtype) },
      ]);
      const out = outDir();
      const output = join(out, 'q.safetensors');
      await expectError(quantize(input, output, { bits: 3 }), { code: 'E_NONFINITE', file: input, tensor: 'model.bad.weight' });
      expect(existsSync(output)).toBe(false);
      expect(readdirSync(out)).toEqual([]);
    });
  });

  it('the same NaN with every method and granularity', async () => {
    const input = fresh('nan-methods.safetensors');
    const values = gaussian(ROWS * COLS, 8);
    values[17] = NaN;
    writeSafetensors(input, [{ name: 'w', dtype: 'F32', shape: [ROWS, COLS], data: encode(values, 'F32') }]);
    const out = outDir();
    for (const method of ['uniform', 'kmeans', 'kmeans-optimal'] as const) {
      for (const granularity of ['tensor', 'row', 'group'] as const) {
        await expectError(quantize(input, join(out, 'q.safetensors'), { method, granularity, groupSize: 32 }), {
          code: 'E_NONFINITE',
          file: input,
          tensor: 'w',
        });
      }
    }
    expect(readdirSync(out)).toEqual([]);
  });

  it.each([
    ['bits 0', { bits: 0 }, /bits/],
    ['bits 9', { bits: 9 }, /bits/],
    ['bits 2.5', { bits: 2.5 }, /bits/],
    ['bits "4"', { bits: '4' }, /bits/],
    ["method 'foo'", { method: 'foo' }, /method/],
    ['unknown option key bitz', { bitz: 4 }, /bitz/],
    ["granularity 'col'", { granularity: 'col' }, /granularity/],
    ['groupSize 0', { granularity: 'group', groupSize: 0 }, /groupSize/],
    ['threads -1', { threads: -1 }, /threads/],
    ['symmetric "yes"', { symmetric: 'yes' }, /symmetric/],
    ['signal not an AbortSignal', { signal: {} }, /signal/],
  ])('%s -> E_ARGUMENT', async (_label, options, message) => {
    const input = goodInput(1);
    const out = outDir();
    await expectError(quantize(input, join(out, 'q.safetensors'), options as never), { code: 'E_ARGUMENT', message });
    expect(readdirSync(out)).toEqual([]);
  });

  it('output in a non-existent directory -> E_IO, no partial file', async () => {
    const input = goodInput(1);
    const missing = join(fresh('missing'), 'sub');
    const output = join(missing, 'q.safetensors');
    await expectError(quantize(input, output), { code: 'E_IO', file: output });
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(join(missing, '..'))).toBe(false);
  });

  it('a signal aborted before the call -> E_CANCELLED, no output', async () => {
    const input = goodInput(2);
    const out = outDir();
    const output = join(out, 'q.safetensors');
    const ac = new AbortController();
    ac.abort();
    await expectError(quantize(input, output, { signal: ac.signal }), { code: 'E_CANCELLED', file: input });
    expect(readdirSync(out)).toEqual([]);
  });

  it('a signal aborted during a multi-tensor job -> E_CANCELLED, no output, no temporary file', async () => {
    const input = goodInput(5);
    const out = outDir();
    const output = join(out, 'q.safetensors');
    const ac = new AbortController();
    const seen: string[] = [];
    let midJob: string[] = [];
    const job = quantize(input, output, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.within) return; // movement within a tensor; the per-tensor calls are the ones counted here
        seen.push(p.tensor);
        if (p.index === 2) {
          midJob = readdirSync(out);
          ac.abort();
        }
      },
    });
    await expectError(job, { code: 'E_CANCELLED', file: input });
    expect(seen).toEqual(['w0', 'w1']);
    // Mid-job the output is an unnamed file (O_TMPFILE): the directory shows nothing, then and now.
    expect(midJob).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('control: the same job without abort writes exactly the output file', async () => {
    const input = goodInput(2);
    const out = outDir();
    const output = join(out, 'q.safetensors');
    const report = await quantize(input, output, { bits: 2 });
    expect(report.tensors.map((t) => [t.name, t.method])).toEqual([['w0', 'kmeans-optimal'], ['w1', 'kmeans-optimal'], ['bias', 'keep']]);
    expect(readdirSync(out)).toEqual(['q.safetensors']);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('decode rejects files that are not valid weightpress files', () => {
  let quantized: string;
  let parsed: ReturnType<typeof readSafetensors>;
  const W = 'enc.layer.weight';

  beforeAll(async () => {
    const input = fresh('dense.safetensors');
    writeSafetensors(input, [
      { name: W, dtype: 'F32', shape: [64, 128], data: encode(gaussian(64 * 128, 31), 'F32') },
      { name: 'enc.layer.bias', dtype: 'F32', shape: [64], data: encode(gaussian(64, 32), 'F32') },
    ]);
    quantized = fresh('q.safetensors');
    await quantize(input, quantized, { bits: 4, granularity: 'row', codebookDtype: 'F32' });
    parsed = readSafetensors(quantized);
  });

  /** The quantized file's tensors and metadata, as plain values the tests can edit. */
  function contents(): { tensors: RawTensor[]; metadata: Record<string, string>; scheme: any } {
    const tensors = Object.entries(parsed.header).map(([name, h]) => ({ name, dtype: h.dtype, shape: [...h.shape], data: parsed.tensor(name).slice() }));
    return { tensors, metadata: { ...parsed.metadata }, scheme: JSON.parse(parsed.metadata.weightpress) };
  }

  /** Rewrites an edited copy with the test's own writer, decodes it, expects E_FORMAT and no output. */
  async function expectDecodeFormatError(edit: (c: ReturnType<typeof contents>) => void, tensor: string | undefined, message?: RegExp) {
    const c = contents();
    edit(c);
    c.metadata.weightpress = typeof c.scheme === 'string' ? c.scheme : JSON.stringify(c.scheme);
    // Re-signed, as a writer of this scheme would: the field checks are under test here (a changed scheme with
    // its old digest is refused by the digest: test/strict.test.ts).
    c.metadata[DIGEST_KEY] = schemeDigest(c.metadata.weightpress);
    const path = fresh('tampered.safetensors');
    writeSafetensors(path, c.tensors, c.metadata);
    const out = fresh('out');
    mkdirSync(out);
    await expectError(decode(path, join(out, 'dense.safetensors')), { code: 'E_FORMAT', file: path, tensor, message });
    expect(readdirSync(out)).toEqual([]);
  }

  it('control: the untampered file, rewritten by the test writer, decodes', async () => {
    const c = contents();
    const path = fresh('rewritten.safetensors');
    writeSafetensors(path, c.tensors, c.metadata);
    const out = fresh('dense.safetensors');
    const r = await decode(path, out);
    expect(r.tensors).toBe(2);
    expect(Object.keys(readSafetensors(out).header).sort()).toEqual(['enc.layer.bias', W]);
  });

  it('a plain (non-weightpress) safetensors file -> E_FORMAT', async () => {
    const path = fresh('plain.safetensors');
    writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: encode([1, 2, 3, 4], 'F32') }], { format: 'pt' });
    const out = fresh('out');
    mkdirSync(out);
    await expectError(decode(path, join(out, 'dense.safetensors')), { code: 'E_FORMAT', file: path, message: /weightpress/ });
    expect(readdirSync(out)).toEqual([]);
  });

  it('codes tensor truncated -> E_FORMAT naming the tensor', async () => {
    await expectDecodeFormatError((c) => {
      const codes = c.tensors.find((t) => t.name === `${W}.__wp_codes`)!;
      codes.data = codes.data.slice(0, codes.data.byteLength - 64);
      codes.shape = [codes.data.byteLength];
    }, W, /codes/);
  });

  it('codes tensor of the wrong dtype -> E_FORMAT naming the tensor', async () => {
    await expectDecodeFormatError((c) => {
      const codes = c.tensors.find((t) => t.name === `${W}.__wp_codes`)!;
      codes.dtype = 'I8';
    }, W, /codes/);
  });

  it('codebook with the wrong shape -> E_FORMAT naming the tensor', async () => {
    await expectDecodeFormatError((c) => {
      const cb = c.tensors.find((t) => t.name === `${W}.__wp_codebook`)!;
      expect(cb.shape).toEqual([64, 16]);
      cb.shape = [63, 16];
      cb.data = cb.data.slice(0, 63 * 16 * 4);
    }, W, /codebook/);
  });

  it('codebook of a dtype other than the scheme says -> E_FORMAT naming the tensor', async () => {
    await expectDecodeFormatError((c) => {
      const cb = c.tensors.find((t) => t.name === `${W}.__wp_codebook`)!;
      cb.dtype = 'I32';
    }, W, /codebook/);
  });

  it('scheme names a codes tensor the file lacks -> E_FORMAT naming the tensor', async () => {
    await expectDecodeFormatError((c) => {
      c.tensors = c.tensors.filter((t) => t.name !== `${W}.__wp_codes`);
    }, W);
  });

  it('a kept tensor missing from the file -> E_FORMAT naming it', async () => {
    await expectDecodeFormatError((c) => {
      c.tensors = c.tensors.filter((t) => t.name !== 'enc.layer.bias');
    }, 'enc.layer.bias');
  });

  it('scheme JSON invalid -> E_FORMAT', async () => {
    await expectDecodeFormatError((c) => {
      c.scheme = JSON.stringify(c.scheme).slice(0, -7);
    }, undefined, /JSON/);
  });

  it('scheme of an unknown format version -> E_FORMAT', async () => {
    await expectDecodeFormatError((c) => {
      c.scheme.version = 99;
    }, undefined, /version/);
  });

  it.each([
    ['bits out of range', (s: any) => (s.bits = 9)],
    ['slices inconsistent with sliceSize', (s: any) => (s.slices = s.slices + 1)],
    ['sliceSize zero', (s: any) => (s.sliceSize = 0)],
    ['negative shape', (s: any) => (s.shape = [-64, 128])],
    ['unknown dtype', (s: any) => (s.dtype = 'F7')],
    ['integer dtype for a quantized tensor', (s: any) => (s.dtype = 'I32')],
    ['codebookDtype unknown', (s: any) => (s.codebookDtype = 'F64')],
  ])('scheme entry with %s -> E_FORMAT naming the tensor', async (_label, tamper) => {
    await expectDecodeFormatError((c) => tamper(c.scheme.tensors[W]), W);
  });
});
