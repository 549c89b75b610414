/**
 * `weightpress/tfjs`: the Quantization Networks function (lib/qn.ts) as a TensorFlow.js op, for training end to end
 * (Yang et al. 2019, §3.3). The forward and the gradients are the native kernels' (qnForward / qnBackward), wired
 * in with tf.customGrad; any backend whose tensors can be read synchronously works (cpu, wasm). `@tensorflow/tfjs`
 * is an optional peer dependency: import this subpath only where it is installed.
 *
 * Layers: QnDense and QnConv2D quantize their weights (and optionally their ReLU outputs) through the op, trainQn runs
 * the paper's three-phase schedule with annealed temperatures, and fromTfjs writes the trained model as a weightpress
 * checkpoint (method qn). docs/QN.md.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { GivenQuantizers } from './codecs/codec.js';
import { ArgumentError } from './errors.js';
import { OutputFile } from './job.js';
import { qnBackward, qnForward, qnInit, qnQuantizer, type QnFunction } from './qn.js';
import { quantizeGiven } from './quantize.js';
import type { Report } from './report.js';

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

// ------------------------------------------------------------------------------------------------ layer wrapper

/**
 * Which parts of a QN layer are quantized and trained (the paper's schedule, §3.3):
 * - 'float': no quantization; kernel and bias train (pretraining, or a layer left in full precision);
 * - 'weights': weights through the soft function at the weight temperature; kernel, bias, weight α, β train;
 * - 'activations': weights hard-quantized and frozen (kernel, bias, weight α, β); the ReLU output goes through the
 *   activation function at the activation temperature and only its α, β train;
 * - 'both': both soft, everything trains.
 * In inference (predict, evaluate: training false) every quantized part uses its hard function (T = ∞).
 */
export type QnPhase = 'float' | 'weights' | 'activations' | 'both';

/** Options shared by QnDense and QnConv2D. */
export interface QnLayerArgs {
  /** The weights' level set Y (ascending, ≥ 2 values; e.g. [-1, 1] binary, [-1, 0, 1] ternary). Offset: ½ (max − min). */
  levels: readonly number[];
  /** 'relu' (default) or 'linear'. */
  activation?: 'relu' | 'linear';
  /** Quantize the ReLU output with this level set and offset 0 (e.g. [0, 1] or [0, 1, 2, 3]); needs activation 'relu'. */
  activationLevels?: readonly number[];
  /** Learn the biases bᵢ of the functions too (the paper freezes them). Default false. */
  learnBiases?: boolean;
  /** Whether the layer adds a bias vector (default true). */
  useBias?: boolean;
  /** Initial kernel (Dense [in, units], Conv2D [kh, kw, in, filters]) and bias ([units]); default Glorot-uniform and 0. */
  kernel?: tf.Tensor;
  bias?: tf.Tensor;
  name?: string;
  inputShape?: number[];
}

/** A layer's function parameters as layer weights, so that model.fit trains them. */
interface FnWeights {
  alpha: tf.LayerVariable;
  beta: tf.LayerVariable;
  biases: tf.LayerVariable;
}

/**
 * The common part of QnDense and QnConv2D: a kernel quantized through the qn function (one α, β, biases per layer:
 * layer-wise, as the paper), a bias, a ReLU optionally quantized by a second function (offset 0). The weight
 * function is initialised as the paper does (qnInit on the kernel: β = 5p/(4q), α = 1/β, k-means biases) when the
 * layer is built; the activation function by calibrateActivations (q = the largest ReLU output on sample inputs).
 */
export abstract class QnLayer extends tf.layers.Layer {
  readonly levels: readonly number[];
  readonly activationLevels: readonly number[] | undefined;
  readonly activation: 'relu' | 'linear';
  readonly learnBiases: boolean;
  readonly useBias: boolean;
  /** The current phase (setPhase changes it; trainQn sets it for each phase). */
  phase: QnPhase = 'float';
  /** The temperature of the weight function while training (trainQn anneals it). */
  weightTemperature = 1;
  /** The temperature of the activation function while training. */
  activationTemperature = 1;
  /** Whether calibrateActivations has initialised the activation function. */
  activationsCalibrated = false;
  protected kernelW!: tf.LayerVariable;
  protected biasW: tf.LayerVariable | undefined;
  protected wFn!: FnWeights;
  protected aFn: FnWeights | undefined;
  private initKernel: tf.Tensor | undefined;
  private initBias: tf.Tensor | undefined;
  /** While set (calibrateActivations), the ReLU outputs of each call are appended here. */
  collected: Float32Array[] | undefined;

