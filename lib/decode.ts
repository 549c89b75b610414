/** decode(): a weightpress file back to dense safetensors that any reader loads. inspect(): its report. */
import { resolve } from 'node:path';

import { Checkpoint } from './checkpoint.js';
import { DTYPE_SIZE, isFloatDtype, numel } from './dtype.js';
import { FormatError, fromNative } from './errors.js';
import { FORMAT_KEY, isQuantized, parseScheme, type QuantizedScheme } from './format.js';
import { Cancel, OutputFile, reportProgress } from './job.js';
import { loadNative } from './load.js';
import type { NativeBlockParams } from './native.js';
import { codeBytes } from './plan.js';
import { totals, type Report, type TensorReport } from './report.js';
import { resolveDecodeOptions, type DecodeOptions } from './validate.js';

export interface DecodeResult {
  input: string;
  output: string;
  tensors: number;
  bytesOut: number;
  seconds: number;
}

/** Checks the stored codes and codebook of a quantized tensor against its scheme. */
function checkStored(ckpt: Checkpoint, name: string, s: QuantizedScheme): void {
  const file = ckpt.path;
  for (const n of [s.codes ?? s.codebook, s.codebook])
    if (!ckpt.has(n)) throw new FormatError(`scheme names "${n}", which the file does not hold`, { file, tensor: name });
  const cb = ckpt.info(s.codebook);
  const levels = 2 ** s.bits;
  if (cb.dtype !== s.codebookDtype || cb.shape.length !== 2 || cb.shape[0] !== s.slices || cb.shape[1] !== levels)
    throw new FormatError(`codebook "${s.codebook}" is ${cb.dtype} ${JSON.stringify(cb.shape)}, expected ${s.codebookDtype} [${s.slices}, ${levels}]`, { file, tensor: name });
  if (s.granularity === 'block') {
    const b = s.block!;
    if (!ckpt.has(s.scales!)) throw new FormatError(`scheme names "${s.scales}", which the file does not hold`, { file, tensor: name });
    let sizes;
    try {
      sizes = loadNative().blockSizes(numel(s.shape), b.cols, blockParamsOf(s));
    } catch (e) {
      throw fromNative(e, { file, tensor: name });
    }
    const sc = ckpt.info(s.scales!);
    if (sc.dtype !== 'U8' || sc.numel < sizes.scalesBytes)
      throw new FormatError(`scales "${s.scales}" are ${sc.dtype} with ${sc.numel} bytes, expected U8 with at least ${sizes.scalesBytes}`, { file, tensor: name });
    if (sizes.tables !== s.slices) throw new FormatError(`block format needs ${sizes.tables} tables, the scheme says ${s.slices}`, { file, tensor: name });
  }
  if (s.stream !== undefined) {
    if (!ckpt.has(s.stream)) throw new FormatError(`scheme names "${s.stream}", which the file does not hold`, { file, tensor: name });
    const st = ckpt.info(s.stream);
    if (st.dtype !== 'U8' || st.numel < s.streamBytes!)
      throw new FormatError(`stream "${s.stream}" is ${st.dtype} with ${st.numel} bytes, expected U8 with at least ${s.streamBytes}`, { file, tensor: name });
    let info;
    try {
      info = loadNative().entropyInfo(ckpt.bytes(s.stream).subarray(0, s.streamBytes));
    } catch (e) {
      throw fromNative(e, { file, tensor: name });
    }
    if (info.n !== numel(s.shape) || info.alphabet > levels || info.coder !== s.entropy)
      throw new FormatError(`stream holds ${info.n} ${info.coder} symbols of alphabet ${info.alphabet}, expected ${numel(s.shape)} ${s.entropy} symbols below ${levels}`, { file, tensor: name });
    return;
  }
  const codes = ckpt.info(s.codes!);
  const need = codeBytes(numel(s.shape), s.bits);
  if (codes.dtype !== 'U8' || codes.numel < need)
    throw new FormatError(`codes "${s.codes}" are ${codes.dtype} with ${codes.numel} bytes, expected U8 with at least ${need}`, { file, tensor: name });
}

/** The native parameters that describe a stored block-format tensor. */
function blockParamsOf(s: QuantizedScheme): NativeBlockParams {
  const b = s.block!;
  return { bits: s.bits, blockSize: b.blockSize, table: b.table, scale: b.scale, doubleQuant: b.doubleQuant };
}

