#!/usr/bin/env node
// Quantization Networks on an MNIST MLP (784 → hidden → 10): train it in TensorFlow.js (wasm backend), then
// quantize both weight matrices binary {-1, 1} and ternary {-1, 0, 1}, one quantizer per tensor (layer-wise, as the
// paper), four ways, and print the test accuracies:
//   k-means            exact 1-D k-means with 2 / 3 levels (weightpress solve), nearest level;
//   qn fit (weights)   weightpress quantize --method qn (post-training fit, weight error);
//   qn fit (calib.)    the same with --calibration (layer-output error, latent weights learned);
//   qn end-to-end      weightpress/tfjs: QnDense layers, trainQn (weights phase), fromTfjs → decode.
// Data, safetensors I/O, Gram matrices and the accuracy of a decoded checkpoint come from bench/mnist/mlp.mjs.
//
//   npm run build:ts && node examples/qn-mnist/run.mjs [--hidden 256] [--epochs 8] [--qn-epochs 6]
//       [--fit-epochs 20] [--levels binary,ternary] [--out DIR] [--json]
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { decode, quantize, solve, qnParseLevels } from '../../dist/index.js';
import { QnDense, fromTfjs, qnLayers, trainQn } from '../../dist/tfjs.js';
import { accuracy, grams, loadMnist, loadSafetensors, saveGrams, saveSafetensors } from '../../bench/mnist/mlp.mjs';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '256' },
    epochs: { type: 'string', default: '8' },
    'qn-epochs': { type: 'string', default: '6' },
    'fit-epochs': { type: 'string', default: '20' },
    levels: { type: 'string', default: 'binary,ternary' },
    lr: { type: 'string', default: '0.001' },
    'qn-lr': { type: 'string', default: '0.0005' },
    't-start': { type: 'string', default: '10' },
    't-slope': { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const num = (k) => {
  const v = Number(values[k]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: ${values[k]} is not a non-negative number`);
  return v;
};
const H = num('hidden'), EPOCHS = num('epochs'), QN_EPOCHS = num('qn-epochs'), FIT_EPOCHS = num('fit-epochs');
const SEED = num('seed');
const levelSets = values.levels.split(',').map((s) => [s, qnParseLevels(s)]);
const log = (s) => console.error(s);

await tf.setBackend('wasm');
await tf.ready();
const dir = values.out ?? mkdtempSync(join(tmpdir(), 'qn-mnist-'));
const keepDir = values.out !== undefined;

try {
  let t = performance.now();
  const data = loadMnist({ seed: SEED });
  const X = tf.tensor2d(concat(data.trainX), [data.trainX.length, 784]);
  const Y = tf.oneHot(tf.tensor1d(Array.from(data.trainY), 'int32'), 10);
  const Xt = tf.tensor2d(concat(data.testX), [data.testX.length, 784]);
  log(`data: ${data.trainX.length} training, ${data.testX.length} test images (${sec(t)} s)`);

  // ---- full precision, in tfjs (QnDense layers in phase 'float' are plain dense layers)
  const model = mlpModel(H, [-1, 1]);
  model.compile({ optimizer: tf.train.adam(num('lr')), loss: 'categoricalCrossentropy' });
  const epochTimes = [];
  t = performance.now();
  // One fit call per epoch on a seeded permutation (model.fit's own shuffle is Math.random), so runs repeat.
  for (let e = 0; e < EPOCHS; e++) {
    const t0 = performance.now();
    const perm = tf.tidy(() => tf.topk(tf.randomUniform([X.shape[0]], 0, 1, 'float32', SEED * 1000 + e), X.shape[0]).indices);
    const [Xs, Ys] = [tf.gather(X, perm), tf.gather(Y, perm)];
    const h = await model.fit(Xs, Ys, { epochs: 1, batchSize: 64, shuffle: false, verbose: 0 });
    tf.dispose([perm, Xs, Ys]);
    epochTimes.push(sec(t0));
    log(`  float epoch ${e + 1}/${EPOCHS}: loss ${h.history.loss[0].toFixed(4)} (${sec(t0)} s)`);
  }
  const fpPath = join(dir, 'mlp.safetensors');
  const fp = toMlp(model);
  saveSafetensors(fpPath, fp);
  const accFp = accuracy(fp, data.testX, data.testY);
  const accFpTf = tfAccuracy(model, Xt, data.testY);
  if (Math.abs(accFp - accFpTf) > 2 / data.testX.length) throw new Error(`tfjs accuracy ${accFpTf} and the exported model's ${accFp} differ`);
  log(`full precision: ${pct(accFp)} (trained in ${sec(t)} s)`);
  t = performance.now();
  const calPath = join(dir, 'calibration.safetensors');
  saveGrams(calPath, grams(fp, data.trainX));
  log(`calibration Gram matrices (${sec(t)} s)`);

  const rows = [];
  for (const [name, levels] of levelSets) {
    const row = { levels: name };
    // k-means with |Y| levels per tensor (exact 1-D k-means), each weight to its nearest level
    t = performance.now();
    const km = structuredClone(fp);
    for (const layer of [km.fc1, km.fc2]) {
      const c = await solve('kmeans-optimal', Float64Array.from(layer.weight), { k: levels.length });
      layer.weight = Float32Array.from(layer.weight, (w) => nearest(c, w));
    }
    row.kmeans = accuracy(km, data.testX, data.testY);
    row.kmeansS = sec(t);
    // post-training fit through weightpress quantize (both objectives), then decode
    for (const [key, extra] of [['fitWeights', {}], ['fitCalibrated', { calibration: calPath }]]) {
      t = performance.now();
      const q = join(dir, `${name}-${key}.safetensors`), d = join(dir, `${name}-${key}.dense.safetensors`);
      await quantize(fpPath, q, { method: 'qn', levels: name, granularity: 'tensor', minElements: 0, epochs: FIT_EPOCHS, ...extra });
      await decode(q, d);
      row[key] = accuracy(loadSafetensors(d), data.testX, data.testY);
      row[`${key}S`] = sec(t);
    }
    // end to end: the float model's weights in QnDense layers, the weights phase of the schedule, then fromTfjs
    t = performance.now();
    const qm = mlpModel(H, levels);
    qnLayers(qm).forEach((l, i) => copyInto(l, qnLayers(model)[i]));
    for (const l of qnLayers(qm)) l.setPhase('weights'); // with --qn-epochs 0: the paper's initialisation, untrained
    const qnTimes = [];
    await trainQn(qm, X, Y, {
      epochs: { weights: QN_EPOCHS }, tStart: num('t-start'), tSlope: num('t-slope'), batchSize: 64, seed: SEED,
      optimizer: () => tf.train.adam(num('qn-lr')),
      onEpoch: (e) => { qnTimes.push(e.seconds); log(`  ${name} end-to-end epoch ${e.epoch + 1}/${QN_EPOCHS}: T ${e.weightTemperature}, loss ${e.loss.toFixed(4)} (${e.seconds.toFixed(1)} s)`); },
    });
    const q = join(dir, `${name}-e2e.safetensors`), d = join(dir, `${name}-e2e.dense.safetensors`);
    await fromTfjs(qm, q, { layout: 'torch' });
    await decode(q, d);
    row.endToEnd = accuracy(loadSafetensors(d), data.testX, data.testY);
    const tfAcc = tfAccuracy(qm, Xt, data.testY);
    if (Math.abs(row.endToEnd - tfAcc) > 2 / data.testX.length) throw new Error(`tfjs (hard) accuracy ${tfAcc} and the decoded checkpoint's ${row.endToEnd} differ`);
    row.endToEndS = sec(t);
    row.qnEpochS = mean(qnTimes);
    rows.push(row);
    log(`${name}: k-means ${pct(row.kmeans)}, fit ${pct(row.fitWeights)}, calibrated ${pct(row.fitCalibrated)}, end-to-end ${pct(row.endToEnd)}`);
  }

  const result = { fullPrecision: accFp, floatEpochS: mean(epochTimes), hidden: H, epochs: EPOCHS, qnEpochs: QN_EPOCHS, fitEpochs: FIT_EPOCHS, backend: tf.getBackend(), test: data.testX.length, rows };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`MNIST MLP 784 → ${H} → 10, ${data.trainX.length} training / ${data.testX.length} test images; both weight matrices quantized, one quantizer per tensor`);
    console.log(`full precision: ${pct(accFp)}   (tfjs ${tf.getBackend()}: ${mean(epochTimes).toFixed(1)} s per float epoch, ${EPOCHS} epochs)`);
    console.log('| levels | k-means | qn fit (weights) | qn fit (calibration) | qn end-to-end | e2e s/epoch |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.levels} | ${pct(r.kmeans)} | ${pct(r.fitWeights)} (${r.fitWeightsS} s) | ${pct(r.fitCalibrated)} (${r.fitCalibratedS} s) | ${pct(r.endToEnd)} (${QN_EPOCHS} epochs) | ${r.qnEpochS.toFixed(1)} |`);
  }
} finally {
  if (!keepDir) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------- helpers

/** 784 → hidden (ReLU) → 10 (softmax) with QnDense layers (phase float until trainQn). */
function mlpModel(hidden, levels) {
  const m = tf.sequential();
  m.add(new QnDense({ name: 'fc1', units: hidden, levels, inputShape: [784], kernel: glorot([784, hidden], 11) }));
  m.add(new QnDense({ name: 'fc2', units: 10, levels, activation: 'linear', kernel: glorot([hidden, 10], 12) }));
  m.add(tf.layers.softmax());
  return m;
}

function glorot(shape, seed) {
  const lim = Math.sqrt(6 / (shape[0] + shape[1]));
  return tf.randomUniform(shape, -lim, lim, 'float32', seed);
}

/** The float model's kernel and bias into another model's layer (the weight function is re-initialised from it). */
function copyInto(dst, src) {
  dst.setPhase('float');
  const [k, b] = [src.kernel(), src.bias()];
  dst.weights.find((w) => w.originalName.endsWith('/kernel')).write(k);
  dst.weights.find((w) => w.originalName.endsWith('/bias')).write(b);
  dst.initWeightFunction();
}

/** The tfjs model as bench/mnist's MLP object (nn.Linear layout: weight [out, in]). */
function toMlp(m) {
  const [l1, l2] = qnLayers(m);
  const w = (l) => Float32Array.from(tf.transpose(l.kernel()).dataSync());
  return { hidden: l1.kernel().shape[1], fc1: { weight: w(l1), bias: Float32Array.from(l1.bias().dataSync()) }, fc2: { weight: w(l2), bias: Float32Array.from(l2.bias().dataSync()) } };
}

function tfAccuracy(m, Xt, labels) {
  const p = tf.tidy(() => tf.argMax(m.predict(Xt), 1).dataSync());
  let c = 0;
  for (let i = 0; i < labels.length; i++) if (p[i] === labels[i]) c++;
  return c / labels.length;
}

function nearest(levels, w) {
  let best = levels[0];
  for (const c of levels) if (Math.abs(c - w) < Math.abs(best - w)) best = c;
  return best;
}

function concat(rows) {
  const out = new Float32Array(rows.length * 784);
  rows.forEach((r, i) => out.set(r, i * 784));
  return out;
}

function sec(t) { return +((performance.now() - t) / 1000).toFixed(1); }
function mean(a) { return a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0; }
function pct(a) { return `${(a * 100).toFixed(2)} %`; }