  constructor(args: QnLayerArgs) {
    super({ name: args.name, ...(args.inputShape ? { inputShape: args.inputShape } : {}) });
    checkLevels('levels', args.levels);
    this.levels = [...args.levels];
    this.activation = args.activation ?? 'relu';
    if (this.activation !== 'relu' && this.activation !== 'linear') throw new ArgumentError(`option activation: ${JSON.stringify(args.activation)} must be 'relu' or 'linear'`);
    if (args.activationLevels !== undefined) {
      checkLevels('activationLevels', args.activationLevels);
      if (this.activation !== 'relu') throw new ArgumentError('option activationLevels: quantized activations need activation relu (the paper quantizes ReLU outputs)');
      if (args.activationLevels[0] < 0) throw new ArgumentError('option activationLevels: ReLU outputs are ≥ 0, so the levels must be too');
    }
    this.activationLevels = args.activationLevels ? [...args.activationLevels] : undefined;
    this.learnBiases = args.learnBiases ?? false;
    this.useBias = args.useBias ?? true;
    this.initKernel = args.kernel ? tf.keep(args.kernel.clone()) : undefined;
    this.initBias = args.bias ? tf.keep(args.bias.clone()) : undefined;
  }

  /** The kernel's shape for an input shape. */
  protected abstract kernelShape(inputShape: tf.Shape): number[];
  /** The layer's linear map of x with kernel k (before the bias). */
  protected abstract linear(x: tf.Tensor, k: tf.Tensor): tf.Tensor;

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const ks = this.kernelShape(shape);
    if (this.initKernel && this.initKernel.shape.join() !== ks.join()) throw new ArgumentError(`layer ${this.name}: the given kernel is [${this.initKernel.shape}], the input needs [${ks}]`);
    this.kernelW = this.addWeight('kernel', ks, 'float32', tf.initializers.glorotUniform({}));
    if (this.initKernel) this.kernelW.write(this.initKernel);
    const out = ks[ks.length - 1];
    if (this.useBias) {
      this.biasW = this.addWeight('bias', [out], 'float32', tf.initializers.zeros());
      if (this.initBias) {
        if (this.initBias.shape.join() !== `${out}`) throw new ArgumentError(`layer ${this.name}: the given bias is [${this.initBias.shape}], not [${out}]`);
        this.biasW.write(this.initBias);
      }
    }
    this.wFn = this.fnWeights('weight', this.levels);
    this.initFunction(this.wFn, this.levels, this.kernelW.read().dataSync() as Float32Array);
    if (this.activationLevels) this.aFn = this.fnWeights('activation', this.activationLevels);
    this.initKernel?.dispose();
    this.initBias?.dispose();
    this.initKernel = this.initBias = undefined;
    this.built = true;
    this.setPhase(this.phase);
  }

  private fnWeights(part: string, levels: readonly number[]): FnWeights {
    return {
      alpha: this.addWeight(`${part}_alpha`, [], 'float32', tf.initializers.ones()),
      beta: this.addWeight(`${part}_beta`, [], 'float32', tf.initializers.ones()),
      biases: this.addWeight(`${part}_biases`, [levels.length - 1], 'float32', tf.initializers.zeros()),
    };
  }

  private initFunction(f: FnWeights, levels: readonly number[], values: Float32Array): void {
    const q = qnInit(Float64Array.from(values), levels);
    f.alpha.write(tf.scalar(q.alpha));
    f.beta.write(tf.scalar(q.beta));
    f.biases.write(tf.tensor1d(Float32Array.from(q.biases)));
  }

  /** Re-initialises the weight function from the current kernel as the paper does (qnInit), e.g. after writing trained float weights into it. */
  initWeightFunction(): void {
    if (!this.built) throw new ArgumentError(`layer ${this.name}: not built yet (apply it or add it to a model with an input shape first)`);
    this.initFunction(this.wFn, this.levels, this.kernelW.read().dataSync() as Float32Array);
  }

  /** Sets the phase and which weights train (recompile the model afterwards: model.fit trains what compile saw). */
  setPhase(phase: QnPhase): void {
    if (!['float', 'weights', 'activations', 'both'].includes(phase)) throw new ArgumentError(`phase: ${JSON.stringify(phase)} is not float, weights, activations or both`);
    if ((phase === 'activations' || phase === 'both') && this.activationLevels && !this.activationsCalibrated)
      throw new ArgumentError(`layer ${this.name}: calibrate the activation function (calibrateActivations) before phase ${phase}`);
    this.phase = phase;
    if (!this.built) return;
    const layerTrains = phase !== 'activations';
    this.kernelW.trainable = layerTrains;
    if (this.biasW) this.biasW.trainable = layerTrains;
    const wq = phase === 'weights' || phase === 'both';
    this.wFn.alpha.trainable = wq;
    this.wFn.beta.trainable = wq;
    this.wFn.biases.trainable = wq && this.learnBiases;
    if (this.aFn) {
      const aq = phase === 'activations' || phase === 'both';
      this.aFn.alpha.trainable = aq;
      this.aFn.beta.trainable = aq;
      this.aFn.biases.trainable = aq && this.learnBiases;
    }
  }

  private fnOf(f: FnWeights, levels: readonly number[], offset?: number): QnFunction {
    return { levels, alpha: f.alpha.read().dataSync()[0], beta: f.beta.read().dataSync()[0], biases: Array.from(f.biases.read().dataSync()), ...(offset !== undefined ? { offset } : {}) };
  }

  /** The weight function's current parameters. */
  weightFunction(): QnFunction {
    return this.fnOf(this.wFn, this.levels);
  }

  /** The activation function's current parameters (offset 0), when the layer quantizes its activations. */
  activationFunction(): QnFunction | undefined {
    return this.aFn && this.fnOf(this.aFn, this.activationLevels!, 0);
  }

  /** The latent (float) kernel. */
  kernel(): tf.Tensor {
    return this.kernelW.read();
  }

  /** The bias vector, when the layer has one. */
  bias(): tf.Tensor | undefined {
    return this.biasW?.read();
  }

  /** The hard-quantized kernel (what inference uses and fromTfjs stores). */
  quantizedKernel(): tf.Tensor {
    const k = this.kernelW.read();
    return tf.tensor(qnForward(Float32Array.from(k.dataSync()), this.weightFunction()), k.shape);
  }

  private apply1(f: FnWeights, levels: readonly number[], offset: number | undefined, x: tf.Tensor, T: number): tf.Tensor {
    return qnOp(x, f.alpha.read() as tf.Scalar, f.beta.read() as tf.Scalar, f.biases.read() as tf.Tensor1D, { levels, ...(offset !== undefined ? { offset } : {}) }, T);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const training = kwargs?.training === true;
      // Soft weights while they train; otherwise the hard ones, as a constant (no gradient path to frozen weights).
      const k = this.phase === 'float'
        ? this.kernelW.read()
        : training && this.phase !== 'activations'
          ? this.apply1(this.wFn, this.levels, undefined, this.kernelW.read(), this.weightTemperature)
          : this.quantizedKernel();
      let y = this.linear(x, k);
      if (this.biasW) y = tf.add(y, this.biasW.read());
      if (this.activation === 'relu') y = tf.relu(y);
      if (this.collected) this.collected.push(Float32Array.from(y.dataSync()));
      if (this.aFn && (this.phase === 'activations' || this.phase === 'both'))
        y = this.apply1(this.aFn, this.activationLevels!, 0, y, training ? this.activationTemperature : Infinity);
      return y;
    });
  }

  /** Initialises the activation function as the paper does from ReLU outputs `values` (qnInit: q = their maximum, k-means biases). */
  initActivations(values: Float32Array): void {
    if (!this.aFn) throw new ArgumentError(`layer ${this.name}: has no activationLevels`);
    if (!values.length) throw new ArgumentError(`layer ${this.name}: no activations to calibrate from`);
    this.initFunction(this.aFn, this.activationLevels!, values);
    this.activationsCalibrated = true;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), levels: [...this.levels], activation: this.activation, ...(this.activationLevels ? { activationLevels: [...this.activationLevels] } : {}), learnBiases: this.learnBiases, useBias: this.useBias };
  }
}

