/**
 * The command line end to end: `node dist/cli.js ...` in a temp directory, on a real checkpoint (the emotion
 * fixture). Outputs are read back with the test's own safetensors reader.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeBytes, fromBf16, readSafetensors, tempDir, toBf16, type ParsedFile } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/emotion.f16.safetensors', import.meta.url));

let dir: string;
let cleanup: () => void;
let input: string;
let original: ParsedFile;

beforeAll(() => {
  ({ dir, cleanup } = tempDir());
  input = join(dir, 'emotion.safetensors');
  copyFileSync(FIXTURE, input);
  original = readSafetensors(input);
});
afterAll(() => cleanup());

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, WEIGHTPRESS_PREFER_LOCAL: '1' },
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a command that must succeed, with nothing on stderr (stderr is not a TTY: no progress bar). */
function ok(...args: string[]): Run {
  const r = cli(...args);
  expect(r.stderr, `stderr of ${args.join(' ')}`).toBe('');
  expect(r.status, `exit status of ${args.join(' ')}`).toBe(0);
  return r;
}

/** The one line a failing command prints on stderr. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l, i, all) => !(l === '' && i === all.length - 1));
  expect(lines, `stderr: ${JSON.stringify(stderr)}`).toHaveLength(1);
  expect(lines[0].trim()).not.toBe('');
  return lines[0];
}

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const FIELDS = ['name', 'dtype', 'shape', 'method', 'bits', 'granularity', 'mse', 'sqnrDb', 'maxAbsErr', 'bitsPerWeight', 'bytesIn', 'bytesOut', 'seconds'];

/** Tensors the default rule quantizes: float, >= 2 dimensions, >= 4096 elements (all fixture tensors are F16). */
function quantizedByDefault(): string[] {
  return Object.entries(original.header)
    .filter(([, h]) => h.shape.length >= 2 && numelOf(h.shape) >= 4096)
    .map(([n]) => n);
}

