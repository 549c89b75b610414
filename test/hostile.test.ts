/**
 * A hostile file system (issue #11): outputs that are the input (by path, symlink or hard link), device nodes,
 * FIFOs, sockets and directories; symlink outputs; killed processes (SIGKILL, SIGTERM, SIGHUP, SIGQUIT, a second
 * Ctrl-C), with O_TMPFILE and without it; inputs truncated while a job reads them. Every kind runs for every job
 * that writes an output: quantize with each codec of the registry, decode, and export-gguf.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Checkpoint, decode, exportGguf, quantize, type WeightpressError } from '../lib/index.js';
import { QUANTIZING_CODECS } from '../lib/codecs/registry.js';
import { codecOptions } from './codec-options.js';
import { encode, gaussian, tempDir, writeSafetensors } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

let root: string;
let cleanup: () => void;
let n = 0;
/** A fresh empty directory. */
function fresh(): string {
  const d = join(root, `d${++n}`);
  mkdirSync(d);
  return d;
}

/** A small dense checkpoint: two matrices every codec takes (rows of 64) and a bias that is kept. */
function dense(path: string, seed = 1): string {
  writeSafetensors(path, [
    { name: 'w0', dtype: 'F32', shape: [48, 64], data: encode(gaussian(48 * 64, seed), 'F32') },
    { name: 'w1', dtype: 'F16', shape: [32, 64], data: encode(gaussian(32 * 64, seed + 1), 'F16') },
    { name: 'bias', dtype: 'F32', shape: [64], data: encode(gaussian(64, seed + 2), 'F32') },
  ]);
  return path;
}

interface Job {
  name: string;
  /** Writes the job's input at `path` (a dense file, or a weightpress file for decode). */
  input(path: string): Promise<string>;
  run(input: string, output: string, extra?: { force?: boolean; onProgress?: () => void }): Promise<unknown>;
  /** The file a directory output gets. */
  inDir: string;
  /** Checks that `path` holds a complete, valid output of this job. */
  valid(path: string): Promise<void>;
}

const quantizeJobs: Job[] = QUANTIZING_CODECS.map((codec) => ({
  name: `quantize --codec ${codec}`,
  input: async (p) => dense(p),
  run: (i, o, x = {}) => quantize(i, o, { codec, ...codecOptions(codec), minElements: 1024, ...(x.force ? { force: true } : {}), ...(x.onProgress ? { onProgress: x.onProgress } : {}) }),
  inDir: 'model.safetensors',
  valid: async (p) => {
    const ck = await Checkpoint.open(p);
    try {
      expect(ck.metadata.weightpress).toBeDefined();
    } finally {
      ck.close();
    }
  },
}));

const jobs: Job[] = [
  ...quantizeJobs,
  {
    name: 'decode',
    input: async (p) => {
      const d = dense(p + '.dense.safetensors');
      await quantize(d, p, { bits: 3, minElements: 1024 });
      return p;
    },
    run: (i, o, x = {}) => decode(i, o, { ...(x.force ? { force: true } : {}), ...(x.onProgress ? { onProgress: x.onProgress } : {}) }),
    inDir: 'model.safetensors',
    valid: async (p) => {
      const ck = await Checkpoint.open(p);
      try {
        expect(ck.tensors().map((t) => t.name).sort()).toEqual(['bias', 'w0', 'w1']);
      } finally {
        ck.close();
      }
    },
  },
  {
    name: 'export-gguf',
    input: async (p) => dense(p),
    run: (i, o, x = {}) => exportGguf(i, o, { type: 'Q4_0', minElements: 1024, ...(x.force ? { force: true } : {}), ...(x.onProgress ? { onProgress: x.onProgress } : {}) }),
    inDir: '', // "<input name>.gguf", set per call below
    valid: async (p) => {
      expect(readFileSync(p).subarray(0, 4).toString('latin1')).toBe('GGUF');
    },
  },
];

beforeAll(() => {
  ({ dir: root, cleanup } = tempDir());
});
afterAll(() => cleanup());

async function rejection(p: Promise<unknown>): Promise<WeightpressError> {
  try {
    await p;
  } catch (e) {
    return e as WeightpressError;
  }
  throw new Error('expected a rejection');
}

