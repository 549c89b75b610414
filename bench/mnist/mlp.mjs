// A small, dependency-free MNIST MLP (784 → hidden → 10, ReLU, softmax cross-entropy) for quantization benchmarks:
// seeded data split and training in plain Float32Array loops, a safetensors reader/writer, test accuracy, and the
// layer-input Gram matrices H = Σ x xᵀ that `--calibration` reads (docs/CALIBRATION.md).
//
// An MLP is { hidden, fc1: { weight, bias }, fc2: { weight, bias } } with Float32Array tensors in PyTorch's
// nn.Linear layout: fc1.weight [hidden, 784], fc1.bias [hidden], fc2.weight [10, hidden], fc2.bias [10], row-major.
// A data set is X: Float32Array[] (784 values in [0, 1] per image) and Y: Uint8Array (the digit, 0–9).

import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';

export const INPUTS = 784;
export const CLASSES = 10;
export const TRAIN_SIZE = 8000;
export const TEST_SIZE = 2000;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toSet(samples) {
  const X = new Array(samples.length);
  const Y = new Uint8Array(samples.length);
  for (let n = 0; n < samples.length; n++) {
    X[n] = Float32Array.from(samples[n].input);
    const o = samples[n].output;
    let k = 0;
    for (let c = 1; c < CLASSES; c++) if (o[c] > o[k]) k = c;
    Y[n] = k;
  }
  return { X, Y };
}

/**
 * The `mnist` package's split set(8000, 2000): per digit the first 800 images for training and the next 200 for
 * testing (digits with fewer than 1000 images give fewer, so the test set holds 1756 images). The package shuffles
 * with Math.random; it is swapped for a seeded PRNG during the call, so the order is the same on every run.
 */
export function loadMnist({ seed = 1 } = {}) {
  const mnist = createRequire(import.meta.url)('mnist');
  const saved = Math.random;
  let sets;
  try {
    Math.random = rng(seed);
    sets = mnist.set(TRAIN_SIZE, TEST_SIZE);
  } finally {
    Math.random = saved;
  }
  const train = toSet(sets.training);
  const test = toSet(sets.test);
  return { trainX: train.X, trainY: train.Y, testX: test.X, testY: test.Y };
}

/** Indices and values of the non-zero inputs of each row (MNIST images are ~80 % zeros). */
function sparseRows(X) {
  return X.map((x) => {
    const idx = [];
    for (let i = 0; i < x.length; i++) if (x[i] !== 0) idx.push(i);
    const val = new Float32Array(idx.length);
    for (let k = 0; k < idx.length; k++) val[k] = x[idx[k]];
    return { idx: Int32Array.from(idx), val };
  });
}

function labelOf(y) {
  if (typeof y === 'number') return y;
  let k = 0; // a one-hot row
  for (let c = 1; c < y.length; c++) if (y[c] > y[k]) k = c;
  return k;
}

/**
 * Train a float32 MLP 784 → hidden → 10 with seeded minibatch AdamW (He-uniform init, per-epoch seeded shuffle,
 * learning rate decayed by half-cosine to 0, decoupled weight decay on the weights, not the biases). Deterministic for a given seed and data.
 * Inner loops use fc1's weight transposed ([784, hidden]) so each non-zero pixel touches one contiguous row.
 */