function checkLevels(option: string, levels: readonly number[] | undefined): void {
  if (!Array.isArray(levels) || levels.length < 2 || levels.some((v) => !Number.isFinite(v)) || levels.some((v, i) => i > 0 && !(v > levels[i - 1])))
    throw new ArgumentError(`option ${option}: ${JSON.stringify(levels)} must be at least 2 finite numbers, strictly ascending`);
}

/** A dense layer y = act(x W + b), W [in, units], with W (and optionally the ReLU output) quantized by qn functions. Input [batch, in]. */
export class QnDense extends QnLayer {
  static readonly className = 'QnDense';
  readonly units: number;

  constructor(args: QnLayerArgs & { units: number }) {
    super(args);
    if (!Number.isInteger(args.units) || args.units < 1) throw new ArgumentError(`option units: ${args.units} must be a positive integer`);
    this.units = args.units;
  }

  protected kernelShape(inputShape: tf.Shape): number[] {
    const inF = inputShape[inputShape.length - 1];
    if (inputShape.length !== 2 || !inF) throw new ArgumentError(`layer ${this.name}: QnDense takes input [batch, features], got [${inputShape}]`);
    return [inF, this.units];
  }

  protected linear(x: tf.Tensor, k: tf.Tensor): tf.Tensor {
    return tf.matMul(x as tf.Tensor2D, k as tf.Tensor2D);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...s.slice(0, -1), this.units];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units };
  }
}

