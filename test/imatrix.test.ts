/**
 * llama.cpp importance matrices as importance (lib/imatrix.ts, --imatrix). The files are written here by writers
 * made from the published formats that tools/imatrix/imatrix.cpp writes: the GGUF imatrix (general.type
 * "imatrix", imatrix.datasets / chunk_count / chunk_size, per weight "<name>.in_sum2" F32 [ne0, n_mat] and
 * "<name>.counts" F32 [1, n_mat]) and the legacy .dat (int32 count; per entry int32 name length, name, int32 ncall,
 * int32 nval, nval F32 mean squares x ncall; int32 chunks; int32 length + dataset name). Oracles: the means the
 * formats define; quantize() with an imatrix gives the same output as with the explicit per-element importance
 * (each column's value broadcast over the rows) in a safetensors importance file; malformed files give typed
 * errors naming the file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

import { Imatrix, ggufNameOf } from '../lib/imatrix.js';
import { Importance } from '../lib/importance.js';
import { quantize } from '../lib/index.js';
import { encode, gaussian, mulberry32, readSafetensors, tempDir, writeSafetensors } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

interface DatEntry { name: string; means: Float32Array; ncall: number }
/** Legacy .dat, as save_imatrix_legacy writes it (values stored as mean x ncall). */
function writeDat(path: string, entries: DatEntry[], trailer: { chunks: number; dataset: string } | null = { chunks: 10, dataset: 'wiki.train.raw' }) {
  const parts: Buffer[] = [];
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  i32(entries.length);
  for (const e of entries) {
    i32(Buffer.byteLength(e.name));
    parts.push(Buffer.from(e.name));
    i32(e.ncall);
    i32(e.means.length);
    parts.push(Buffer.from(Float32Array.from(e.means, (v) => Math.fround(v * Math.max(e.ncall, 1))).buffer));
  }
  if (trailer) {
    i32(trailer.chunks);
    i32(Buffer.byteLength(trailer.dataset));
    parts.push(Buffer.from(trailer.dataset));
  }
  writeFileSync(path, Buffer.concat(parts));
}

interface GgufEntry { name: string; ne0: number; sums: Float32Array; counts: number[] }
/** GGUF v3 imatrix, as save_imatrix writes it through gguf_write_to_file (alignment 32). */
function writeGgufImatrix(path: string, entries: GgufEntry[], opts: { type?: string; tensorType?: number; skipCounts?: boolean; badCounts?: boolean } = {}) {
  const parts: Buffer[] = [];
  let len = 0;
  const push = (b: Buffer) => { parts.push(b); len += b.length; };
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); push(b); };
  const str = (s: string) => { u64(Buffer.byteLength(s)); push(Buffer.from(s)); };
  const tensors: { name: string; ne: number[]; data: Float32Array }[] = [];
  for (const e of entries) {
    tensors.push({ name: `${e.name}.in_sum2`, ne: [e.ne0, e.counts.length], data: e.sums });
    if (!opts.skipCounts) tensors.push({ name: `${e.name}.counts`, ne: [1, e.counts.length + (opts.badCounts ? 1 : 0)], data: Float32Array.from([...e.counts, ...(opts.badCounts ? [1] : [])]) });
  }
  push(Buffer.from('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(4);
  str('general.type'); u32(8); str(opts.type ?? 'imatrix');
  str('imatrix.datasets'); u32(9); u32(8); u64(1); str('c4.txt');
  str('imatrix.chunk_count'); u32(4); u32(12);
  str('imatrix.chunk_size'); u32(4); u32(512);
  let off = 0;
  const offs: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    for (const d of t.ne) u64(d);
    u32(opts.tensorType ?? 0);
    offs.push(off);
    u64(off);
    off += Math.ceil((t.data.length * 4) / 32) * 32;
  }
  push(Buffer.alloc((32 - (len % 32)) % 32));
  for (const [i, t] of tensors.entries()) {
    const b = Buffer.from(t.data.buffer.slice(0));
    push(b);
    push(Buffer.alloc(Math.ceil(b.length / 32) * 32 - b.length));
    expect(offs[i]).toBeDefined();
  }
  writeFileSync(path, Buffer.concat(parts));
}