describe.each(jobs)('$name: outputs that must not be written', (job) => {
  it('the input itself as output (same path, a symlink to it, a hard link to it) is refused before any work; --force replaces it', async () => {
    const d = fresh();
    const input = await job.input(join(d, 'in.safetensors'));
    const bytes = readFileSync(input);
    symlinkSync(input, join(d, 'sym.safetensors'));
    linkSync(input, join(d, 'hard.safetensors'));
    for (const out of [input, join(d, 'sym.safetensors'), join(d, 'hard.safetensors')]) {
      let progress = 0;
      const e = await rejection(job.run(input, out, { onProgress: () => progress++ }));
      expect({ code: e.code, file: e.file }).toEqual({ code: 'E_ARGUMENT', file: out });
      expect(e.message).toMatch(/is the input/);
      expect(progress).toBe(0);
      expect(readFileSync(input).equals(bytes)).toBe(true);
    }
    expect(readdirSync(d).sort()).toEqual(['hard.safetensors', 'in.safetensors', 'sym.safetensors', ...(job.name === 'decode' ? ['in.safetensors.dense.safetensors'] : [])].sort());
    // With force the output replaces the input file (the job read it through its own mapping, unharmed).
    await job.run(input, input, { force: true });
    await job.valid(input);
    expect(readFileSync(input).equals(bytes)).toBe(false);
  });

  it('a device node, a FIFO, a socket or a directory as the output file is refused before any work, and stays what it was', async () => {
    const d = fresh();
    const input = await job.input(join(d, 'in.safetensors'));
    execFileSync('mkfifo', [join(d, 'fifo')]);
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(d, 'sock'), done));
    mkdirSync(join(d, 'dir', job.inDir || 'in.gguf'), { recursive: true });
    try {
      const cases: [string, (p: string) => boolean][] = [
        ['/dev/null', (p) => statSync(p).isCharacterDevice()],
        [join(d, 'fifo'), (p) => statSync(p).isFIFO()],
        [join(d, 'sock'), (p) => statSync(p).isSocket()],
        [join(d, 'dir') + '/', () => statSync(join(d, 'dir', job.inDir || 'in.gguf')).isDirectory()],
      ];
      for (const [out, still] of cases) {
        let progress = 0;
        const e = await rejection(job.run(input, out, { onProgress: () => progress++ }));
        expect(e.code, out).toBe('E_ARGUMENT');
        expect(e.message).toMatch(/a character device|a FIFO|a socket|a directory/);
        expect(progress).toBe(0);
        expect(still(out)).toBe(true);
      }
    } finally {
      server.close();
    }
  });

  it('a path ending in "/" is a directory (created); a symlink output is written through', async () => {
    const d = fresh();
    const input = await job.input(join(d, 'in.safetensors'));
    await job.run(input, join(d, 'new', 'deeper') + '/');
    const inDir = job.inDir || 'in.gguf';
    expect(readdirSync(join(d, 'new', 'deeper'))).toEqual([inDir]);
    await job.valid(join(d, 'new', 'deeper', inDir));
    // A symlink to another file: the file it points to gets the output, the link stays a link to it.
    writeFileSync(join(d, 'target.out'), 'old');
    symlinkSync(join(d, 'target.out'), join(d, 'link.out'));
    await job.run(input, join(d, 'link.out'));
    expect(lstatSync(join(d, 'link.out')).isSymbolicLink()).toBe(true);
    await job.valid(join(d, 'target.out'));
    // A dangling symlink is refused.
    symlinkSync(join(d, 'nowhere'), join(d, 'dangling.out'));
    expect((await rejection(job.run(input, join(d, 'dangling.out')))).code).toBe('E_ARGUMENT');
    expect(existsSync(join(d, 'nowhere'))).toBe(false);
  });

  it('an input truncated while the job reads it is an E_IO naming the input, with no output and no crash', async () => {
    const d = fresh();
    const input = await job.input(join(d, 'in.safetensors'));
    const cut = () => truncateSync(input, 64);
    // Truncated after the plan read the header: the next read of tensor data runs past the new end of the file.
    const e = await rejection(job.run(input, join(d, job.name === 'export-gguf' ? 'out.gguf' : 'out.safetensors'), { onProgress: cut }));
    expect({ code: e.code, file: e.file }).toEqual({ code: 'E_IO', file: input });
    expect(e.message).toMatch(/shrank/);
    expect(readdirSync(d).filter((f) => f.startsWith('out') || f.includes('.wp-'))).toEqual([]);
  });
});