// ---------------------------------------------------------------------------------------------------------
describe('quantize, decode, inspect', () => {
  const out = () => join(dir, 'q.safetensors');
  let report: any;

  beforeAll(() => {
    const r = ok('quantize', 'emotion.safetensors', '-o', 'q.safetensors', '--method', 'kmeans-optimal', '--bits', '4', '--granularity', 'row', '--json');
    report = JSON.parse(r.stdout);
    // Exactly one JSON object, on one line.
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
  });

  it('writes a safetensors file with the scheme in __metadata__.weightpress, and nothing else', () => {
    expect(readdirSync(dir).sort()).toEqual(['emotion.safetensors', 'q.safetensors']);
    const q = readSafetensors(out());
    const scheme = JSON.parse(q.metadata.weightpress);
    expect(scheme).toMatchObject({ format: 'weightpress', version: 1 });
    expect(Object.keys(scheme.tensors)).toEqual(Object.keys(original.header));
    // The input's own metadata is carried over.
    for (const [k, v] of Object.entries(original.metadata)) expect(q.metadata[k]).toBe(v);

    const quantized = new Set(quantizedByDefault());
    expect(quantized.size).toBeGreaterThan(3);
    const expectedNames: string[] = [];
    for (const [name, h] of Object.entries(original.header)) {
      const s = scheme.tensors[name];
      expect(s.dtype).toBe('F16');
      expect(s.shape).toEqual(h.shape);
      if (quantized.has(name)) {
        // F16 codebooks by default (issue 16); a tensor with a row whose levels F16 cannot hold (all below 2^-14 in
        // magnitude, not all zero) is stored with F32 codebooks.
        expect(s).toMatchObject({ method: 'kmeans-optimal', bits: 4, granularity: 'row', slices: h.shape[0] });
        expect(q.header[s.codebook]).toMatchObject({ dtype: s.codebookDtype, shape: [h.shape[0], 16] });
        if (s.codebookDtype !== 'F16') {
          expect(s.codebookDtype).toBe('F32');
          const cb = decodeBytes(q.tensor(s.codebook), 'F32');
          const tiny = Array.from({ length: h.shape[0] }, (_, r) => Math.max(...cb.subarray(r * 16, r * 16 + 16).map(Math.abs))).some((m) => m > 0 && m < 2 ** -14);
          expect(tiny, name).toBe(true);
        }
        expect(q.header[s.codes].dtype).toBe('U8');
        expect(q.tensor(s.codes).byteLength).toBeGreaterThanOrEqual(Math.ceil((numelOf(h.shape) * 4) / 8));
        expectedNames.push(s.codebook, s.codes);
      } else {
        expect(s.method).toBe('keep');
        // Kept tensors are stored byte for byte.
        expect(q.header[name]).toMatchObject({ dtype: 'F16', shape: h.shape });
        expect(Buffer.from(q.tensor(name)).equals(Buffer.from(original.tensor(name)))).toBe(true);
        expectedNames.push(name);
      }
    }
    expect(Object.keys(q.header).sort()).toEqual(expectedNames.sort());
  });

  it('--json: one object with tensors (every field) and total, numbers consistent with the file', () => {
    expect(Object.keys(report)).toEqual(expect.arrayContaining(['tensors', 'total']));
    expect(report.tensors.map((t: any) => t.name)).toEqual(Object.keys(original.header));
    const q = readSafetensors(out());
    const scheme = JSON.parse(q.metadata.weightpress);
    const quantized = new Set(quantizedByDefault());
    let sumOut = 0, sumIn = 0, sumNumel = 0;
    for (const t of report.tensors) {
      for (const f of FIELDS) expect(t, `${t.name}.${f}`).toHaveProperty(f);
      const h = original.header[t.name];
      const n = numelOf(h.shape);
      expect(t.dtype).toBe('F16');
      expect(t.shape).toEqual(h.shape);
      expect(t.bytesIn).toBe(n * 2);
      expect(t.bitsPerWeight).toBeCloseTo((t.bytesOut * 8) / n, 12);
      expect(t.seconds).toBeGreaterThanOrEqual(0);
      if (quantized.has(t.name)) {
        expect(t).toMatchObject({ method: 'kmeans-optimal', bits: 4, granularity: 'row' });
        // bytesOut is what the file stores for the tensor: its codebook and its codes.
        const s = scheme.tensors[t.name];
        expect(t.bytesOut).toBe(q.tensor(s.codebook).byteLength + q.tensor(s.codes).byteLength);
        expect(t.mse).toBeGreaterThan(0);
        expect(t.sqnrDb).toBeGreaterThan(10);
        expect(t.maxAbsErr).toBeGreaterThan(0);
        expect(t.mse).toBeLessThanOrEqual(t.maxAbsErr ** 2);
      } else {
        expect(t).toMatchObject({ method: 'keep', bits: 16, granularity: null, mse: 0, maxAbsErr: 0, bytesOut: n * 2 });
      }
      sumOut += t.bytesOut;
      sumIn += t.bytesIn;
      sumNumel += n;
    }
    expect(report.total.bytesOut).toBe(sumOut);
    expect(report.total.bytesIn).toBe(sumIn);
    expect(report.total.bitsPerWeight).toBeCloseTo((sumOut * 8) / sumNumel, 12);
    expect(report.total.tensors).toBe(report.tensors.length);
    expect(report.total.quantizedTensors).toBe(quantized.size);
    expect(sumIn).toBe(readFileSync(input).byteLength - 8 - original.headerLength);
  });

  it('decode --dtype bf16: every original tensor, BF16, original shapes, values within the reported error', () => {
    const r = ok('decode', 'q.safetensors', '-o', 'dense.safetensors', '--dtype', 'bf16');
    expect(r.stdout).toMatch(/dense\.safetensors/);
    const dense = readSafetensors(join(dir, 'dense.safetensors'));
    expect(Object.keys(dense.header).sort()).toEqual(Object.keys(original.header).sort());
    expect(dense.metadata.weightpress).toBeUndefined();
    for (const [k, v] of Object.entries(original.metadata)) expect(dense.metadata[k]).toBe(v);
    const byName = new Map(report.tensors.map((t: any) => [t.name, t]));
    for (const [name, h] of Object.entries(original.header)) {
      expect(dense.header[name], name).toMatchObject({ dtype: 'BF16', shape: h.shape });
      const orig = decodeBytes(original.tensor(name), 'F16');
      const got = decodeBytes(dense.tensor(name), 'BF16');
      expect(got.length).toBe(orig.length);
      const t: any = byName.get(name);
      if (t.method === 'keep') {
        // Kept tensors: exactly the F16 value rounded to BF16.
        const wrong = orig.findIndex((v, i) => got[i] !== fromBf16(toBf16(v)));
        expect(wrong, `${name}: first element that is not the F16 value rounded to BF16`).toBe(-1);
      } else {
        // Quantized: within the reported max error (plus BF16 rounding of the level); at most 16 levels per row.
        const rows = h.shape[0], per = orig.length / rows;
        let worst = -Infinity, mostLevels = 0;
        for (let row = 0; row < rows; row++) {
          const levels = new Set<number>();
          for (let i = row * per; i < (row + 1) * per; i++) {
            levels.add(got[i]);
            const allowed = t.maxAbsErr + (Math.abs(orig[i]) + t.maxAbsErr) * 2 ** -8 + 1e-12;
            worst = Math.max(worst, Math.abs(got[i] - orig[i]) - allowed);
          }
          mostLevels = Math.max(mostLevels, levels.size);
        }
        expect(worst, `${name}: error beyond the reported maxAbsErr`).toBeLessThanOrEqual(0);
        expect(mostLevels, `${name}: distinct values in a row`).toBeLessThanOrEqual(16);
        expect(mostLevels).toBeGreaterThan(1);
      }
    }
  });

  it('decode --json prints one JSON object', () => {
    const r = ok('decode', 'q.safetensors', '-o', 'dense2.safetensors', '--json');
    const j = JSON.parse(r.stdout);
    expect(j.tensors).toBe(Object.keys(original.header).length);
    const dense = readSafetensors(join(dir, 'dense2.safetensors'));
    for (const [name, h] of Object.entries(original.header)) expect(dense.header[name]).toMatchObject({ dtype: 'F16', shape: h.shape });
  });

  it('inspect --json reports what quantize --json did (all fields but seconds and device, which describe the run)', () => {
    const r = ok('inspect', 'q.safetensors', '--json');
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const ins = JSON.parse(r.stdout);
    const strip = (t: any) => {
      const { seconds: _s, device: _d, ...rest } = t;
      return rest;
    };
    expect(ins.tensors.map(strip)).toEqual(report.tensors.map(strip));
    expect(strip(ins.total)).toEqual(strip(report.total));
    for (const t of ins.tensors) for (const f of FIELDS) expect(t).toHaveProperty(f);
  });

  it('inspect (table) names every tensor', () => {
    const r = ok('inspect', 'q.safetensors');
    for (const name of Object.keys(original.header)) expect(r.stdout).toContain(name);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('--help', () => {
  it('top level: usage and every command', () => {
    const r = ok('--help');
    for (const c of ['quantize', 'decode', 'inspect', 'backends']) expect(r.stdout).toContain(c);
  });

  it.each([
    ['quantize', ['--output', '--method', 'kmeans-optimal', 'uniform', 'kmeans', '--bits', '--granularity', '--group-size', '--include', '--exclude', '--seed', '--max-iter', '--symmetric', '--step', '--codebook-dtype', '--threads', '--json', '--quiet']],
    ['decode', ['--output', '--dtype', '--threads', '--json', '--quiet']],
    ['inspect', ['--json']],
    ['backends', ['--json']],
  ])('%s --help prints its options', (cmd, options) => {
    const r = ok(cmd as string, '--help');
    expect(r.stdout).toMatch(new RegExp(`usage: weightpress ${cmd}`));
    for (const o of options as string[]) expect(r.stdout, o).toContain(o);
  });

  it('no command: usage, exit 2', () => {
    const r = cli();
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('usage');
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('bad input', () => {
  it('a truncated file: non-zero exit, one line with E_FORMAT and the file name, no output', () => {
    const buf = readFileSync(input);
    writeFileSync(join(dir, 'truncated.safetensors'), buf.subarray(0, Math.floor(buf.byteLength / 2)));
    const before = readdirSync(dir).sort();
    const r = cli('quantize', 'truncated.safetensors', '-o', 'trunc-out.safetensors');
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    const line = oneLine(r.stderr);
    expect(line).toContain('E_FORMAT');
    expect(line).toContain('truncated.safetensors');
    expect(existsSync(join(dir, 'trunc-out.safetensors'))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('--bits 9: non-zero exit, one line about bits, no output', () => {
    const r = cli('quantize', 'emotion.safetensors', '-o', 'bits9.safetensors', '--bits', '9');
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/bits/);
    expect(existsSync(join(dir, 'bits9.safetensors'))).toBe(false);
  });

  it('--bits four: non-zero exit, one line about bits', () => {
    const r = cli('quantize', 'emotion.safetensors', '-o', 'bitsx.safetensors', '--bits', 'four');
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/bits/);
    expect(existsSync(join(dir, 'bitsx.safetensors'))).toBe(false);
  });

  it('a missing input: non-zero exit, one line with E_IO', () => {
    const r = cli('quantize', 'nope.safetensors', '-o', 'nope-out.safetensors');
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain('E_IO');
    expect(line).toContain('nope.safetensors');
  });

  it('decode of a file that is not a weightpress file: E_FORMAT', () => {
    const r = cli('decode', 'emotion.safetensors', '-o', 'not-wp.safetensors');
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain('E_FORMAT');
    expect(existsSync(join(dir, 'not-wp.safetensors'))).toBe(false);
  });

  it('unknown command: exit 2, one line naming it', () => {
    const r = cli('squash', 'emotion.safetensors');
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toContain('squash');
  });

  it('unknown flag: exit 2, one line naming it, no output', () => {
    const r = cli('quantize', 'emotion.safetensors', '-o', 'flag.safetensors', '--bitz', '4');
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toContain('--bitz');
    expect(existsSync(join(dir, 'flag.safetensors'))).toBe(false);
  });

  it('quantize without -o: exit 2', () => {
    const r = cli('quantize', 'emotion.safetensors');
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/-o/);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('methods, granularities, determinism', () => {
  const W = 'StatefulPartitionedCall/model_1/conv2d_2/Conv2D_weights'; // [64, 32, 3, 3]

  function schemeOf(file: string): any {
    return JSON.parse(readSafetensors(join(dir, file)).metadata.weightpress);
  }
  function codebookOf(file: string, name: string): Float64Array {
    const f = readSafetensors(join(dir, file));
    const cb = `${name}.__wp_codebook`;
    return decodeBytes(f.tensor(cb), f.header[cb].dtype);
  }
  /** Byte-identical, or a message saying where the first difference is (in the header or the data). */
  function expectIdentical(a: string, b: string): void {
    const x = readFileSync(join(dir, a)), y = readFileSync(join(dir, b));
    let at = 0;
    while (at < Math.min(x.length, y.length) && x[at] === y[at]) at++;
    const same = x.length === y.length && at === x.length;
    const header = 8 + readSafetensors(join(dir, a)).headerLength;
    const where = same ? '' : `${a} and ${b} first differ at byte ${at} (${at < header ? 'header' : 'data'}): ` +
      JSON.stringify(x.subarray(Math.max(0, at - 40), at + 40).toString('latin1'));
    expect(where).toBe('');
  }
  /** The file with every "seconds" (timing) removed from the stored scheme, and the data section. */
  function withoutTimings(file: string): { scheme: unknown; data: Buffer } {
    const buf = readFileSync(join(dir, file));
    const f = readSafetensors(join(dir, file));
    const scheme = JSON.parse(f.metadata.weightpress, (k, v) => (k === 'seconds' ? undefined : v));
    return { scheme, data: buf.subarray(8 + f.headerLength) };
  }

  it('--granularity group --group-size 64: one 16-level codebook row per 64 weights', () => {
    ok('quantize', 'emotion.safetensors', '-o', 'group.safetensors', '--granularity', 'group', '--group-size', '64', '--quiet');
    const f = readSafetensors(join(dir, 'group.safetensors'));
    const scheme = JSON.parse(f.metadata.weightpress);
    for (const name of quantizedByDefault()) {
      const n = numelOf(original.header[name].shape);
      expect(scheme.tensors[name]).toMatchObject({ granularity: 'group', groupSize: 64, sliceSize: 64, slices: Math.ceil(n / 64) });
      expect(f.header[`${name}.__wp_codebook`].shape).toEqual([Math.ceil(n / 64), 16]);
    }
  });

  it('--method uniform --symmetric: evenly spaced levels, symmetric about zero', () => {
    // F32 codebooks: F16's rounding of the levels would blur the even spacing this checks to 1e-6.
    ok('quantize', 'emotion.safetensors', '-o', 'uniform.safetensors', '--method', 'uniform', '--symmetric', '--codebook-dtype', 'f32', '--quiet');
    const s = schemeOf('uniform.safetensors').tensors[W];
    expect(s).toMatchObject({ method: 'uniform', params: { symmetric: true } });
    const cb = codebookOf('uniform.safetensors', W);
    expect(cb.length).toBe(64 * 16);
    for (let row = 0; row < 64; row++) {
      const lv = [...cb.subarray(row * 16, row * 16 + 16)].sort((a, b) => a - b);
      const step = lv[1] - lv[0];
      expect(step).toBeGreaterThan(0);
      for (let i = 0; i < 16; i++) {
        expect(lv[i] + lv[15 - i]).toBeCloseTo(0, 6);
        if (i) expect(lv[i] - lv[i - 1]).toBeCloseTo(step, 6);
      }
    }
  });

  it('--method kmeans --seed 3: two runs give byte-identical files', () => {
    ok('quantize', 'emotion.safetensors', '-o', 'km-a.safetensors', '--method', 'kmeans', '--seed', '3', '--quiet');
    ok('quantize', 'emotion.safetensors', '-o', 'km-b.safetensors', '--method', 'kmeans', '--seed', '3', '--quiet');
    expect(schemeOf('km-a.safetensors').tensors[W]).toMatchObject({ method: 'kmeans', params: { seed: 3 } });
    // The quantized data and the scheme apart from timings first (this localizes a failure of the next check).
    expect(withoutTimings('km-b.safetensors')).toEqual(withoutTimings('km-a.safetensors'));
    expectIdentical('km-a.safetensors', 'km-b.safetensors');
  });

  it('--threads 1 and --threads 2 give byte-identical files', () => {
    ok('quantize', 'emotion.safetensors', '-o', 't1.safetensors', '--threads', '1', '--quiet');
    ok('quantize', 'emotion.safetensors', '-o', 't2.safetensors', '--threads', '2', '--quiet');
    expect(withoutTimings('t2.safetensors')).toEqual(withoutTimings('t1.safetensors'));
    expectIdentical('t1.safetensors', 't2.safetensors');
  });

  it('--threads 1 and --threads 2 agree for kmeans with a seed too', () => {
    ok('quantize', 'emotion.safetensors', '-o', 'kt1.safetensors', '--method', 'kmeans', '--seed', '5', '--threads', '1', '--quiet');
    ok('quantize', 'emotion.safetensors', '-o', 'kt2.safetensors', '--method', 'kmeans', '--seed', '5', '--threads', '2', '--quiet');
    expect(withoutTimings('kt2.safetensors')).toEqual(withoutTimings('kt1.safetensors'));
  });
});