export function train({
  hidden = 256, epochs = 8, seed = 1, lr = 2e-3, batch = 64, weightDecay = 0.01, data = loadMnist(), log = null,
} = {}) {
  const { trainX, trainY } = data;
  const H = hidden, I = INPUTS, C = CLASSES, N = trainX.length;
  const rand = rng(seed);
  const rows = sparseRows(trainX);

  // parameters: fc1 transposed (w1t [I, H]), fc2 in [C, H]
  const w1t = new Float32Array(I * H), b1 = new Float32Array(H);
  const w2 = new Float32Array(C * H), b2 = new Float32Array(C);
  const lim1 = Math.sqrt(6 / I), lim2 = Math.sqrt(6 / H);
  for (let j = 0; j < H; j++) for (let i = 0; i < I; i++) w1t[i * H + j] = (2 * rand() - 1) * lim1;
  for (let k = 0; k < C * H; k++) w2[k] = (2 * rand() - 1) * lim2;

  const params = [w1t, b1, w2, b2];
  const grads = params.map((p) => new Float32Array(p.length));
  const m = params.map((p) => new Float32Array(p.length));
  const v = params.map((p) => new Float32Array(p.length));
  const [gw1t, gb1, gw2, gb2] = grads;
  const beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

  const z1 = new Float32Array(H), h = new Float32Array(H), dh = new Float32Array(H);
  const z2 = new Float64Array(C), d2 = new Float64Array(C);
  const order = new Int32Array(N);
  for (let n = 0; n < N; n++) order[n] = n;
  const steps = epochs * Math.ceil(N / batch);
  let t = 0;

  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let n = N - 1; n > 0; n--) { // Fisher–Yates, seeded
      const r = Math.floor(rand() * (n + 1));
      const tmp = order[n]; order[n] = order[r]; order[r] = tmp;
    }
    let loss = 0, correct = 0;
    for (let start = 0; start < N; start += batch) {
      const end = Math.min(N, start + batch);
      for (const g of grads) g.fill(0);
      for (let s = start; s < end; s++) {
        const n = order[s];
        const { idx, val } = rows[n];
        const y = trainY[n];
        // forward fc1 (sparse input)
        z1.set(b1);
        for (let q = 0; q < idx.length; q++) {
          const xi = val[q], off = idx[q] * H;
          for (let j = 0; j < H; j++) z1[j] += xi * w1t[off + j];
        }
        for (let j = 0; j < H; j++) h[j] = z1[j] > 0 ? z1[j] : 0;
        // forward fc2 + softmax
        let mx = -Infinity;
        for (let k = 0; k < C; k++) {
          let acc = b2[k];
          const off = k * H;
          for (let j = 0; j < H; j++) acc += w2[off + j] * h[j];
          z2[k] = acc;
          if (acc > mx) mx = acc;
        }
        let sum = 0;
        for (let k = 0; k < C; k++) { z2[k] = Math.exp(z2[k] - mx); sum += z2[k]; }
        let best = 0;
        for (let k = 0; k < C; k++) {
          const p = z2[k] / sum;
          d2[k] = p - (k === y ? 1 : 0);
          if (z2[k] > z2[best]) best = k;
        }
        loss -= Math.log(Math.max(z2[y] / sum, 1e-30));
        if (best === y) correct++;
        // backward fc2
        dh.fill(0);
        for (let k = 0; k < C; k++) {
          const dk = d2[k], off = k * H;
          gb2[k] += dk;
          for (let j = 0; j < H; j++) {
            gw2[off + j] += dk * h[j];
            dh[j] += dk * w2[off + j];
          }
        }
        for (let j = 0; j < H; j++) if (z1[j] <= 0) dh[j] = 0;
        // backward fc1 (sparse input)
        for (let j = 0; j < H; j++) gb1[j] += dh[j];
        for (let q = 0; q < idx.length; q++) {
          const xi = val[q], off = idx[q] * H;
          for (let j = 0; j < H; j++) gw1t[off + j] += xi * dh[j];
        }
      }
      // Adam step on the batch mean
      t++;
      const rate = lr * 0.5 * (1 + Math.cos(Math.PI * (t - 1) / steps));
      const inv = 1 / (end - start);
      const c1 = 1 / (1 - Math.pow(beta1, t)), c2 = 1 / (1 - Math.pow(beta2, t));
      for (let p = 0; p < params.length; p++) {
        const w = params[p], g = grads[p], mp = m[p], vp = v[p];
        for (let k = 0; k < w.length; k++) {
          const gk = g[k] * inv;
          const mk = (mp[k] = beta1 * mp[k] + (1 - beta1) * gk);
          const vk = (vp[k] = beta2 * vp[k] + (1 - beta2) * gk * gk);
          w[k] -= (rate * mk * c1) / (Math.sqrt(vk * c2) + eps) + (p === 0 || p === 2 ? rate * weightDecay * w[k] : 0);
        }
      }
    }
    if (log) log(`epoch ${epoch + 1}/${epochs}: loss ${(loss / N).toFixed(4)}, train accuracy ${(correct / N * 100).toFixed(2)} %`);
  }

  const w1 = new Float32Array(H * I); // back to [hidden, 784]
  for (let i = 0; i < I; i++) for (let j = 0; j < H; j++) w1[j * I + i] = w1t[i * H + j];
  return { hidden: H, fc1: { weight: w1, bias: b1 }, fc2: { weight: w2, bias: b2 } };
}