/** A 2-D convolution (NHWC, kernel [kh, kw, in, filters]) + bias + activation, its kernel (and optionally its ReLU output) quantized by qn functions. */
export class QnConv2D extends QnLayer {
  static readonly className = 'QnConv2D';
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: 'same' | 'valid';

  constructor(args: QnLayerArgs & { filters: number; kernelSize: number | [number, number]; strides?: number | [number, number]; padding?: 'same' | 'valid' }) {
    super(args);
    const pair = (v: number | [number, number], what: string): [number, number] => {
      const p: [number, number] = Array.isArray(v) ? [v[0], v[1]] : [v, v];
      if (!p.every((x) => Number.isInteger(x) && x >= 1)) throw new ArgumentError(`option ${what}: ${JSON.stringify(v)} must be a positive integer or a pair of them`);
      return p;
    };
    if (!Number.isInteger(args.filters) || args.filters < 1) throw new ArgumentError(`option filters: ${args.filters} must be a positive integer`);
    this.filters = args.filters;
    this.kernelSize = pair(args.kernelSize, 'kernelSize');
    this.strides = pair(args.strides ?? 1, 'strides');
    this.padding = args.padding ?? 'valid';
    if (this.padding !== 'same' && this.padding !== 'valid') throw new ArgumentError(`option padding: ${JSON.stringify(args.padding)} must be 'same' or 'valid'`);
  }

  protected kernelShape(inputShape: tf.Shape): number[] {
    const c = inputShape[3];
    if (inputShape.length !== 4 || !c) throw new ArgumentError(`layer ${this.name}: QnConv2D takes input [batch, height, width, channels], got [${inputShape}]`);
    return [...this.kernelSize, c, this.filters];
  }

  protected linear(x: tf.Tensor, k: tf.Tensor): tf.Tensor {
    return tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, this.strides, this.padding);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const dim = (n: number | null, k: number, st: number) => (n === null ? null : this.padding === 'same' ? Math.ceil(n / st) : Math.ceil((n - k + 1) / st));
    return [s[0], dim(s[1], this.kernelSize[0], this.strides[0]), dim(s[2], this.kernelSize[1], this.strides[1]), this.filters];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), filters: this.filters, kernelSize: this.kernelSize, strides: this.strides, padding: this.padding };
  }
}

tf.serialization.registerClass(QnDense);
tf.serialization.registerClass(QnConv2D);

/** The QN layers of a model, in order. */
export function qnLayers(model: tf.LayersModel): QnLayer[] {
  return model.layers.filter((l): l is QnLayer => l instanceof QnLayer);
}

/**
 * Initialises the activation function of every QN layer with activationLevels from its ReLU outputs on `x` (the
 * paper: 1000 random training samples), running the model in inference. Layers are calibrated in order, so each
 * sees the (quantized) outputs of the layers before it. Throws ArgumentError when the model has no such layer.
 */