const ramp = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(0.5 + ((i * k) % 17) * 0.25));

describe('reading both formats', () => {
  it('legacy .dat: the means are values / ncall; the trailer gives chunks and dataset', () => {
    const p = join(tmp.dir, 'a.dat');
    const m0 = ramp(64, 3), m1 = ramp(96, 5);
    writeDat(p, [{ name: 'blk.0.attn_q.weight', means: m0, ncall: 7 }, { name: 'blk.0.ffn_down.weight', means: m1, ncall: 7 }]);
    const m = Imatrix.open(p);
    expect(m.format).toBe('dat');
    expect(m.names().sort()).toEqual(['blk.0.attn_q.weight', 'blk.0.ffn_down.weight']);
    expect(m.chunks).toBe(10);
    expect(m.datasets).toEqual(['wiki.train.raw']);
    const v = m.values('blk.0.attn_q.weight')!;
    for (let i = 0; i < 64; i++) expect(v[i]).toBeCloseTo(m0[i], 5);
    expect(m.shape('blk.0.ffn_down.weight')).toEqual({ ne0: 96, nmat: 1, nval: 96 });
    m.close();
    // Without the trailer (older files) it still reads.
    writeDat(p, [{ name: 'x', means: m0, ncall: 0 }], null);
    const n = Imatrix.open(p);
    expect(Array.from(n.values('x')!)).toEqual(Array.from(m0));
    n.close();
  });

  it('GGUF: the means are in_sum2 / count per matrix; a matrix with count 0 reads as ones (as llama-quantize reads it)', () => {
    const p = join(tmp.dir, 'a.gguf');
    const sums = Float32Array.from({ length: 3 * 8 }, (_, i) => i + 1);
    writeGgufImatrix(p, [{ name: 'blk.1.ffn_up_exps.weight', ne0: 8, sums, counts: [4, 0, 2] }, { name: 'blk.1.attn_k.weight', ne0: 16, sums: ramp(16, 2), counts: [512] }]);
    const m = Imatrix.open(p);
    expect(m.format).toBe('gguf');
    expect(m.datasets).toEqual(['c4.txt']);
    expect(m.chunks).toBe(12);
    expect(m.shape('blk.1.ffn_up_exps.weight')).toEqual({ ne0: 8, nmat: 3, nval: 24 });
    const v = Array.from(m.values('blk.1.ffn_up_exps.weight')!);
    expect(v.slice(0, 8)).toEqual(Array.from(sums.subarray(0, 8), (x) => Math.fround(x / 4)));
    expect(v.slice(8, 16)).toEqual(new Array(8).fill(1));
    expect(v.slice(16)).toEqual(Array.from(sums.subarray(16), (x) => Math.fround(x / 2)));
    m.close();
  });
});

