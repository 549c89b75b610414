/**
 * `weightpress/tfjs`: the Quantization Networks function (lib/qn.ts) as a TensorFlow.js op, for training end to end
 * (Yang et al. 2019, §3.3). The forward and the gradients are the native kernels' (qnForward / qnBackward), wired
 * in with tf.customGrad; any backend whose tensors can be read synchronously works (cpu, wasm). `@tensorflow/tfjs`
 * is an optional peer dependency: import this subpath only where it is installed.
 */
import * as tf from '@tensorflow/tfjs';

import { ArgumentError } from './errors.js';
import { qnBackward, qnForward, qnInit, type QnFunction } from './qn.js';

/** A function's fixed parts: the level set Y and the offset o (default ½ (max Y − min Y); 0 for ReLU activations). */
export interface QnShape {
  levels: readonly number[];
  offset?: number;
}

/**
 * y = α (Σᵢ sᵢ σ(T (β x − bᵢ)) − o) element-wise as a differentiable tfjs op: gradients flow to x (any shape), α and β
 * (scalars) and the biases ([n], n = |Y| − 1), exactly as qnBackward computes them. T must be finite and > 0 where a
 * gradient is taken; T = Infinity gives the hard function (forward only). Throws ArgumentError for a bad function.
 */
export function qnOp(x: tf.Tensor, alpha: tf.Scalar, beta: tf.Scalar, biases: tf.Tensor1D, shape: QnShape, temperature: number): tf.Tensor {
  const op = tf.customGrad((...args: unknown[]) => {
    const [xt, at, bt, bias] = args as [tf.Tensor, tf.Scalar, tf.Scalar, tf.Tensor1D];
    const xs = Float32Array.from(xt.dataSync());
    const fn: QnFunction = { levels: shape.levels, alpha: at.dataSync()[0], beta: bt.dataSync()[0], biases: Array.from(bias.dataSync()), ...(shape.offset !== undefined ? { offset: shape.offset } : {}) };
    const y = qnForward(xs, fn, { temperature });
    return {
      value: tf.tensor(y, xt.shape),
      gradFunc: (dy: tf.Tensor) => {
        if (!Number.isFinite(temperature)) throw new ArgumentError('qnOp: the hard function (temperature Infinity) has no gradient; train at a finite temperature');
        const g = qnBackward(xs, Float32Array.from(dy.dataSync()), fn, { temperature });
        return [tf.tensor(g.x, xt.shape), tf.scalar(g.alpha), tf.scalar(g.beta), tf.tensor1d(Float32Array.from(g.biases))];
      },
    };
  });
  return op(x, alpha, beta, biases) as tf.Tensor;
}

/**
 * The learnable parameters of one quantization function (α, β, biases as tf variables) for the weights of a layer,
 * initialised as the paper does from the weights' values (qnInit: β = 5p/(4q), α = 1/β, k-means biases, ∓0.05
 * around 0). Biases are not trainable unless `learnBiases` (the paper freezes them).
 */
export class QnQuantizer {
  readonly alpha: tf.Variable<tf.Rank.R0>;
  readonly beta: tf.Variable<tf.Rank.R0>;
  readonly biases: tf.Variable<tf.Rank.R1>;

  constructor(
    readonly shape: QnShape,
    values: tf.Tensor,
    options: { learnBiases?: boolean; name?: string } = {},
  ) {
    const f = qnInit(Float64Array.from(values.dataSync()), shape.levels);
    const name = options.name ?? 'qn';
    this.alpha = tf.variable(tf.scalar(f.alpha), true, `${name}/alpha`);
    this.beta = tf.variable(tf.scalar(f.beta), true, `${name}/beta`);
    this.biases = tf.variable(tf.tensor1d(Float32Array.from(f.biases)), options.learnBiases ?? false, `${name}/biases`);
  }

  /** The quantized values of x at temperature T (Infinity: the hard function, what a checkpoint stores). */
  apply(x: tf.Tensor, temperature: number): tf.Tensor {
    return qnOp(x, this.alpha, this.beta, this.biases, this.shape, temperature);
  }

  /** The current function (for qnForward, qnQuantizer, or a weightpress scheme). */
  function(): QnFunction {
    return { levels: this.shape.levels, alpha: this.alpha.dataSync()[0], beta: this.beta.dataSync()[0], biases: Array.from(this.biases.dataSync()), ...(this.shape.offset !== undefined ? { offset: this.shape.offset } : {}) };
  }

  /** Its trainable variables. */
  variables(): tf.Variable[] {
    return [this.alpha, this.beta, ...(this.biases.trainable ? [this.biases] : [])];
  }
}
