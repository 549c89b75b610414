/**
 * weightpress: quantize and compress neural-network checkpoints (safetensors) with exact solvers.
 *
 *   import { quantize, decode, inspect } from 'weightpress';
 *   const report = await quantize('model.safetensors', 'model.wp.safetensors', { method: 'kmeans-optimal', bits: 4 });
 */
import { fromNative } from './errors.js';
import { loadNative } from './load.js';
import type { NativeBackend, NativeSolverParams } from './native.js';
import { findMethod } from './methods/registry.js';
import { ArgumentError } from './errors.js';

export { quantize, quantizeTasks, type QuantizeTasksOptions } from './quantize.js';
export { plan, planTasks, shardTasks, type Plan, type PlannedShard, type TensorTask, type TaskOptions } from './plan.js';
export { merge, DEFAULT_MAX_SHARD_SIZE } from './shards.js';
export { CODECS, QUANTIZING_CODECS, findCodec } from './codecs/registry.js';
export type { Codec, CodecName } from './codecs/codec.js';
export { exportCompressedTensors, type CompressedTensorsOptions, type CompressedTensorsReport, type CompressedTensorsTensorReport } from './compressed-tensors.js';
export { exportGguf, dequantizeGguf, GGUF_QUANT_TYPES, IQ4_NL_VALUES, Q4_0_VALUES, type GgufExportOptions, type GgufExportReport, type GgufQuantType, type GgufTensorReport } from './gguf.js';
export { Imatrix, ggufNameOf } from './imatrix.js';
export { decode, inspect, type DecodeResult } from './decode.js';
export { Checkpoint, type TensorRef } from './checkpoint.js';
export {
  WeightpressError, ArgumentError, FormatError, DtypeError, IoError, NonFiniteError, CancelledError, CudaError, OverflowError, type ErrorCode,
} from './errors.js';
export { METHODS, type MethodEntry, type MethodName } from './methods/registry.js';
export { qnForward, qnBackward, qnQuantizer, qnInit, parseLevels as qnParseLevels, presetLevels as qnPresetLevels, type QnFunction, type QnQuantizer, type QnGradients, type QnForwardOptions } from './qn.js';
export type { QuantizeOptions, DecodeOptions, Progress, Granularity, Device, ImportanceKind, EntropyCoder } from './validate.js';
export type { Report, TensorReport, TotalReport, ReportDocument, ReportHistogram } from './report.js';
export { toJson as reportToJson, formatTable } from './report.js';
export type { FileScheme, TensorScheme, QuantizedScheme, KeptScheme, StoredMetrics } from './format.js';

export interface SolveOptions extends NativeSolverParams {
  /** Importance weight of each value (default 1). */
  weights?: Float64Array;
  /** hessian-kmeans: exact DP (default) or Lloyd's. */
  exact?: boolean;
}

/** A method's solver, or a native solver named directly (e.g. 'ecsq-dp'). */
function solverOf(method: string, o: SolveOptions): string {
  const m = findMethod(method);
  if (m) return m.solver({ exact: o.exact });
  if (loadNative().methods().split(', ').includes(method)) return method;
  throw new ArgumentError(`option method: unknown method ${JSON.stringify(method)}`);
}

/**
 * Solves one weighted 1-D quantization problem: the levels (ascending) a method picks for `values`. Runs off
 * the event loop.
 */
export async function solve(method: string, values: Float64Array, options: SolveOptions = {}): Promise<Float64Array> {
  const { weights, exact: _e, ...params } = options;
  const at = new Error();
  try {
    return await loadNative().solve(solverOf(method, options), values, weights ?? null, params);
  } catch (e) {
    throw fromNative(e, {}, at);
  }
}

/** solve() on the calling thread, for small inputs. */
export function solveSync(method: string, values: Float64Array, options: SolveOptions = {}): Float64Array {
  const { weights, exact: _e, ...params } = options;
  try {
    return loadNative().solveSync(solverOf(method, options), values, weights ?? null, params);
  } catch (e) {
    throw fromNative(e);
  }
}

/** Which backends this binary has and which answer here. Never throws for a missing GPU. */
export function backends(): NativeBackend[] {
  return loadNative().backends();
}

export function versions(): { weightpress: string; napi: number; cudaCompiled: boolean; node: string } {
  const v = loadNative().versions();
  return { weightpress: v.weightpress, napi: v.napi, cudaCompiled: v.cudaCompiled, node: process.version };
}