export function calibrateActivations(model: tf.LayersModel, x: tf.Tensor): void {
  const layers = qnLayers(model).filter((l) => l.activationLevels);
  if (!layers.length) throw new ArgumentError('calibrateActivations: the model has no QN layer with activationLevels');
  for (const l of layers) {
    l.collected = [];
    try {
      tf.tidy(() => void model.predict(x));
      const n = l.collected.reduce((a, c) => a + c.length, 0);
      const all = new Float32Array(n);
      let at = 0;
      for (const c of l.collected) { all.set(c, at); at += c.length; }
      l.initActivations(all);
    } finally {
      l.collected = undefined;
    }
  }
}

/** Epochs of each phase of trainQn (0 skips a phase). */
export interface QnEpochs {
  weights: number;
  activations?: number;
  both?: number;
}

export interface TrainQnOptions {
  epochs: QnEpochs;
  /** A new optimizer for each phase (tfjs optimizers keep their state by the position of a variable in the list, which changes between phases); default Adam with step 1e-3. */
  optimizer?: (phase: QnPhase) => tf.Optimizer;
  /** Loss of (labels, model output) as a scalar; default mean categorical cross-entropy (the model outputs probabilities). */
  loss?: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar;
  /** Minibatch size (default 32). */
  batchSize?: number;
  /** T in a function's first trained epoch (default 1) and its growth per trained epoch (default 10; paper: 5 to 40). */
  tStart?: number;
  tSlope?: number;
  /** Inputs for calibrateActivations before the activation phase (default the first 1000 training inputs). */
  calibration?: tf.Tensor;
  /** Shuffle the examples each epoch (default true), seeded by `seed` + the epoch (default seed 1). */
  shuffle?: boolean;
  seed?: number;
  /** Called after every epoch with the phase, the epoch within it, the temperatures used, the mean loss and the seconds it took. */
  onEpoch?: (e: { phase: QnPhase; epoch: number; weightTemperature: number; activationTemperature: number; loss: number; seconds: number }) => void;
}

/**
 * The paper's three-phase schedule on a model with QN layers (start from a trained float model): (1) weights
 * quantized (every weight trains but the activation functions), (2) weights fixed, only the activation functions
 * train, (3) everything trains. Each function's temperature is tStart + tSlope × the epochs it has been trained (so
 * a weight function continues its schedule in phase 3). Phases 2 and 3 run only when some QN layer has
 * activationLevels; before phase 2 its activation function is calibrated (calibrateActivations). Minibatch steps
 * run in this loop (optimizer.minimize over the phase's variables), not in model.fit: a Sequential model's compile
 * marks every weight trainable again. Leaves the layers in the last phase run. Returns the mean loss of each epoch.
 * Throws ArgumentError for bad epochs, temperatures or batch size, or a model without QN layers.
 */
