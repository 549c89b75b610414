/**
 * Quantization Networks (Yang et al., CVPR 2019, arXiv 1911.09464): the quantization function as a sum of
 * sigmoids,
 *
 *     y = α (Σᵢ sᵢ σ(T (β x − bᵢ)) − o),   sᵢ = Y_{i+1} − Y_i,  o = ½ Σ sᵢ (weights) or 0 (activations),
 *
 * whose temperature T grows during training until it is the step function used at inference (T = ∞): a scalar
 * quantizer with levels α (Σ_{i<j} sᵢ − o) and thresholds bᵢ / β, which is what `--method qn` stores through the
 * scalar codec. The kernels are native (native/core/qn), multi-threaded, and deterministic for any thread count.
 * docs/QN.md describes the method, its options and the post-training fit.
 */
import { ArgumentError, fromNative } from './errors.js';
import { loadNative } from './load.js';

/**
 * One quantization function. `levels` is the level set Y (ascending, at least 2; e.g. [-1, 0, 1] ternary,
 * [-4, -2, -1, 0, 1, 2, 4] the paper's W3(±4)); `biases` the n = |Y| − 1 interval starts bᵢ, ascending, in units of
 * β x; α > 0 scales the output (weight units), β > 0 the input (1 / weight units). `offset` is o: by default
 * ½ (max Y − min Y), which centres the output (the paper's weights); 0 for ReLU activations.
 */
export interface QnFunction {
  levels: readonly number[];
  alpha: number;
  beta: number;
  biases: readonly number[];
  offset?: number;
}

/** A function with its hard form: the scalar quantizer's levels (ascending) and thresholds (x > thresholds[j] → past level j). */
export interface QnQuantizer {
  alpha: number;
  beta: number;
  offset: number;
  biases: Float64Array;
  levels: Float64Array;
  thresholds: Float64Array;
}

/** The level set of `--levels`: 'binary' [-1, 1], 'ternary' [-1, 0, 1], or a comma-separated ascending list. */
export function parseLevels(spec: string): number[] {
  const s = spec.trim().toLowerCase();
  if (s === 'binary') return [-1, 1];
  if (s === 'ternary') return [-1, 0, 1];
  const v = s.split(',').map((p) => Number(p.trim()));
  if (v.length < 2 || v.some((x) => !Number.isFinite(x) || x === undefined)) throw new ArgumentError(`option levels: ${JSON.stringify(spec)} must be binary, ternary, or a comma-separated list of at least 2 numbers`);
  for (let i = 1; i < v.length; i++)
    if (!(v[i] > v[i - 1])) throw new ArgumentError(`option levels: ${JSON.stringify(spec)} must be strictly ascending`);
  return v;
}

/**
 * The preset level set of `bits` codes when no list is given: binary [-1, 1] for 1 bit; otherwise the symmetric
 * integer grid of 2^bits − 1 levels (2 bits: ternary [-1, 0, 1]; 3 bits: [-3 … 3]), which keeps an exact 0.
 */
export function presetLevels(bits: number): number[] {
  if (bits <= 1) return [-1, 1];
  const h = 2 ** (bits - 1) - 1;
  return Array.from({ length: 2 * h + 1 }, (_, i) => i - h);
}

function nativeFn(fn: QnFunction) {
  return { levels: Array.from(fn.levels), alpha: fn.alpha, beta: fn.beta, biases: Array.from(fn.biases), ...(fn.offset !== undefined ? { offset: fn.offset } : {}) };
}

export interface QnForwardOptions {
  /** T; Infinity (default) gives the hard function, exactly as the scalar codec decodes it (F32 levels). */
  temperature?: number;
  /** Where to write y (x.length F32 values); a new array when omitted. May be x itself. */
  out?: Float32Array;
  /** CPU threads (0 = all, default). */
  threads?: number;
}

/**
 * y = f_T(x) element-wise, on the calling thread's pool (synchronous; zero-copy on the F32 arrays).
 * Shapes: x [n] (any layout, element-wise), returns y [n]. Units: y in α's units (weights).
 * Throws ArgumentError for a bad function (levels not ascending, α or β ≤ 0, biases not ascending or of the wrong
 * count) or T ≤ 0, NonFiniteError for NaN/inf in x.
 */
export function qnForward(x: Float32Array, fn: QnFunction, options: QnForwardOptions = {}): Float32Array {
  const out = options.out ?? new Float32Array(x.length);
  try {
    loadNative().qnForward(x, nativeFn(fn), options.temperature ?? Infinity, out, options.threads ?? 0);
  } catch (e) {
    throw fromNative(e);
  }
  return out;
}

/** The gradients of Σ gy · f_T(x): per element for x, summed over elements for α, β and each bias. */
export interface QnGradients {
  /** ∂/∂x = gy · α β T Σ sᵢ σᵢ (1 − σᵢ), [n]. */
  x: Float32Array;
  /** Σ gy (Σ sᵢ σᵢ − o). */
  alpha: number;
  /** Σ gy · α T x Σ sᵢ σᵢ (1 − σᵢ). */
  beta: number;
  /** Σ gy · (−α T sᵢ σᵢ (1 − σᵢ)), one per bias. */
  biases: Float64Array;
}

/**
 * The exact gradients of the soft function at temperature T (finite, > 0), for upstream gradient gy [n]. The paper's
 * Eq. 8 is printed as Σ (Tβ/(α sᵢ)) g (α sᵢ − g), which is exact only when g = α sᵢ σᵢ; this is the exact form.
 * Sums over elements are reduced over fixed chunks in a fixed order (deterministic for any thread count).
 * Throws ArgumentError for a bad function or T, NonFiniteError for NaN/inf in x or gy.
 */
export function qnBackward(x: Float32Array, gy: Float32Array, fn: QnFunction, options: { temperature: number; threads?: number; out?: Float32Array }): QnGradients {
  const gx = options.out ?? new Float32Array(x.length);
  try {
    const g = loadNative().qnBackward(x, gy, nativeFn(fn), options.temperature, gx, options.threads ?? 0);
    return { x: gx, alpha: g.alpha, beta: g.beta, biases: g.biases };
  } catch (e) {
    throw fromNative(e);
  }
}

function quantizerOf(f: { alpha: number; beta: number; offset: number; biases: Float64Array; quantizerLevels: Float64Array; quantizerThresholds: Float64Array }): QnQuantizer {
  return { alpha: f.alpha, beta: f.beta, offset: f.offset, biases: f.biases, levels: f.quantizerLevels, thresholds: f.quantizerThresholds };
}

/** The hard quantizer of a function: levels α (Σ_{i<j} sᵢ − o) and thresholds bᵢ / β. Throws ArgumentError for a bad function. */
export function qnQuantizer(fn: QnFunction): QnQuantizer {
  try {
    return quantizerOf(loadNative().qnQuantizer(nativeFn(fn)));
  } catch (e) {
    throw fromNative(e);
  }
}

/**
 * The paper's initialisation for weights `values` and level set `levels`: β = 5p/(4q) (p = max|Y|, q = max|x|),
 * α = 1/β, biases 0 (two levels), else β × the midpoints of exact k-means centres with |Y| clusters, with the two
 * biases around an interior level 0 set to ∓0.05 (ternary: ±0.05).
 */
export function qnInit(values: Float64Array, levels: readonly number[]): QnQuantizer {
  try {
    return quantizerOf(loadNative().qnInit(values, Array.from(levels)));
  } catch (e) {
    throw fromNative(e);
  }
}
