// weightpress/tfjs: the Quantization Networks op in TensorFlow.js (wasm backend) against the native kernel, and a
// few training steps through it on a tiny problem.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { qnBackward, qnForward } from '../lib/qn.js';
import { QnQuantizer, qnOp } from '../lib/tfjs.js';
import { gaussian, mulberry32 } from './helpers.js';

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