export async function trainQn(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, options: TrainQnOptions): Promise<{ phase: QnPhase; loss: number }[]> {
  const layers = qnLayers(model);
  if (!layers.length) throw new ArgumentError('trainQn: the model has no QN layer (QnDense, QnConv2D)');
  const e = options.epochs ?? ({} as QnEpochs);
  for (const k of ['weights', 'activations', 'both'] as const)
    if (e[k] !== undefined && !(Number.isInteger(e[k]) && e[k]! >= 0)) throw new ArgumentError(`option epochs.${k}: ${e[k]} must be a non-negative integer`);
  const tStart = options.tStart ?? 1, tSlope = options.tSlope ?? 10;
  if (!(tStart > 0) || !(tSlope >= 0) || !Number.isFinite(tStart) || !Number.isFinite(tSlope)) throw new ArgumentError(`options tStart, tSlope: ${tStart}, ${tSlope} must be finite, tStart > 0, tSlope ≥ 0`);
  const batch = options.batchSize ?? 32;
  if (!Number.isInteger(batch) || batch < 1) throw new ArgumentError(`option batchSize: ${batch} must be a positive integer`);
  const n = x.shape[0];
  if (y.shape[0] !== n) throw new ArgumentError(`trainQn: ${n} inputs but ${y.shape[0]} labels`);
  const lossOf = options.loss ?? ((t: tf.Tensor, p: tf.Tensor) => tf.mean(tf.metrics.categoricalCrossentropy(t, p)) as tf.Scalar);
  const hasActs = layers.some((l) => l.activationLevels);
  const trained = { weight: 0, activation: 0 };
  const out: { phase: QnPhase; loss: number }[] = [];
  let epochIndex = 0;
  const phases: [QnPhase, number][] = [['weights', e.weights ?? 0], ['activations', hasActs ? e.activations ?? 0 : 0], ['both', hasActs ? e.both ?? 0 : 0]];
  for (const [phase, epochs] of phases) {
    if (!epochs) continue;
    if (phase !== 'weights' && layers.some((l) => l.activationLevels && !l.activationsCalibrated)) {
      for (const l of layers) if (l.phase === 'float') l.setPhase('weights');
      calibrateActivations(model, options.calibration ?? x.slice(0, Math.min(1000, n)));
    }
    for (const l of layers) l.setPhase(phase);
    // The phase's variables: the QN layers' (setPhase marks them), and the other layers' unless weights are fixed.
    const vars = model.layers.flatMap((l) => (l instanceof QnLayer ? l.trainableWeights : phase === 'activations' ? [] : l.trainableWeights)).map((w) => w.read() as tf.Variable);
    const wq = phase !== 'activations', aq = phase !== 'weights';
    const optimizer = options.optimizer?.(phase) ?? tf.train.adam(1e-3);
    for (let epoch = 0; epoch < epochs; epoch++) {
      const t0 = performance.now();
      const temps = { w: tStart + tSlope * trained.weight, a: tStart + tSlope * trained.activation };
      for (const l of layers) { l.weightTemperature = temps.w; l.activationTemperature = temps.a; }
      const order = tf.tidy(() => ((options.shuffle ?? true) ? tf.topk(tf.randomUniform([n], 0, 1, 'float32', (options.seed ?? 1) + epochIndex), n).indices : tf.range(0, n, 1, 'int32')));
      let sum = 0;
      for (let start = 0; start < n; start += batch) {
        const cost = tf.tidy(() => {
          const idx = order.slice(start, Math.min(batch, n - start));
          const xb = tf.gather(x, idx), yb = tf.gather(y, idx);
          return optimizer.minimize(() => lossOf(yb, model.apply(xb, { training: true }) as tf.Tensor), true, vars)!;
        });
        sum += cost.dataSync()[0] * Math.min(batch, n - start);
        cost.dispose();
      }
      order.dispose();
      if (wq) trained.weight++;
      if (aq) trained.activation++;
      epochIndex++;
      out.push({ phase, loss: sum / n });
      options.onEpoch?.({ phase, epoch, weightTemperature: temps.w, activationTemperature: temps.a, loss: sum / n, seconds: (performance.now() - t0) / 1000 });
    }
    optimizer.dispose();
  }
  return out;
}

// ------------------------------------------------------------------------------------------ to a checkpoint

export interface FromTfjsOptions {
  /**
   * 'tfjs' (default): tensors as tfjs holds them, named `<layer>.kernel` and `<layer>.bias` (other weights
   * `<layer>.<weight>`). 'torch': dense kernels transposed to [out, in] and conv kernels to [out, in, kh, kw], named
   * `<layer>.weight`, as PyTorch's nn.Linear and nn.Conv2d.
   */
  layout?: 'tfjs' | 'torch';
  /** Output names of layers (tfjs layer name → prefix), e.g. { qn_dense_1: 'fc1' }; default the layer's name. */
  names?: Record<string, string>;
  /** CPU threads (0 = all, default). */
  threads?: number;
}

function torchOrder(t: tf.Tensor): tf.Tensor {
  if (t.rank === 2) return tf.transpose(t, [1, 0]);
  if (t.rank === 4) return tf.transpose(t, [3, 2, 0, 1]);
  return t.clone();
}

/**
 * Writes `model` as a weightpress checkpoint at `path` (a .safetensors file): the kernel of each QN layer (not in
 * phase 'float') stored through the scalar codec as method qn, one quantizer per tensor whose levels and thresholds
 * are the layer's hard function (so `decode` gives quantizedKernel() bit for bit), with the learned α, β, biases
 * (and the activation function's, when quantized) in the scheme's params.training; every other weight (biases,
 * other layers) kept as F32. All QN layers must share one weight level set. The weights pass through a dense F32
 * file in the OS temporary directory, removed afterwards. Nothing is written at `path` unless all of it succeeds.
 * Returns quantize()'s report (its input: `tfjs model <name>`). Throws ArgumentError (no QN layer, two level sets,
 * two tensors of one name), and quantize()'s errors.
 */
