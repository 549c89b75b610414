/**
 * Suite header: the cost of opening a safetensors file whose header has many tensor entries (issue 15, target 6:
 * 10^5 entries in under 1 s and under 200 MB), against the peers in the same run:
 *
 *   JSON.parse   V8's JSON.parse of the same header bytes (no validation: the floor for a JS reader)
 *   weightpress  Checkpoint.open (mmap, strict validation in native code, the entries handed to JS) and
 *                ckpt.tensors() once
 *   safetensors  the reference reader (Python safetensors' safe_open + keys(), Rust) when BENCH_PYTHON names a
 *                python3 that has it; skipped otherwise
 *
 *   npx tsx bench/header.bench.ts               (BENCH_HEADER_ENTRIES=100000,320000 by default; quick: 20000)
 *
 * BENCH_HEADER_BASELINE=/work/main adds the same measurement for another checkout's built dist/ (its own native
 * build, with WEIGHTPRESS_PREFER_LOCAL=1), so that before and after are timed in one run.
 *
 * The file: N tensors named like an LLM's (model.layers.L.mlp.expert.E.up_proj.weight), F32 of shape [1, 2],
 * 8 bytes each; written once to the OS temp directory and removed afterwards. Memory: the growth of the process's
 * resident set (peak, from /proc/self/status VmHWM, in a fresh child process per reader so that one reader's
 * garbage does not count against another).
 */
import './env.js';

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { QUICK, emit, isMain, mdTable, note } from './common.js';

export const name = 'header';

/** Writes a safetensors file with n tiny F32 tensors; returns its path and header length. */
function writeFile(n: number): { path: string; headerBytes: number } {
  const path = join(tmpdir(), `wp-header-bench-${process.pid}-${n}.safetensors`);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `model.layers.${Math.floor(i / 1000)}.mlp.experts.${i % 1000}.up_proj.weight`;
    parts.push(`${JSON.stringify(name)}:{"dtype":"F32","shape":[1,2],"data_offsets":[${8 * i},${8 * (i + 1)}]}`);
  }
  let h = `{"__metadata__":{"format":"pt"},${parts.join(',')}}`;
  h += ' '.repeat((8 - (Buffer.byteLength(h) % 8)) % 8);
  const hb = Buffer.from(h, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, hb);
    writeSync(fd, Buffer.alloc(8 * n));
  } finally {
    closeSync(fd);
  }
  return { path, headerBytes: hb.length };
}

interface Measure {
  ms: number;
  /** CPU time (user + system) of the reader: on a loaded machine the fairer number */
  cpuMs: number;
  rssMB: number;
}

/** Runs one reader in a child process (this file with --child), returning its time and peak RSS growth. */
function child(reader: string, path: string): Measure | undefined {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', reader, path], { encoding: 'utf8', env: process.env });
  if (r.status !== 0) {
    note(`  ${reader}: failed (${(r.stderr || r.stdout).trim().split('\n').pop()})`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measure;
}

function hwmMB(): number {
  const s = readFileSync('/proc/self/status', 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) / 1024 : NaN;
}
function rssMB(): number {
  const s = readFileSync('/proc/self/status', 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function runChild(reader: string, path: string): Promise<void> {
  let base: number;
  let t0: number;
  let c0: NodeJS.CpuUsage;
  if (reader === 'json') {
    base = rssMB();
    c0 = process.cpuUsage();
    t0 = performance.now();
    const b = readFileSync(path);
    const n = Number(b.readBigUInt64LE(0));
    const o = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
    if (Object.keys(o).length < 1) throw new Error('empty');
  } else {
    // 'wp' this tree's lib; 'wp:DIR' the built dist/ of another checkout (the baseline, e.g. the main branch)
    const dir = reader.startsWith('wp:') ? reader.slice(3) : '';
    const { Checkpoint } = (await import(dir ? join(dir, 'dist/checkpoint.js') : '../lib/checkpoint.js')) as typeof import('../lib/checkpoint.js');
    const { loadNative } = (await import(dir ? join(dir, 'dist/load.js') : '../lib/load.js')) as typeof import('../lib/load.js');
    loadNative();
    base = rssMB();
    c0 = process.cpuUsage();
    t0 = performance.now();
    const ck = await Checkpoint.open(path);
    if (ck.tensors().length < 1) throw new Error('empty');
    ck.close();
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ ms, cpuMs: (c.user + c.system) / 1e3, rssMB: hwmMB() - base }) + '\n');
}

const PY = `
import sys, time, resource
from safetensors import safe_open
def rss():
    for l in open('/proc/self/status'):
        if l.startswith('VmRSS'): return int(l.split()[1]) / 1024
def hwm():
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM'): return int(l.split()[1]) / 1024
b = rss(); t = time.perf_counter(); c = time.process_time()
with safe_open(sys.argv[1], 'np') as f:
    k = list(f.keys())
ms = (time.perf_counter() - t) * 1e3
cpu = (time.process_time() - c) * 1e3
import json; print(json.dumps({'ms': ms, 'cpuMs': cpu, 'rssMB': hwm() - b}))
`;

export async function run(): Promise<string> {
  const counts = (process.env.BENCH_HEADER_ENTRIES ?? (QUICK ? '20000' : '100000,320000')).split(',').map(Number);
  const py = process.env.BENCH_PYTHON;
  const base = process.env.BENCH_HEADER_BASELINE;
  const rows: string[][] = [];
  for (const n of counts) {
    const { path, headerBytes } = writeFile(n);
    try {
      note(`header: ${n} entries, ${(headerBytes / 1e6).toFixed(1)} MB of header`);
      const res: [string, Measure | undefined][] = [
        ['JSON.parse (V8, no validation)', child('json', path)],
        ['weightpress Checkpoint.open + tensors()', child('wp', path)],
      ];
      if (base) res.push([`weightpress at ${base} (baseline)`, child(`wp:${base}`, path)]);
      if (py) {
        const r = spawnSync(py, ['-c', PY, path], { encoding: 'utf8' });
        res.push(['safetensors safe_open + keys() (Python, Rust core)', r.status === 0 ? (JSON.parse(r.stdout.trim()) as Measure) : undefined]);
        if (r.status !== 0) note(`  python: ${r.stderr.trim().split('\n').pop()}`);
      }
      for (const [what, m] of res)
        rows.push([String(n), (headerBytes / 1e6).toFixed(1), what, m ? `${m.ms.toFixed(0)} ms` : 'failed', m ? `${m.cpuMs.toFixed(0)} ms` : '', m ? `${((m.cpuMs * 1e3) / n).toFixed(2)} µs` : '', m ? `${m.rssMB.toFixed(0)} MB` : '', m ? `${((m.rssMB * 1048576) / n).toFixed(0)} B` : '']);
    } finally {
      rmSync(path, { force: true });
    }
  }
  return mdTable(['entries', 'header MB', 'reader', 'wall', 'CPU', 'CPU per entry', 'peak RSS growth', 'per entry'], rows);
}

if (process.argv[2] === '--child') {
  await runChild(process.argv[3], process.argv[4]);
} else if (isMain(import.meta.url)) {
  emit(await run());
}
