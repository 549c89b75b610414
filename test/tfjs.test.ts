// weightpress/tfjs: the Quantization Networks op in TensorFlow.js (wasm backend) against the native kernel, and a
// few training steps through it on a tiny problem.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { Checkpoint } from '../lib/checkpoint.js';
import { decode, inspect } from '../lib/decode.js';
import { ArgumentError } from '../lib/errors.js';
import { qnBackward, qnForward, qnQuantizer } from '../lib/qn.js';
import { readScheme } from '../lib/shards.js';
import { QnConv2D, QnDense, QnQuantizer, fromTfjs, qnLayers, qnOp, trainQn } from '../lib/tfjs.js';
import { gaussian, mulberry32, readSafetensors, tempDir } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe('weightpress/tfjs', () => {
  const levels = [-4, -2, -1, 0, 1, 2, 4];
  // F32 parameters, as tfjs holds them.
  const fn = { levels, alpha: Math.fround(0.01), beta: 60, biases: [-2.7, -1.4, -0.05, 0.05, 1.6, 3.1].map(Math.fround) };
  const x = Float32Array.from(gaussian(600, 3), (v) => v * 0.03);

  it('the op gives the native forward (soft and hard) and the native gradients', () => {
    expect(tf.getBackend()).toBe('wasm');
    const args = [tf.tensor2d(x, [20, 30]), tf.scalar(fn.alpha), tf.scalar(fn.beta), tf.tensor1d(fn.biases)] as const;
    for (const T of [3, 30, Infinity]) {
      const y = qnOp(...args, { levels }, T);
      expect(y.shape).toEqual([20, 30]);
      expect(Array.from(y.dataSync())).toEqual(Array.from(qnForward(x, fn, { temperature: T })));
    }
    const gy = Float32Array.from(gaussian(600, 4));
    const grads = tf.grads((a: tf.Tensor, al: tf.Tensor, be: tf.Tensor, b: tf.Tensor) => qnOp(a, al as tf.Scalar, be as tf.Scalar, b as tf.Tensor1D, { levels }, 5).mul(tf.tensor2d(gy, [20, 30])).sum());
    const [gx, ga, gb, gbias] = grads([...args]);
    const want = qnBackward(x, gy, fn, { temperature: 5 });
    expect(Array.from(gx.dataSync())).toEqual(Array.from(want.x));
    expect(ga.dataSync()[0]).toBeCloseTo(want.alpha, 3);
    expect(gb.dataSync()[0] / want.beta).toBeCloseTo(1, 5);
    Array.from(gbias.dataSync()).forEach((v, i) => expect(v / want.biases[i]).toBeCloseTo(1, 5));
  });

  it('trains: a few Adam steps through the ternary quantized weights of a linear layer reduce the loss', () => {
    const r = mulberry32(8);
    const n = 64, d = 16;
    const X = tf.tensor2d(Float32Array.from({ length: n * d }, () => r() - 0.5), [n, d]);
    const wTrue = tf.tensor2d(Float32Array.from({ length: d }, (_, i) => [-0.2, 0, 0.2][i % 3]), [d, 1]);
    const Y = X.matMul(wTrue);
    const w = tf.variable(tf.tensor2d(Float32Array.from(gaussian(d, 9), (v) => 0.1 * v), [d, 1]));
    const q = new QnQuantizer({ levels: [-1, 0, 1] }, w);
    const opt = tf.train.adam(0.02);
    const loss = (T: number) => tf.losses.meanSquaredError(Y, X.matMul(q.apply(w, T))) as tf.Scalar;
    const before = loss(Infinity).dataSync()[0];
    for (let step = 0; step < 60; step++) opt.minimize(() => loss(5 + step), false, [w, ...q.variables()]);
    const after = loss(Infinity).dataSync()[0];
    expect(after).toBeLessThan(0.5 * before);
  });
});