describe('names', () => {
  it("maps HF names to llama.cpp's GGUF names", () => {
    const cases: [string, string, number?][] = [
      ['model.layers.3.self_attn.q_proj.weight', 'blk.3.attn_q.weight'],
      ['model.layers.3.self_attn.k_proj.weight', 'blk.3.attn_k.weight'],
      ['model.layers.3.self_attn.v_proj.weight', 'blk.3.attn_v.weight'],
      ['model.layers.3.self_attn.o_proj.weight', 'blk.3.attn_output.weight'],
      ['model.layers.12.mlp.gate_proj.weight', 'blk.12.ffn_gate.weight'],
      ['model.layers.12.mlp.up_proj.weight', 'blk.12.ffn_up.weight'],
      ['model.layers.12.mlp.down_proj.weight', 'blk.12.ffn_down.weight'],
      ['model.layers.0.mlp.experts.5.down_proj.weight', 'blk.0.ffn_down_exps.weight', 5],
      ['model.layers.0.block_sparse_moe.experts.2.w1.weight', 'blk.0.ffn_gate_exps.weight', 2],
      ['model.layers.0.block_sparse_moe.experts.2.w2.weight', 'blk.0.ffn_down_exps.weight', 2],
      ['model.layers.0.block_sparse_moe.experts.2.w3.weight', 'blk.0.ffn_up_exps.weight', 2],
      ['model.layers.0.mlp.shared_expert.up_proj.weight', 'blk.0.ffn_up_shexp.weight'],
      ['model.layers.0.block_sparse_moe.gate.weight', 'blk.0.ffn_gate_inp.weight'],
      ['lm_head.weight', 'output.weight'],
      ['model.embed_tokens.weight', 'token_embd.weight'],
    ];
    for (const [hf, g, e] of cases) expect(ggufNameOf(hf), hf).toEqual(e === undefined ? { name: g } : { name: g, expert: e });
    expect(ggufNameOf('conv1.weight')).toBeUndefined();
    expect(ggufNameOf('model.layers.0.input_layernorm.weight')).toBeUndefined();
  });

  it('broadcasts columns over rows, per expert for merged and per-expert tensors, and refuses a size mismatch', async () => {
    const p = join(tmp.dir, 'moe.dat');
    const exps = Float32Array.from({ length: 3 * 8 }, (_, i) => i + 1);
    writeDat(p, [{ name: 'blk.0.ffn_down_exps.weight', means: exps, ncall: 1 }, { name: 'blk.0.attn_q.weight', means: ramp(8, 1), ncall: 1 }]);
    const imp = await Importance.openImatrix(p, []);
    const ref = (name: string, shape: number[]) => ({ name, shape, numel: shape.reduce((a, b) => a * b, 1), dtype: 'F32', byteLength: 0, file: '' });
    // Per-expert HF tensor [out 4, in 8], expert 2: columns 16..23 of the merged entry on every row.
    const w = (await imp.weightsFor(ref('model.layers.0.mlp.experts.2.down_proj.weight', [4, 8])))!;
    for (let r = 0; r < 4; r++) for (let j = 0; j < 8; j++) expect(w[r * 8 + j]).toBe(exps[16 + j]);
    // Merged 3-D tensor [3 experts, 4, 8]: expert e's columns on its rows.
    const w3 = (await imp.weightsFor(ref('blk.0.ffn_down_exps.weight', [3, 4, 8])))!;
    for (let e = 0; e < 3; e++) for (let r = 0; r < 4; r++) for (let j = 0; j < 8; j++) expect(w3[(e * 4 + r) * 8 + j]).toBe(exps[e * 8 + j]);
    // A plain 2-D tensor under its HF name.
    const wq = (await imp.weightsFor(ref('model.layers.0.self_attn.q_proj.weight', [5, 8])))!;
    expect(Array.from(wq.subarray(32, 40))).toEqual(Array.from(ramp(8, 1)));
    // Mapping rules apply first.
    const mapped = await Importance.openImatrix(p, ['^enc\\.q$=>blk.0.attn_q.weight']);
    expect(mapped.nameFor('enc.q')).toBe('blk.0.attn_q.weight');
    mapped.close();
    expect(imp.nameFor('conv.weight')).toBeUndefined();
    await expect(imp.weightsFor(ref('model.layers.0.self_attn.q_proj.weight', [5, 9]))).rejects.toMatchObject({ code: 'E_FORMAT', file: p, tensor: 'model.layers.0.self_attn.q_proj.weight' });
    imp.close();
  });
});

