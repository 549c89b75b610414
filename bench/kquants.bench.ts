/**
 * GGUF export with llama.cpp's K-quants (issue 16): throughput of exportGguf per type on a synthetic LLM-like
 * 4096 x 4096 BF16 matrix (32 MiB) against a memcpy of the same bytes, with 1 and 2 threads, and the SQNR each
 * type reaches; Q4_K with an imatrix (random per-column importance) beside it.
 *
 *   npx tsx bench/kquants.bench.ts            (BENCH_KQ_ROWS / BENCH_KQ_COLS for other sizes; BENCH_QUICK=1: 1024 rows)
 *
 * The peer a user would pick, llama.cpp's llama-quantize, is not on this machine; bench/kquants_verify.py reads the
 * exported files with gguf-py (Python's `gguf`) and times its NumPy Q8_0 quantizer as the reachable peer.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { exportGguf, type GgufQuantType } from '../lib/gguf.js';
import { Rng, benchHeader, emit, envInt, f32ToBf16, fmtMs, mdTable } from './common.js';

const rows = envInt('BENCH_KQ_ROWS', 4096, 1024);
const cols = envInt('BENCH_KQ_COLS', 4096);
const dir = mkdtempSync(join(tmpdir(), 'wp-kq-'));

function writeInput(path: string): Uint8Array {
  const rng = new Rng(20261208);
  const f = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const rs = 0.02 * Math.exp(0.5 * rng.normal());
    for (let j = 0; j < cols; j++) f[i * cols + j] = rs * rng.normal() * (j % 509 === 7 ? 8 : 1);
  }
  const bf = new Uint16Array(rows * cols);
  f32ToBf16(new Uint32Array(f.buffer), f.length, bf);
  const data = new Uint8Array(bf.buffer);
  const header = JSON.stringify({ 'blk.0.ffn_up.weight': { dtype: 'BF16', shape: [rows, cols], data_offsets: [0, data.length] } }).padEnd(120, ' ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  writeFileSync(path, Buffer.concat([len, Buffer.from(header), data]));
  return data;
}

function writeImatrix(path: string): void {
  const rng = new Rng(7);
  const v = Float32Array.from({ length: cols }, () => Math.exp(2 * rng.normal()));
  const parts: Buffer[] = [];
  const i32 = (x: number) => { const b = Buffer.alloc(4); b.writeInt32LE(x); parts.push(b); };
  const name = 'blk.0.ffn_up.weight';
  i32(1); i32(name.length); parts.push(Buffer.from(name)); i32(1); i32(cols); parts.push(Buffer.from(v.buffer)); i32(1); i32(0);
  writeFileSync(path, Buffer.concat(parts));
}

async function best<T>(n: number, f: () => Promise<T>): Promise<{ ms: number; r: T }> {
  let ms = Infinity, r!: T;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    r = await f();
    ms = Math.min(ms, performance.now() - t);
  }
  return { ms, r };
}

export async function main(): Promise<void> {
  const input = join(dir, 'm.safetensors');
  const data = writeInput(input);
  const imatrix = join(dir, 'm.imatrix.dat');
  writeImatrix(imatrix);
  const mb = data.length / 1e6;
  const copy = new Uint8Array(data.length);
  const mem = await best(5, async () => copy.set(data));
  const rowsOut: (string | number)[][] = [['memcpy (TypedArray.set) of the same bytes', '-', fmtMs(mem.ms), (mb / (mem.ms / 1e3)).toFixed(0), '1', '-']];
  const cases: [GgufQuantType, boolean][] = [['Q4_K', false], ['Q4_K', true], ['Q5_K', false], ['Q6_K', false], ['Q8_0', false], ['IQ4_NL', false]];
  for (const [type, withImatrix] of cases)
    for (const threads of [1, 2]) {
      const { ms, r } = await best(2, () => exportGguf(input, join(dir, `o-${type}.gguf`), { type, threads, force: true, ...(withImatrix ? { imatrix } : {}) }));
      rowsOut.push([`${type}${withImatrix ? ' + imatrix' : ''}`, threads, fmtMs(ms), (mb / (ms / 1e3)).toFixed(1), (ms / mem.ms).toFixed(0), r.total.sqnrDb!.toFixed(2)]);
    }
  emit(
    `## kquants: GGUF export with llama.cpp's K-quants (issue 16)\n\n${await benchHeader()}\n\n` +
      `Synthetic ${rows} x ${cols} BF16 (${(data.length / 2 ** 20).toFixed(0)} MiB), best of 2 (memcpy: best of 5). ` +
      `MB/s of BF16 input; SQNR over the tensor.\n\n` +
      mdTable(['what', 'threads', 'time', 'MB/s', 'x memcpy', 'SQNR dB'], rowsOut, ['l', 'r', 'r', 'r', 'r', 'r']),
  );
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