export async function fromTfjs(model: tf.LayersModel, path: string, options: FromTfjsOptions = {}): Promise<Report> {
  const layout = options.layout ?? 'tfjs';
  if (layout !== 'tfjs' && layout !== 'torch') throw new ArgumentError(`option layout: ${JSON.stringify(layout)} must be 'tfjs' or 'torch'`);
  const quantized = qnLayers(model).filter((l) => l.built && l.phase !== 'float');
  if (!quantized.length) throw new ArgumentError('fromTfjs: the model has no QN layer with quantized weights (QnDense or QnConv2D, phase not float)');
  const levels = quantized[0].levels;
  const other = quantized.find((l) => l.levels.join() !== levels.join());
  if (other) throw new ArgumentError(`fromTfjs: layers ${quantized[0].name} and ${other.name} have different weight level sets ([${levels}] and [${other.levels}]); one checkpoint stores one`);

  const prefix = (l: tf.layers.Layer) => options.names?.[l.name] ?? l.name;
  const tensors: { name: string; value: tf.Tensor; layer: tf.layers.Layer; kernel: boolean }[] = [];
  for (const l of model.layers) {
    if (l instanceof QnLayer) {
      if (!l.built) continue;
      tensors.push({ name: `${prefix(l)}.${layout === 'torch' ? 'weight' : 'kernel'}`, value: l.kernel(), layer: l, kernel: true });
      const b = l.bias();
      if (b) tensors.push({ name: `${prefix(l)}.bias`, value: b, layer: l, kernel: false });
    } else {
      for (const w of l.weights) {
        const short = w.originalName.split('/').pop()!;
        const isKernel = short === 'kernel';
        tensors.push({ name: `${prefix(l)}.${isKernel && layout === 'torch' ? 'weight' : short}`, value: w.read(), layer: l, kernel: isKernel });
      }
    }
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new ArgumentError(`fromTfjs: two tensors would be named ${t.name}; give the layers distinct names (option names)`);
    seen.add(t.name);
  }

  const dir = mkdtempSync(join(tmpdir(), 'weightpress-tfjs-'));
  try {
    const dense = join(dir, 'model.safetensors');
    const file = new OutputFile(dense, 4096 + 200 * tensors.length);
    const given = new Map<string, GivenQuantizers>();
    try {
      for (const t of tensors) {
        const v = layout === 'torch' && t.kernel ? torchOrder(t.value) : t.value;
        const data = Float32Array.from(v.dataSync());
        const shape = v.shape.length ? v.shape : [1];
        if (v !== t.value) v.dispose();
        await file.add(t.name, 'F32', shape, new Uint8Array(data.buffer));
        if (t.layer instanceof QnLayer && t.kernel && t.layer.phase !== 'float') {
          const fn = t.layer.weightFunction();
          const q = qnQuantizer(fn);
          const act = t.layer.phase === 'activations' || t.layer.phase === 'both' ? t.layer.activationFunction() : undefined;
          given.set(t.name, {
            levels: q.levels,
            thresholds: q.thresholds,
            key: 'training',
            recorded: {
              objective: 'end-to-end (weightpress/tfjs)',
              layer: t.layer.name,
              phase: t.layer.phase,
              alpha: fn.alpha,
              beta: fn.beta,
              biases: [...fn.biases],
              offset: q.offset,
              ...(act ? { activation: { levels: [...act.levels], alpha: act.alpha, beta: act.beta, biases: [...act.biases], offset: 0 } } : {}),
            },
          });
        }
      }
      await file.finish({});
      file.place();
    } catch (e) {
      file.abort();
      throw e;
    }
    const bits = Math.max(1, Math.ceil(Math.log2(levels.length)));
    const report = await quantizeGiven(dense, path, {
      method: 'qn',
      granularity: 'tensor',
      bits,
      levels: levels.join(','),
      // F32 codebooks: the trained levels stored exactly, so that decode gives the hard kernels bit for bit.
      codebookDtype: 'F32',
      include: [...given.keys()],
      minElements: 0,
      minDims: 0,
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
    }, given);
    return { ...report, input: `tfjs model ${model.name}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