/** fc1's weight transposed to [784, hidden], so that each non-zero input pixel reads one contiguous row. */
function transposeFc1(mlp) {
  const H = mlp.hidden, I = INPUTS, w1 = mlp.fc1.weight, w1t = new Float32Array(I * H);
  for (let j = 0; j < H; j++) for (let i = 0; i < I; i++) w1t[i * H + j] = w1[j * I + i];
  return w1t;
}

/** Hidden activations relu(W1 x + b1) of one input, summed over its non-zero pixels (w1t from transposeFc1). */
function hiddenOf(mlp, w1t, x, out) {
  const H = mlp.hidden;
  out.set(mlp.fc1.bias);
  for (let i = 0; i < INPUTS; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const off = i * H;
    for (let j = 0; j < H; j++) out[j] += xi * w1t[off + j];
  }
  for (let j = 0; j < H; j++) if (!(out[j] > 0)) out[j] = 0;
  return out;
}

/** The predicted digit of each input. */
export function predict(mlp, X) {
  const H = mlp.hidden, w2 = mlp.fc2.weight, b2 = mlp.fc2.bias, w1t = transposeFc1(mlp);
  const h = new Float32Array(H), out = new Uint8Array(X.length);
  for (let n = 0; n < X.length; n++) {
    hiddenOf(mlp, w1t, X[n], h);
    let best = 0, bestV = -Infinity;
    for (let k = 0; k < CLASSES; k++) {
      let acc = b2[k];
      const off = k * H;
      for (let j = 0; j < H; j++) acc += w2[off + j] * h[j];
      if (acc > bestV) { bestV = acc; best = k; }
    }
    out[n] = best;
  }
  return out;
}

/** Fraction of X classified as Y (labels, or one-hot rows), in [0, 1]. */
export function accuracy(mlp, X, Y) {
  const p = predict(mlp, X);
  let correct = 0;
  for (let n = 0; n < X.length; n++) if (p[n] === labelOf(Y[n])) correct++;
  return correct / X.length;
}

/** Σ x xᵀ over rows given sparsely ({idx, val}), accumulated in float64 on the upper triangle, mirrored, as F32. */
function gramSparse(rows, n) {
  const acc = new Float64Array(n * n);
  for (const { idx, val } of rows) {
    for (let a = 0; a < idx.length; a++) {
      const va = val[a], off = idx[a] * n;
      for (let b = a; b < idx.length; b++) acc[off + idx[b]] += va * val[b];
    }
  }
  const g = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    g[i * n + i] = acc[i * n + i];
    for (let j = i + 1; j < n; j++) g[i * n + j] = g[j * n + i] = acc[i * n + j];
  }
  return g;
}

/**
 * The layer-input Gram matrices H = Σ x xᵀ over the inputs X: fc1's inputs (the images, [784, 784]) and fc2's
 * inputs (the hidden activations after ReLU, [hidden, hidden]). Exactly symmetric, named by weight.
 */
export function grams(mlp, X) {
  const H = mlp.hidden;
  const h = new Float32Array(H), w1t = transposeFc1(mlp);
  const hid = X.map((x) => {
    hiddenOf(mlp, w1t, x, h);
    const idx = [];
    for (let j = 0; j < H; j++) if (h[j] !== 0) idx.push(j);
    return { idx, val: Float32Array.from(idx, (j) => h[j]) };
  });
  return {
    'fc1.weight': { shape: [INPUTS, INPUTS], data: gramSparse(sparseRows(X), INPUTS) },
    'fc2.weight': { shape: [H, H], data: gramSparse(hid, H) },
  };
}

// ---------------------------------------------------------------------------------------------------- safetensors

