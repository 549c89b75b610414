/**
 * Generates a synthetic Llama-shaped BF16 safetensors checkpoint, streamed tensor by tensor to disk (the header
 * first: every size is known up front; then each tensor in chunks of rows), seeded and deterministic.
 *
 *   npx tsx bench/gen-llm.ts [--out bench/data/llm-1g.bf16.safetensors] [--size 1GiB | --layers N]
 *                            [--hidden 2048] [--intermediate 5632] [--vocab 32000] [--seed 1] [--force] [--quick]
 *
 * Tensors (Llama / TinyLlama naming): model.embed_tokens.weight [vocab, hidden]; per layer
 * self_attn.{q,k,v,o}_proj.weight [hidden, hidden], mlp.{gate,up}_proj.weight [intermediate, hidden],
 * mlp.down_proj.weight [hidden, intermediate], input_layernorm.weight and post_attention_layernorm.weight
 * [hidden]; model.norm.weight [hidden]; lm_head.weight [vocab, hidden]. With --size the layer count is the
 * smallest that reaches the size (default 1 GiB: 8 layers at the default dimensions, 1.08 GB).
 *
 * Values of a weight matrix: Student-t with 3 to 6 degrees of freedom (per tensor; drawn by inverse CDF from a
 * table accurate to ~1e-4 relative out to tail probability 2^-31, see StudentTTable), times a per-row log-normal
 * scale, times 1/sqrt(fan-in); a few outlier input columns (4 + one per 1024 columns) are multiplied by 20.
 * Norm weights: 1 + small Gaussian noise. Each tensor draws from its own stream (seed, tensor index), so the
 * bytes do not depend on the chunk size.
 */
import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Rng, StudentTTable, f32ToBf16, fmtBytes, isMain } from './common.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OUT = join(BENCH_DIR, 'data', 'llm-1g.bf16.safetensors');

export interface LlmConfig {
  hidden: number;
  intermediate: number;
  vocab: number;
  layers: number;
  seed: number;
}

export interface TensorSpec {
  name: string;
  shape: number[];
  kind: 'matrix' | 'norm';
}

export const FULL_DIMS = { hidden: 2048, intermediate: 5632, vocab: 32000 };
/** Small dimensions for quick checks: 4 layers, about 33 MB. */
export const QUICK_DIMS = { hidden: 512, intermediate: 1408, vocab: 8192 };

export function tensorsOf(c: LlmConfig): TensorSpec[] {
  const { hidden: h, intermediate: f, vocab: v } = c;
  const t: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [v, h], kind: 'matrix' }];
  for (let l = 0; l < c.layers; ++l) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: `${p}input_layernorm.weight`, shape: [h], kind: 'norm' },
      { name: `${p}self_attn.q_proj.weight`, shape: [h, h], kind: 'matrix' },
      { name: `${p}self_attn.k_proj.weight`, shape: [h, h], kind: 'matrix' },
      { name: `${p}self_attn.v_proj.weight`, shape: [h, h], kind: 'matrix' },
      { name: `${p}self_attn.o_proj.weight`, shape: [h, h], kind: 'matrix' },
      { name: `${p}post_attention_layernorm.weight`, shape: [h], kind: 'norm' },
      { name: `${p}mlp.gate_proj.weight`, shape: [f, h], kind: 'matrix' },
      { name: `${p}mlp.up_proj.weight`, shape: [f, h], kind: 'matrix' },
      { name: `${p}mlp.down_proj.weight`, shape: [h, f], kind: 'matrix' },
    );
  }
  t.push({ name: 'model.norm.weight', shape: [h], kind: 'norm' }, { name: 'lm_head.weight', shape: [v, h], kind: 'matrix' });
  return t;
}

const numelOf = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Bytes of the data section (BF16). */
export function dataBytes(c: LlmConfig): number {
  return tensorsOf(c).reduce((a, t) => a + 2 * numelOf(t.shape), 0);
}