export async function decode(input: string, output: string, options: DecodeOptions = {}): Promise<DecodeResult> {
  const o = resolveDecodeOptions(options);
  const native = loadNative();
  const cancel = new Cancel(o.signal);
  const started = performance.now();
  const ckpt = await Checkpoint.open(input);
  let out: OutputFile | undefined;
  try {
    const scheme = parseScheme(ckpt.metadata, ckpt.path);
    const names = Object.keys(scheme.tensors);
    for (const name of names) {
      const s = scheme.tensors[name];
      if (isQuantized(s)) checkStored(ckpt, name, s);
      else if (!ckpt.has(name)) throw new FormatError('kept tensor is missing from the file', { file: ckpt.path, tensor: name });
    }
    const outDtype = (dtype: string) => (o.dtype && isFloatDtype(dtype) ? o.dtype : dtype);
    // Larger elements first keeps every tensor aligned (the format allows no gaps).
    const order = [...names].sort((a, b) => DTYPE_SIZE[outDtype(scheme.tensors[b].dtype)] - DTYPE_SIZE[outDtype(scheme.tensors[a].dtype)]);
    const metadata = { ...ckpt.metadata };
    delete metadata[FORMAT_KEY];
    out = new OutputFile(resolve(output), 1024 + JSON.stringify(metadata).length * 1.2 + names.reduce((a, n) => a + 2 * n.length + 128, 0));
    const bytesTotal = names.reduce((a, n) => a + numel(scheme.tensors[n].shape) * DTYPE_SIZE[outDtype(scheme.tensors[n].dtype)], 0);
    let bytesDone = 0;
    let index = 0;
    for (const name of order) {
      cancel.check(ckpt.path);
      const s = scheme.tensors[name];
      const dt = outDtype(s.dtype);
      const n = numel(s.shape);
      let dense: Uint8Array;
      const at = new Error();
      if (isQuantized(s)) {
        dense = new Uint8Array(n * DTYPE_SIZE[dt]);
        try {
          let codes: Uint8Array;
          if (s.stream !== undefined) {
            codes = new Uint8Array(n);
            await native.entropyDecode(ckpt.bytes(s.stream).subarray(0, s.streamBytes), codes, o.threads, cancel.flag);
          } else {
            codes = ckpt.bytes(s.codes!);
          }
          if (s.granularity === 'block') {
            await native.blockDequantize(
              { codes, scales: ckpt.bytes(s.scales!), table: ckpt.bytes(s.codebook), numel: n, cols: s.block!.cols, name },
              { ...blockParamsOf(s), ...(s.stream !== undefined ? { packBits: 8 } : {}) }, dt, dense, o.threads, cancel.flag,
            );
          } else {
            await native.dequantize(
              { codes, codebook: ckpt.bytes(s.codebook), codebookDtype: s.codebookDtype, numel: n, bits: s.bits, sliceSize: s.sliceSize, name, packBits: s.stream !== undefined ? 8 : s.bits },
              dt, dense, o.threads, cancel.flag,
            );
          }
        } catch (e) {
          throw fromNative(e, { file: ckpt.path, tensor: name }, at);
        }
      } else if (dt !== s.dtype) {
        dense = new Uint8Array(n * DTYPE_SIZE[dt]);
        try {
          await native.convert(ckpt.bytes(name), s.dtype, dt, dense, name);
        } catch (e) {
          throw fromNative(e, { file: ckpt.path, tensor: name }, at);
        }
      } else {
        dense = ckpt.bytes(name);
      }
      await out.add(name, dt, s.shape, dense);
      bytesDone += dense.byteLength;
      reportProgress(o.onProgress, { phase: 'decode', tensor: name, index: ++index, count: names.length, bytesDone, bytesTotal });
    }
    cancel.check(ckpt.path);
    await out.finish(metadata);
    return { input: ckpt.path, output: out.path, tensors: names.length, bytesOut: bytesTotal, seconds: (performance.now() - started) / 1000 };
  } catch (e) {
    out?.abort();
    throw e;
  } finally {
    cancel.dispose();
    ckpt.close();
  }
}

/** The report of a weightpress file, from the metrics it stores (the same fields as quantize's). */
export async function inspect(file: string): Promise<Report> {
  const ckpt = await Checkpoint.open(file);
  try {
    const scheme = parseScheme(ckpt.metadata, ckpt.path);
    const tensors: TensorReport[] = [];
    for (const [name, s] of Object.entries(scheme.tensors)) {
      if (isQuantized(s)) checkStored(ckpt, name, s);
      else if (!ckpt.has(name)) throw new FormatError('kept tensor is missing from the file', { file: ckpt.path, tensor: name });
      const m = s.metrics ?? { mse: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: 0, bytesIn: 0, bytesOut: 0, seconds: 0 };
      tensors.push({
        name, dtype: s.dtype, shape: s.shape, numel: numel(s.shape), method: s.method,
        bits: isQuantized(s) ? s.bits : DTYPE_SIZE[s.dtype] * 8, granularity: isQuantized(s) ? s.granularity : null, ...m,
      });
    }
    return { input: ckpt.path, tensors, total: totals(tensors) };
  } finally {
    ckpt.close();
  }
}
