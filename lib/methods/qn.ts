/**
 * qn: Quantization Networks (Yang et al., CVPR 2019): a learned quantization function y = α (Σ sᵢ σ(T (β x − bᵢ)) − o)
 * fitted post-training per slice (tensor or row) by Adam with the temperature annealed per epoch, then stored
 * through the scalar codec as its hard form (levels α Yⱼ − centre, thresholds bᵢ / β). Against the weight error
 * (importance-weighted when importance is given), or, with a calibration file, against the layer-output error
 * tr((W − Ŵ) H (W − Ŵ)ᵀ) with latent weights learned through the soft function. docs/QN.md; lib/qn.ts has the
 * kernels; native/core/qn the fit.
 */
import { fromNative } from '../errors.js';
import { loadNative } from '../load.js';
import { parseLevels, presetLevels } from '../qn.js';
import { defineMethod, recorder, type CalibratedFit, type CalibratedInput, type NativeOptions } from './method.js';
import { option } from './options.js';

export const LEVELS = option({
  name: 'levels', type: 'string', only: 'qn', unit: 'level set: binary, ternary, or a list like -4,-2,-1,0,1,2,4',
  defaultDoc: "ternary; with --bits B: binary for 1, else the integers -(2^(B-1)-1) .. 2^(B-1)-1",
  doc: "qn's level set Y (the codes' values before the learned scale α): binary, ternary, or an ascending comma-separated list",
  flag: '--levels', metavar: 'Y',
});
export const T_START = option({
  name: 'tStart', type: 'number', default: 10, unit: 'temperature', only: 'qn',
  doc: "qn: the sigmoids' temperature T in the first epoch", flag: '--t-start', metavar: 'T',
});
export const T_SLOPE = option({
  name: 'tSlope', type: 'number', default: 10, unit: 'temperature per epoch', only: 'qn',
  doc: 'qn: T grows by this much per epoch (the paper: 5 to 40)', flag: '--t-slope', metavar: 'S',
});
export const EPOCHS = option({
  name: 'epochs', type: 'int', min: 0, max: 100000, default: 20, unit: 'epochs', only: 'qn',
  doc: 'qn: epochs of the fit (one temperature each)', flag: '--epochs', metavar: 'N',
});
export const STEPS_PER_EPOCH = option({
  name: 'stepsPerEpoch', type: 'int', min: 1, max: 100000, default: 10, unit: 'steps', only: 'qn',
  doc: 'qn: full-batch Adam steps per epoch', flag: '--steps-per-epoch', metavar: 'N',
});
export const LEARNING_RATE = option({
  name: 'learningRate', type: 'number', default: 0.02, max: 10, only: 'qn',
  doc: "qn: Adam's step size (in log alpha, log beta, and units of beta x for biases and latent weights)", flag: '--learning-rate', metavar: 'LR',
});
export const LEARN_BIASES = option({
  name: 'learnBiases', type: 'boolean', default: false, only: 'qn',
  doc: 'qn: learn the biases too (the paper freezes them)', flag: '--learn-biases',
});

/** The level set of the options: --levels, or the preset of --bits (ternary when neither is given). */
export function levelsOf(o: { levels?: string; bits?: number }): number[] {
  return o.levels !== undefined ? parseLevels(o.levels) : presetLevels(o.bits ?? 2);
}

function nativeParams(o: NativeOptions) {
  return {
    levels: levelsOf(o),
    ...(o.tStart !== undefined ? { tStart: o.tStart } : {}),
    ...(o.tSlope !== undefined ? { tSlope: o.tSlope } : {}),
    ...(o.epochs !== undefined ? { epochs: o.epochs } : {}),
    ...(o.stepsPerEpoch !== undefined ? { stepsPerEpoch: o.stepsPerEpoch } : {}),
    ...(o.learningRate !== undefined ? { learningRate: o.learningRate } : {}),
    ...(o.learnBiases !== undefined ? { learnBiases: o.learnBiases } : {}),
  };
}

/** The calibrated fit: native qn_fit_calibrated, then one quantizer per slice and the latent weights to assign from. */
async function fitCalibrated(input: CalibratedInput): Promise<CalibratedFit> {
  const latent = new Float32Array(input.w.length);
  const at = new Error();
  let r;
  try {
    r = await loadNative().qnFitCalibrated(
      input.w,
      input.gram,
      { ...nativeParams(input.options), rows: input.rows, inFeatures: input.inFeatures, rowsPerSlice: input.rowsPerSlice, threads: input.threads, name: input.name },
      latent,
      input.cancel,
      input.onProgress,
    );
  } catch (e) {
    throw fromNative(e, { tensor: input.name }, at);
  }
  const L = r.functions[0]?.quantizerLevels.length ?? 0;
  const levels = new Float64Array(r.functions.length * L);
  const thresholds = new Float64Array(r.functions.length * Math.max(0, L - 1));
  r.functions.forEach((f, s) => {
    levels.set(f.quantizerLevels, s * L);
    thresholds.set(f.quantizerThresholds, s * (L - 1));
  });
  const last = r.history[r.history.length - 1];
  const one = r.functions.length === 1 ? { alpha: r.functions[0].alpha, beta: r.functions[0].beta, biases: Array.from(r.functions[0].biases) } : {};
  return {
    assignFrom: latent,
    levels,
    thresholds,
    recorded: { objective: 'calibration', initObjective: r.initObjective, finalObjective: r.objective, ...(last ? { finalTemperature: last.temperature } : {}), ...one },
    history: r.history,
  };
}

export const qn = defineMethod({
  name: 'qn',
  summary: 'Quantization Networks: a learned sum-of-sigmoids quantizer (levels alpha*Y, thresholds b/beta) fitted with annealed temperature; reads --calibration',
  paper: 'Yang, Shen, Xing, Tian, Li, Deng, Huang & Hua, Quantization Networks, CVPR 2019 (arXiv 1911.09464), Eq. 5-12',
  exact: false,
  seeded: false,
  solver: () => 'qn',
  // Its levels are a fixed set scaled by alpha (and thresholds by 1/beta): a scaled grid, like normal-float.
  objective: 'grid',
  calibration: true,
  defaultBits: (o) => (o.levels !== undefined ? Math.max(1, Math.ceil(Math.log2(parseLevels(o.levels).length))) : 2),
  check: (o) => {
    const y = levelsOf(o);
    if (o.bits !== undefined && y.length > 2 ** o.bits) return `qn: ${y.length} levels do not fit in ${o.bits} bits (${2 ** o.bits} codes)`;
    return undefined;
  },
  recordedParams: (o) => ({ ...recorder(false, ['tStart', 'tSlope', 'epochs', 'stepsPerEpoch', 'learningRate', 'learnBiases'])(o), levels: levelsOf(o) }),
  options: [LEVELS, T_START, T_SLOPE, EPOCHS, STEPS_PER_EPOCH, LEARNING_RATE, LEARN_BIASES],
  nativeParams,
  fitCalibrated,
});