/** The smallest layer count whose file reaches `bytes`. */
export function layersFor(dims: Omit<LlmConfig, 'layers' | 'seed'>, bytes: number): number {
  const base = dataBytes({ ...dims, layers: 0, seed: 0 });
  const per = dataBytes({ ...dims, layers: 1, seed: 0 }) - base;
  return Math.max(1, Math.ceil((bytes - base) / per));
}

export function headerOf(c: LlmConfig): { header: Buffer; tensors: (TensorSpec & { begin: number; end: number })[] } {
  const json: Record<string, unknown> = {
    __metadata__: { format: 'pt', generator: 'weightpress bench/gen-llm.ts', config: JSON.stringify(c) },
  };
  let off = 0;
  const tensors = tensorsOf(c).map((t) => {
    const begin = off;
    off += 2 * numelOf(t.shape);
    json[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [begin, off] };
    return { ...t, begin, end: off };
  });
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8); // the data section starts 8-byte aligned
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, tensors };
}

export interface GenerateResult {
  path: string;
  bytes: number;
  tensors: number;
  largestTensor: { name: string; bytes: number };
  seconds: number;
  config: LlmConfig;
}

/** Writes the checkpoint to `out` (through out.tmp, renamed at the end). */
export function generate(c: LlmConfig, out: string, log: (s: string) => void = () => {}): GenerateResult {
  const t0 = performance.now();
  const path = resolve(out);
  mkdirSync(dirname(path), { recursive: true });
  const { header, tensors } = headerOf(c);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  let written = 0;
  const write = (b: Uint8Array) => {
    let o = 0;
    while (o < b.length) o += writeSync(fd, b, o, b.length - o);
    written += b.length;
  };
  try {
    write(header);
    // Scratch for one chunk of rows: F32 values, their bits, and the BF16 output. ~4M elements at most.
    const maxCols = Math.max(...tensors.map((t) => t.shape[t.shape.length - 1]));
    const chunkRows = Math.max(1, Math.floor((4 << 20) / maxCols));
    const f32 = new Float32Array(chunkRows * maxCols);
    const bits = new Uint32Array(f32.buffer);
    const bf16 = new Uint16Array(chunkRows * maxCols);
    const bytes = new Uint8Array(bf16.buffer);
    const words = new Uint32Array(maxCols);
    const iwords = new Int32Array(words.buffer);
    let done = 0;
    const total = tensors.reduce((a, t) => a + t.end - t.begin, 0);
    let lastLog = performance.now();
    const tables = new Map<number, StudentTTable>();
    tensors.forEach((t, index) => {
      const r = new Rng(c.seed, index);
      if (t.kind === 'norm') {
        const n = t.shape[0];
        for (let i = 0; i < n; ++i) f32[i] = 1 + 0.05 * r.normal();
        f32ToBf16(bits, n, bf16);
        write(bytes.subarray(0, 2 * n));
        done += 2 * n;
        return;
      }
      const [rows, cols] = t.shape;
      const nu = 3 + (r.u32() % 4); // 3..6 degrees of freedom
      let dist = tables.get(nu);
      if (!dist) tables.set(nu, (dist = new StudentTTable(nu)));
      const base = 1 / Math.sqrt(cols);
      // Outlier input columns: a few, scaled x20.
      const colScale = new Float32Array(cols).fill(1);
      const nOut = 4 + Math.floor(cols / 1024);
      for (let i = 0; i < nOut; ++i) colScale[r.u32() % cols] = 20;
      const outCols = [...colScale.keys()].filter((j) => colScale[j] !== 1);
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const nr = Math.min(chunkRows, rows - r0);
        for (let i = 0; i < nr; ++i) {
          const s = base * Math.exp(0.5 * r.normal()); // per-row log-normal scale
          const o = i * cols;
          r.fillU32(words, cols);
          dist.fill(f32, o, cols, iwords, s);
          for (const j of outCols) f32[o + j] *= 20;
        }
        const n = nr * cols;
        f32ToBf16(bits, n, bf16);
        write(bytes.subarray(0, 2 * n));
        done += 2 * n;
        if (performance.now() - lastLog > 5000) {
          lastLog = performance.now();
          log(`  ${((100 * done) / total).toFixed(0)}% (${t.name})`);
        }
      }
    });
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  renameSync(tmp, path);
  let largest = tensors[0];
  for (const t of tensors) if (t.end - t.begin > largest.end - largest.begin) largest = t;
  return {
    path,
    bytes: written,
    tensors: tensors.length,
    largestTensor: { name: largest.name, bytes: largest.end - largest.begin },
    seconds: (performance.now() - t0) / 1000,
    config: c,
  };
}