/** Write { name: { shape, data: Float32Array } } as an F32 safetensors file (header padded to 8 bytes). */
export function writeSafetensorsF32(path, tensors, metadata) {
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`${name}: shape [${shape}] does not hold ${data.length} values`);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hbytes.length + offset);
  out.writeBigUInt64LE(BigInt(hbytes.length), 0);
  hbytes.copy(out, 8);
  let pos = 8 + hbytes.length;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
  for (const { data } of Object.values(tensors)) {
    const src = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    src.copy(out, pos);
    pos += data.byteLength;
  }
  writeFileSync(path, out);
}

function f16ToF32(u) {
  const s = u & 0x8000 ? -1 : 1, e = (u >> 10) & 0x1f, f = u & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Read every F32/F16/BF16/F64 tensor of a safetensors file as { name: { shape, dtype, data: Float32Array } }. */
export function readSafetensors(path) {
  const buf = readFileSync(path);
  if (buf.length < 8) throw new Error(`${path}: not a safetensors file (shorter than 8 bytes)`);
  const hlen = Number(buf.readBigUInt64LE(0));
  if (8 + hlen > buf.length) throw new Error(`${path}: header length ${hlen} past the end of the file`);
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8'));
  const base = 8 + hlen;
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: [b, e] } = info;
    const raw = buf.subarray(base + b, base + e);
    const count = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(count);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const width = { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
    if (!width) { out[name] = { shape, dtype, data: null }; continue; }
    if (raw.length !== count * width) throw new Error(`${path}: ${name} holds ${raw.length} bytes, not ${count} × ${dtype}`);
    if (dtype === 'F32') for (let k = 0; k < count; k++) data[k] = dv.getFloat32(4 * k, true);
    else if (dtype === 'F64') for (let k = 0; k < count; k++) data[k] = dv.getFloat64(8 * k, true);
    else if (dtype === 'F16') for (let k = 0; k < count; k++) data[k] = f16ToF32(dv.getUint16(2 * k, true));
    else {
      const u32 = new Uint32Array(1), f32 = new Float32Array(u32.buffer);
      for (let k = 0; k < count; k++) { u32[0] = dv.getUint16(2 * k, true) << 16; data[k] = f32[0]; }
    }
    out[name] = { shape, dtype, data };
  }
  return out;
}

/** Save an MLP as F32 safetensors: fc1.weight [hidden, 784], fc1.bias, fc2.weight [10, hidden], fc2.bias. */
export function saveSafetensors(path, mlp) {
  const H = mlp.hidden;
  writeSafetensorsF32(path, {
    'fc1.weight': { shape: [H, INPUTS], data: mlp.fc1.weight },
    'fc1.bias': { shape: [H], data: mlp.fc1.bias },
    'fc2.weight': { shape: [CLASSES, H], data: mlp.fc2.weight },
    'fc2.bias': { shape: [CLASSES], data: mlp.fc2.bias },
  });
}

/** Load an MLP from a dense safetensors file (F32, F16, BF16 or F64 tensors; read as F32). */
export function loadSafetensors(path) {
  const t = readSafetensors(path);
  const need = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'];
  for (const name of need) {
    if (!t[name]) {
      throw new Error(`${path}: no tensor ${name} (a weightpress-quantized file? decode it first: node dist/cli.js decode FILE -o dense.safetensors)`);
    }
    if (!t[name].data) {
      throw new Error(`${path}: ${name} is ${t[name].dtype}, not F32/F16/BF16 (a weightpress-quantized file? decode it first)`);
    }
  }
  const [H, I] = t['fc1.weight'].shape;
  const ok = t['fc1.weight'].shape.length === 2 && I === INPUTS
    && t['fc1.bias'].shape.join() === `${H}`
    && t['fc2.weight'].shape.join() === `${CLASSES},${H}`
    && t['fc2.bias'].shape.join() === `${CLASSES}`;
  if (!ok) throw new Error(`${path}: shapes ${need.map((n) => `${n} [${t[n].shape}]`).join(', ')} are not a 784 → hidden → 10 MLP`);
  return {
    hidden: H,
    fc1: { weight: t['fc1.weight'].data, bias: t['fc1.bias'].data },
    fc2: { weight: t['fc2.weight'].data, bias: t['fc2.bias'].data },
  };
}

/** Write grams(mlp, X) as the F32 calibration file --calibration reads (docs/CALIBRATION.md). */
export function saveGrams(path, g) {
  writeSafetensorsF32(path, g);
}