describe.each(jobs)('$name: a full disk', (job) => {
  it('is an E_IO naming the output, and leaves nothing on it (a 64 KiB tmpfs; skipped where mounting is not allowed)', async (ctx) => {
    const d = fresh();
    const input = await job.input(join(d, 'in.safetensors'));
    const mnt = join(d, 'full');
    mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status !== 0) return ctx.skip();
    try {
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(63 * 1024, 1)); // leaves less than a page
      const out = join(mnt, job.inDir || 'out.gguf');
      const e = await rejection(job.run(input, out));
      expect({ code: e.code, file: e.file }).toEqual({ code: 'E_IO', file: out });
      expect(e.message).toMatch(/No space left on device/);
      expect(readdirSync(mnt)).toEqual(['filler']);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('a file shrinking under its mapping', () => {
  it('reading a view past the new end gives no SIGBUS; check() then names the file (E_IO), and so does every later read', async () => {
    const d = fresh();
    const input = dense(join(d, 'in.safetensors'));
    const ck = await Checkpoint.open(input);
    try {
      const before = Float32Array.from(new Float32Array(ck.bytes('bias').slice().buffer));
      const view = ck.bytes('w1');
      truncateSync(input, 100);
      let sum = 0;
      for (let i = 0; i < view.length; i += 1024) sum += view[i]; // pages past the end: zeros, not a crash
      expect(sum).toBe(0);
      expect(() => ck.check()).toThrow(expect.objectContaining({ code: 'E_IO', file: input }));
      expect(() => ck.bytes('bias')).toThrow(expect.objectContaining({ code: 'E_IO', file: input }));
      expect(before.length).toBe(64);
    } finally {
      ck.close();
    }
  });
});

// ---- killed processes ----------------------------------------------------------------------------------------

/** A checkpoint slow enough at 8 bits that a signal lands in the middle of the first tensor. */
function slowInput(d: string): string {
  const p = join(d, 'slow.safetensors');
  writeSafetensors(p, [0, 1].map((k) => ({ name: `w${k}`, dtype: 'F32', shape: [256, 1024], data: encode(gaussian(256 * 1024, 7 + k), 'F32') })));
  return p;
}

/** Runs quantize in a child, sends `signal` (twice when `twice`) once it reports progress; its exit and what is left. */
async function killed(input: string, outDir: string, signal: NodeJS.Signals, twice: boolean, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, 'quantize', input, '-o', join(outDir, 'out.safetensors'), '--bits', '8', '--threads', '1', '--progress'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let sent = false;
  let stderr = '';
  const exit = await new Promise<{ code: number | null; signal: string | null }>((done) => {
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (sent || !/\] +\d+%/.test(stderr)) return;
      sent = true;
      child.kill(signal);
      if (twice) setTimeout(() => child.kill(signal), 20);
    });
    child.on('exit', (code, sig) => done({ code, signal: sig }));
  });
  expect(sent, stderr).toBe(true);
  return { ...exit, left: readdirSync(outDir) };
}

describe('killed jobs leave nothing', { timeout: 60_000 }, () => {
  let input: string;
  beforeAll(() => {
    input = slowInput(fresh());
  });

  it.each([
    ['SIGTERM', false, 143],
    ['SIGHUP', false, 129],
    ['SIGQUIT', false, 131],
    ['SIGINT', false, 130],
    ['SIGINT', true, 130],
  ] as const)('%s (twice: %s) exits %i and leaves no file, with O_TMPFILE and without', async (signal, twice, code) => {
    for (const env of [{}, { WEIGHTPRESS_NO_TMPFILE: '1' }] as Record<string, string>[]) {
      const out = fresh();
      const r = await killed(input, out, signal, twice, env);
      // A second signal that lands while Node exits (its handlers already reset) ends the process by the signal
      // itself, which a shell reports as the same status: 128 + the signal's number.
      const status = r.code ?? (r.signal ? 128 + osConstants.signals[r.signal as NodeJS.Signals] : null);
      expect({ status, left: r.left }).toEqual({ status: code, left: [] });
      if (!twice) expect(r.code).toBe(code);
    }
  });

  it('SIGKILL leaves nothing with O_TMPFILE; without it, the temporary file it leaves is removed by the next run', async () => {
    const out = fresh();
    expect(await killed(input, out, 'SIGKILL', false)).toMatchObject({ signal: 'SIGKILL', left: [] });
    const r = await killed(input, out, 'SIGKILL', false, { WEIGHTPRESS_NO_TMPFILE: '1' });
    expect(r.left).toHaveLength(1);
    expect(r.left[0]).toMatch(/^\.out\.safetensors\.wp-\d+@[^.]+\.[0-9a-f]{8}\.tmp$/);
    // A later run into the same directory removes it (its process is gone); a live process's would stay.
    const small = dense(join(fresh(), 'small.safetensors'));
    await quantize(small, join(out, 'other.safetensors'), { bits: 2 });
    expect(readdirSync(out)).toEqual(['other.safetensors']);
  });
});