// ------------------------------------------------------------------------------------------ layers, schedule, fromTfjs
describe('weightpress/tfjs layers', () => {
  const r = mulberry32(21);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);

  it('QnDense: inference uses the hard function, training the soft one at the weight temperature; float phase uses the kernel', () => {
    const kernel = tf.tensor2d(rand(6 * 5, 0.5), [6, 5]);
    const bias = tf.tensor1d(rand(5, 0.1));
    const layer = new QnDense({ units: 5, levels: [-1, 0, 1], kernel, bias, inputShape: [6] });
    const x = tf.tensor2d(rand(4 * 6, 1), [4, 6]);
    layer.apply(x); // builds
    const k = Float32Array.from(kernel.dataSync());
    const want = (wq: Float32Array) => tf.relu(tf.add(tf.matMul(x, tf.tensor2d(wq, [6, 5])), bias)).dataSync();
    // float phase: the plain layer
    expect(Array.from((layer.apply(x) as tf.Tensor).dataSync())).toEqual(Array.from(want(k)));
    layer.setPhase('weights');
    layer.weightTemperature = 7;
    const fn = layer.weightFunction();
    expect(Array.from((layer.apply(x) as tf.Tensor).dataSync())).toEqual(Array.from(want(qnForward(k, fn))));
    expect(Array.from((layer.apply(x, { training: true }) as tf.Tensor).dataSync())).toEqual(Array.from(want(qnForward(k, fn, { temperature: 7 }))));
    // the paper's initialisation (recomputed here): beta = 5p/(4q), alpha = 1/beta, biases ±0.05 for ternary
    const q = Math.max(...Array.from(k, Math.abs));
    expect(fn.beta).toBeCloseTo(5 / (4 * q), 5);
    expect(fn.alpha * fn.beta).toBeCloseTo(1, 5);
    expect(fn.biases.map((b) => Math.fround(b))).toEqual([-0.05, 0.05].map(Math.fround));
  });

  it('QnConv2D: output shape and values (hard kernel) for same/valid padding and strides', () => {
    for (const [padding, strides] of [['same', 1], ['valid', 2], ['same', 2]] as const) {
      const layer = new QnConv2D({ filters: 3, kernelSize: 3, strides, padding, levels: [-1, 1], activation: 'linear' });
      const x = tf.tensor4d(rand(2 * 7 * 6 * 2, 1), [2, 7, 6, 2]);
      layer.apply(x);
      layer.setPhase('weights');
      const y = layer.apply(x) as tf.Tensor;
      expect(y.shape).toEqual(layer.computeOutputShape(x.shape));
      const hard = tf.tensor4d(qnForward(Float32Array.from(layer.kernel().dataSync()), layer.weightFunction()), [3, 3, 2, 3]);
      const want = tf.add(tf.conv2d(x, hard, strides, padding), layer.bias()!);
      expect(Array.from(y.dataSync())).toEqual(Array.from(want.dataSync()));
      // binary: exactly two distinct kernel values, ±alpha
      expect(new Set(hard.dataSync()).size).toBe(2);
    }
  });

  it('refuses bad arguments with typed errors', () => {
    expect(() => new QnDense({ units: 3, levels: [1, 0] })).toThrow(ArgumentError);
    expect(() => new QnDense({ units: 0, levels: [-1, 1] })).toThrow(ArgumentError);
    expect(() => new QnDense({ units: 3, levels: [-1, 1], activation: 'linear', activationLevels: [0, 1] })).toThrow(ArgumentError);
    const l = new QnDense({ units: 3, levels: [-1, 1], activationLevels: [0, 1, 2, 3] });
    expect(() => l.setPhase('activations')).toThrow(/calibrate/);
  });

  // A tiny 3-class problem: 8 features, a QnDense(16, ReLU quantized to {0,1,2,3}) and a plain softmax Dense.
  const n = 96, d = 8, c = 3;
  let X: tf.Tensor2D, Y: tf.Tensor;
  beforeAll(() => {
    X = tf.tensor2d(rand(n * d, 1), [n, d]);
    const x = X.arraySync();
    const labels = x.map((row) => (row[0] + row[1] > 0.3 ? 0 : row[2] - row[3] > 0 ? 1 : 2));
    Y = tf.oneHot(tf.tensor1d(labels, 'int32'), c);
  });
  function makeModel(levels: number[]) {
    const model = tf.sequential({ name: 'tiny' });
    model.add(new QnDense({ name: 'hidden', units: 16, levels, activationLevels: [0, 1, 2, 3], kernel: tf.tensor2d(rand(d * 16, 0.6), [d, 16]), inputShape: [d] }));
    model.add(tf.layers.dense({ name: 'out', units: c, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
    return model;
  }
  const hardLoss = (m: tf.LayersModel) => tf.losses.softmaxCrossEntropy(Y, tf.log(m.predict(X) as tf.Tensor)).dataSync()[0];

  it('trainQn: three phases with annealed temperatures; phase 2 keeps the weights fixed; the hard model improves', async () => {
    const model = makeModel([-1, 0, 1]);
    const layer = qnLayers(model)[0];
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
    await model.fit(X, Y, { epochs: 15, batchSize: 32, shuffle: false, verbose: 0 }); // float pretraining
    layer.setPhase('weights');
    const before = hardLoss(model);
    const seen: [string, number, number][] = [];
    let snap: { k: number[]; b: number[]; wfn: string; afn?: string } | undefined;
    await trainQn(model, X, Y, {
      epochs: { weights: 3, activations: 2, both: 2 }, tStart: 2, tSlope: 10, batchSize: 32, shuffle: false, optimizer: () => tf.train.adam(0.01),
      onEpoch: (e) => {
        seen.push([e.phase, e.weightTemperature, e.activationTemperature]);
        if (e.phase === 'weights' && e.epoch === 2) snap = { k: Array.from(layer.kernel().dataSync()), b: Array.from(layer.bias()!.dataSync()), wfn: JSON.stringify(layer.weightFunction()), afn: undefined };
        if (e.phase === 'activations' && e.epoch === 1) {
          expect(Array.from(layer.kernel().dataSync())).toEqual(snap!.k);
          expect(Array.from(layer.bias()!.dataSync())).toEqual(snap!.b);
          expect(JSON.stringify(layer.weightFunction())).toBe(snap!.wfn);
          snap!.afn = JSON.stringify(layer.activationFunction());
        }
      },
    });
    // T = tStart + tSlope × the epochs each function has trained before.
    expect(seen.map(([p, w]) => (p === 'activations' ? null : [p, w]))).toEqual([['weights', 2], ['weights', 12], ['weights', 22], null, null, ['both', 32], ['both', 42]]);
    expect(seen.filter(([p]) => p !== 'weights').map(([, , a]) => a)).toEqual([2, 12, 22, 32]);
    expect(layer.activationsCalibrated).toBe(true);
    expect(JSON.stringify(layer.activationFunction())).not.toBe(snap!.afn ?? ''); // trained in phase 3
    const h = (layer.apply(X) as tf.Tensor).dataSync();
    const a = layer.activationFunction()!;
    const allowed = new Set(Array.from(qnQuantizer(a).levels, (v) => Math.fround(v)));
    expect(Array.from(h).every((v) => allowed.has(v))).toBe(true); // inference: activations on the hard levels
    expect(hardLoss(model)).toBeLessThan(before);
    // the checkpoint records the activation function too
    const { dir, cleanup } = tempDir();
    try {
      await fromTfjs(model, join(dir, 'a.safetensors'));
      const s = readScheme(await Checkpoint.open(join(dir, 'a.safetensors'))).tensors['hidden.kernel'] as unknown as { params: { training: { phase: string; activation: { alpha: number; beta: number; biases: number[] } } } };
      expect(s.params.training.phase).toBe('both');
      expect(s.params.training.activation).toMatchObject({ alpha: a.alpha, beta: a.beta, biases: a.biases });
    } finally {
      cleanup();
    }
  });

  it('fromTfjs: decode gives the hard kernels bit for bit (tfjs and torch layouts); the scheme records alpha, beta, biases', async () => {
    const model = makeModel([-1, 0, 1]);
    model.predict(X);
    const layer = qnLayers(model)[0];
    layer.setPhase('weights');
    const { dir, cleanup } = tempDir();
    try {
      for (const layout of ['tfjs', 'torch'] as const) {
        const out = join(dir, `${layout}.safetensors`);
        const report = await fromTfjs(model, out, { layout, names: { hidden: 'fc1' } });
        expect(report.tensors.find((t) => t.name.startsWith('fc1.') && t.name !== 'fc1.bias')!.method).toBe('qn');
        const scheme = readScheme(await Checkpoint.open(out));
        const kname = layout === 'torch' ? 'fc1.weight' : 'fc1.kernel';
        const s = scheme.tensors[kname] as unknown as { method: string; params: { training: { alpha: number; beta: number; biases: number[] } } };
        expect(s.method).toBe('qn');
        const fn = layer.weightFunction();
        expect(s.params.training.alpha).toBe(fn.alpha);
        expect(s.params.training.beta).toBe(fn.beta);
        expect(s.params.training.biases).toEqual(fn.biases);
        expect((await inspect(out)).tensors.map((t) => t.name).sort()).toEqual([kname, 'fc1.bias', `out.${layout === 'torch' ? 'weight' : 'kernel'}`, 'out.bias'].sort());
        const dec = join(dir, `${layout}.dense.safetensors`);
        await decode(out, dec);
        const f = readSafetensors(dec);
        const got = (name: string) => new Float32Array(f.tensor(name).slice().buffer);
        let hard = layer.quantizedKernel();
        let plain = (model.layers[1].weights[0].read());
        if (layout === 'torch') { hard = hard.transpose(); plain = plain.transpose(); }
        expect(f.header[kname].shape).toEqual(hard.shape);
        expect(Array.from(got(kname))).toEqual(Array.from(hard.dataSync()));
        expect(Array.from(got('fc1.bias'))).toEqual(Array.from(layer.bias()!.dataSync()));
        expect(Array.from(got(`out.${layout === 'torch' ? 'weight' : 'kernel'}`))).toEqual(Array.from(plain.dataSync()));
      }
    } finally {
      cleanup();
    }
  });

  it('fromTfjs refuses a model without quantized QN layers or with two level sets, and writes nothing', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const out = join(dir, 'x.safetensors');
      const plain = makeModel([-1, 0, 1]);
      plain.predict(X);
      await expect(fromTfjs(plain, out)).rejects.toThrow(ArgumentError); // phase float
      const two = tf.sequential();
      two.add(new QnDense({ units: 4, levels: [-1, 1], inputShape: [d] }));
      two.add(new QnDense({ units: 3, levels: [-1, 0, 1], activation: 'linear' }));
      two.predict(X);
      for (const l of qnLayers(two)) l.setPhase('weights');
      await expect(fromTfjs(two, out)).rejects.toMatchObject({ code: new ArgumentError('x').code });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