describe('quantize --imatrix', () => {
  const rows = 24, cols = 64;
  const input = join(tmp.dir, 'hf.safetensors');
  const names = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.down_proj.weight'];
  const ws = names.map((_, i) => Float32Array.from(gaussian(rows * cols, 10 + i), (v) => Math.fround(v * 0.05)));
  writeSafetensors(input, names.map((name, i) => ({ name, dtype: 'F32', shape: [rows, cols], data: encode(ws[i], 'F32') })));
  const r = mulberry32(4);
  const cols0 = Float32Array.from({ length: cols }, () => Math.fround(r() < 0.1 ? 20 + 50 * r() : r()));
  const cols1 = Float32Array.from({ length: cols }, () => Math.fround(r() * 3));
  const gguf = join(tmp.dir, 'm.imatrix.gguf');
  writeGgufImatrix(gguf, [
    { name: 'blk.0.attn_q.weight', ne0: cols, sums: Float32Array.from(cols0, (v) => v * 100), counts: [100] },
    { name: 'blk.0.ffn_down.weight', ne0: cols, sums: Float32Array.from(cols1, (v) => v * 100), counts: [100] },
  ]);
  const dat = join(tmp.dir, 'm.imatrix.dat');
  // The GGUF file's means, in_sum2 / counts, exactly.
  const mean = (c: Float32Array) => Float32Array.from(c, (v) => Math.fround(Math.fround(v * 100) / 100));
  writeDat(dat, [{ name: 'blk.0.attn_q.weight', means: mean(cols0), ncall: 1 }, { name: 'blk.0.ffn_down.weight', means: mean(cols1), ncall: 1 }]);
  // The same importance, written out per element.
  const explicit = join(tmp.dir, 'explicit.safetensors');
  const bcast = (c: Float32Array) => Float32Array.from({ length: rows * cols }, (_, i) => mean(c)[i % cols]);
  writeSafetensors(explicit, names.map((name, i) => ({ name, dtype: 'F32', shape: [rows, cols], data: encode(bcast(i ? cols1 : cols0), 'F32') })));

  const tensorsOf = (f: string) => {
    const s = readSafetensors(f);
    return Object.fromEntries(Object.keys(s.header).map((k) => [k, Buffer.from(s.tensor(k)).toString('hex')]));
  };

  it('hessian-kmeans with an imatrix (GGUF or .dat) writes what the explicit broadcast importance writes', async () => {
    const opts = { method: 'hessian-kmeans' as const, bits: 3, granularity: 'tensor' as const, minElements: 1 };
    const a = await quantize(input, join(tmp.dir, 'qa.safetensors'), { ...opts, imatrix: gguf });
    await quantize(input, join(tmp.dir, 'qb.safetensors'), { ...opts, importance: explicit });
    await quantize(input, join(tmp.dir, 'qc.safetensors'), { ...opts, imatrix: dat });
    expect(tensorsOf(join(tmp.dir, 'qa.safetensors'))).toEqual(tensorsOf(join(tmp.dir, 'qb.safetensors')));
    expect(tensorsOf(join(tmp.dir, 'qc.safetensors'))).toEqual(tensorsOf(join(tmp.dir, 'qb.safetensors')));
    expect((a.warnings ?? []).filter((w) => /importance/.test(w))).toEqual([]);
  });

  it('refuses imatrix with importance, and a missing file', async () => {
    await expect(quantize(input, join(tmp.dir, 'x.safetensors'), { method: 'hessian-kmeans', imatrix: gguf, importance: explicit, minElements: 1 })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(quantize(input, join(tmp.dir, 'x.safetensors'), { imatrix: join(tmp.dir, 'nope.dat'), minElements: 1 })).rejects.toMatchObject({ code: 'E_IO' });
    expect(existsSync(join(tmp.dir, 'x.safetensors'))).toBe(false);
  });

  it.skipIf(!existsSync(CLI))('CLI: --imatrix runs; a malformed imatrix is one line naming the file, exit non-zero', () => {
    const ok = spawnSync(process.execPath, [CLI, 'quantize', input, '-o', join(tmp.dir, 'cli.safetensors'), '--method', 'hessian-kmeans', '--imatrix', gguf, '--min-elements', '1', '--quiet'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    const bad = join(tmp.dir, 'cli-bad.dat');
    writeFileSync(bad, Buffer.from([1, 0, 0, 0, 3, 0, 0, 0, 97, 98]));
    const c = spawnSync(process.execPath, [CLI, 'export-gguf', input, '-o', join(tmp.dir, 'cli.gguf'), '--type', 'Q4_K', '--imatrix', bad, '--no-compare'], { encoding: 'utf8' });
    expect(c.status).not.toBe(0);
    expect(c.stderr.trim().split('\n')).toHaveLength(1);
    expect(c.stderr).toMatch(/E_FORMAT.*cli-bad\.dat/);
  });
});

describe('malformed files are typed errors naming the file', () => {
  const cases: [string, () => void, string][] = [
    ['an empty file', () => writeFileSync(join(tmp.dir, 'm1'), Buffer.alloc(0)), 'E_FORMAT'],
    ['zero entries', () => writeFileSync(join(tmp.dir, 'm2'), Buffer.from([0, 0, 0, 0])), 'E_FORMAT'],
    ['a truncated entry', () => { writeDat(join(tmp.dir, 'm3'), [{ name: 'w', means: ramp(10, 1), ncall: 1 }], null); const b = readFileSync(join(tmp.dir, 'm3')); writeFileSync(join(tmp.dir, 'm3'), b.subarray(0, b.length - 5)); }, 'E_FORMAT'],
    ['nval 0', () => { const b = Buffer.alloc(4 + 4 + 1 + 8); b.writeInt32LE(1, 0); b.writeInt32LE(1, 4); b.write('w', 8); b.writeInt32LE(1, 9); b.writeInt32LE(0, 13); writeFileSync(join(tmp.dir, 'm4'), b); }, 'E_FORMAT'],
    ['trailing bytes', () => { writeDat(join(tmp.dir, 'm5'), [{ name: 'w', means: ramp(4, 1), ncall: 1 }]); writeFileSync(join(tmp.dir, 'm5'), Buffer.concat([readFileSync(join(tmp.dir, 'm5')), Buffer.from([1, 2, 3])])); }, 'E_FORMAT'],
    ['GGUF in_sum2 without counts', () => writeGgufImatrix(join(tmp.dir, 'm6'), [{ name: 'w', ne0: 4, sums: ramp(4, 1), counts: [1] }], { skipCounts: true }), 'E_FORMAT'],
    ['GGUF counts of the wrong size', () => writeGgufImatrix(join(tmp.dir, 'm7'), [{ name: 'w', ne0: 4, sums: ramp(4, 1), counts: [1] }], { badCounts: true }), 'E_FORMAT'],
    ['GGUF of a model, not an imatrix', () => writeGgufImatrix(join(tmp.dir, 'm8'), [{ name: 'w', ne0: 4, sums: ramp(4, 1), counts: [1] }], { type: 'model' }), 'E_FORMAT'],
    ['GGUF with F16 sums', () => writeGgufImatrix(join(tmp.dir, 'm9'), [{ name: 'w', ne0: 4, sums: ramp(4, 1), counts: [1] }], { tensorType: 1 }), 'E_FORMAT'],
  ];
  it.each(cases.map((c, i) => [c[0], i] as const))('%s', (_, i) => {
    const [, write, code] = cases[i];
    write();
    const p = join(tmp.dir, `m${i + 1}`);
    let err: unknown;
    try {
      Imatrix.open(p).close();
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code, file: p });
  });

  it('a negative mean is E_NONFINITE naming the tensor', async () => {
    const p = join(tmp.dir, 'neg.dat');
    const v = ramp(8, 1);
    v[3] = -1;
    writeDat(p, [{ name: 'blk.0.attn_q.weight', means: v, ncall: 1 }]);
    const imp = await Importance.openImatrix(p, []);
    await expect(imp.weightsFor({ name: 'blk.0.attn_q.weight', shape: [2, 8], numel: 16, dtype: 'F32', byteLength: 64, file: '' })).rejects.toMatchObject({ code: 'E_NONFINITE' });
    imp.close();
  });
});