/** Largest tensor of an existing file written by this generator (from its header). */
export function largestTensorOf(c: LlmConfig): { name: string; bytes: number } {
  let best = { name: '', bytes: 0 };
  for (const t of tensorsOf(c)) if (2 * numelOf(t.shape) > best.bytes) best = { name: t.name, bytes: 2 * numelOf(t.shape) };
  return best;
}

/** The file at `out` for config `c`: reused when its size matches, generated otherwise. */
export function ensure(c: LlmConfig, out: string, log: (s: string) => void): { path: string; generated?: GenerateResult } {
  const expected = headerOf(c).header.length + dataBytes(c);
  if (existsSync(out) && statSync(out).size === expected) return { path: resolve(out) };
  log(`generating ${out} (${fmtBytes(expected)}) ...`);
  const g = generate(c, out, log);
  log(`generated ${fmtBytes(g.bytes)} in ${g.seconds.toFixed(1)} s (${(g.bytes / 1e6 / g.seconds).toFixed(0)} MB/s)`);
  return { path: g.path, generated: g };
}

export function parseSize(s: string): number {
  const m = /^([0-9.]+)\s*([kmgt]?i?b?)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${JSON.stringify(s)} (examples: 1GiB, 1G, 500MB, 123456)`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const mult: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40 };
  if (!(unit in mult)) throw new Error(`bad size unit in ${JSON.stringify(s)}`);
  return Math.ceil(Number(m[1]) * mult[unit]);
}

function main(argv: string[]): void {
  const args = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split('=', 2);
    if (['force', 'quick', 'help'].includes(k)) flags.add(k);
    else args.set(k, v ?? argv[++i]);
  }
  if (flags.has('help')) {
    process.stdout.write(
      'usage: npx tsx bench/gen-llm.ts [--out FILE] [--size 1GiB | --layers N] [--hidden H] [--intermediate F] [--vocab V] [--seed S] [--force] [--quick]\n',
    );
    return;
  }
  const dims = flags.has('quick') ? { ...QUICK_DIMS } : { ...FULL_DIMS };
  for (const k of ['hidden', 'intermediate', 'vocab'] as const) if (args.has(k)) dims[k] = Number(args.get(k));
  const seed = Number(args.get('seed') ?? 1);
  const layers = args.has('layers') ? Number(args.get('layers')) : flags.has('quick') && !args.has('size') ? 4 : layersFor(dims, parseSize(args.get('size') ?? '1GiB'));
  const c: LlmConfig = { ...dims, layers, seed };
  for (const [k, v] of Object.entries(c)) if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new Error(`--${k} must be a positive integer, got ${v}`);
  const out = args.get('out') ?? (flags.has('quick') ? join(BENCH_DIR, 'data', 'llm-quick.bf16.safetensors') : DEFAULT_OUT);
  if (existsSync(out) && !flags.has('force')) {
    process.stderr.write(`${out} exists (use --force to overwrite)\n`);
    return;
  }
  const g = generate(c, out, (s) => process.stderr.write(s + '\n'));
  process.stdout.write(
    `${g.path}: ${fmtBytes(g.bytes)}, ${g.tensors} tensors, ${c.layers} layers (hidden ${c.hidden}, intermediate ${c.intermediate}, vocab ${c.vocab}, seed ${c.seed}); ` +
      `largest tensor ${g.largestTensor.name} ${fmtBytes(g.largestTensor.bytes)}; ${g.seconds.toFixed(1)} s (${(g.bytes / 1e6 / g.seconds).toFixed(0)} MB/s)\n`,
  );
}

if (isMain(import.meta.url)) main(process.argv.slice(2));
