/**
 * The codes of any codec, and entropy coding as a wrapper over them: store (packed as they are, or Huffman/rANS
 * coded from one byte per code), check, load for decoding, and the metrics every quantized tensor reports.
 * Formats: docs/FORMAT.md (codes), docs/ENTROPY.md (streams).
 */
import type { Checkpoint, TensorRef } from '../checkpoint.js';
import { DTYPE_SIZE, numel } from '../dtype.js';
import { FormatError, fromNative } from '../errors.js';
import { codesName, streamName, type QuantizedScheme, type StoredMetrics } from '../format.js';
import { loadNative } from '../load.js';
import type { NativeEntropyStats } from '../native.js';
import { sqnrDb } from '../report.js';
import type { EncodeJob, TaskOptions, TensorSource } from './codec.js';

export type Coded = NativeEntropyStats & { blob: Uint8Array };

/** Bytes of the packed codes of n codes of `bits` bits. */
export function codeBytes(n: number, bits: number): number {
  return Math.ceil((n * bits) / 8);
}

/** Bits per code the native quantizers write: `bits` (packed), or 8 (one byte per code) for an entropy coder. */
export function packBitsOf(o: Pick<TaskOptions, 'entropy'>): 8 | undefined {
  return o.entropy !== 'none' ? 8 : undefined;
}

/** The names of the code tensors a codec may write for `tensor`. */
export function codeNames(tensor: string): string[] {
  return [codesName(tensor), streamName(tensor)];
}

/**
 * Writes a tensor's codes: packed as they are, or entropy-coded into a stream (from one byte per code). `head` is
 * the bytes written just before for this tensor; the result is padded so that head + codes end 8-byte aligned.
 */
export async function storeCodes(job: EncodeJob, o: TaskOptions, t: TensorRef, codes: Uint8Array, head: number, precoded?: Coded) {
  let coded: Coded | undefined;
  let stored = codes;
  if (o.entropy !== 'none') {
    coded = precoded ?? (await entropyCode(job, o, t, codes));
    stored = new Uint8Array(paddedStreamBytes(head, coded.blob.byteLength));
    stored.set(coded.blob);
  } else if ((head + codes.byteLength) % 8) {
    stored = new Uint8Array(Math.ceil((head + codes.byteLength) / 8) * 8 - head);
    stored.set(codes);
  }
  // --rate is bits per weight after entropy coding (Choi et al.): say so when the stream misses it by over 2 %.
  if (coded && o.rate !== undefined) {
    const achieved = (coded.blob.byteLength * 8) / Math.max(1, t.numel);
    if (achieved > o.rate * 1.02)
      job.warnings.push(`tensor "${t.name}": rate ${o.rate} asked, the ${o.entropy} stream takes ${achieved.toFixed(3)} bits per weight (code entropy ${coded.entropy.toFixed(3)})`);
  }
  const name = coded ? streamName(t.name) : codesName(t.name);
  await job.out.add(name, 'U8', [stored.byteLength], stored);
  const scheme = coded ? { stream: name, entropy: o.entropy as 'huffman' | 'ans', streamBytes: coded.blob.byteLength } : { codes: name };
  return { bytes: stored.byteLength, coded, scheme };
}

/** The entropy-coded stream of a tensor's codes (one byte each), with its statistics. */
export async function entropyCode(job: Pick<EncodeJob, 'threads' | 'cancel'>, o: TaskOptions, t: TensorRef, codes: Uint8Array): Promise<Coded> {
  const at = new Error();
  try {
    return await loadNative().entropyEncode(codes.subarray(0, t.numel), { coder: o.entropy as 'huffman' | 'ans', alphabet: 2 ** o.bits, threads: job.threads }, job.cancel.flag);
  } catch (e) {
    throw fromNative(e, { file: t.file, tensor: t.name }, at);
  }
}

/** Bytes a stream of `streamBytes` takes after `head` bytes once padded to the 8-byte boundary (storeCodes). */
export function paddedStreamBytes(head: number, streamBytes: number): number {
  return Math.ceil((head + streamBytes) / 8) * 8 - head;
}

/** Checks the scheme's codes fields: either codes, or a stream with its coder and length. */
export function parseCodes(s: QuantizedScheme, bad: (problem: string) => Error): void {
  if (s.stream === undefined ? typeof s.codes !== 'string' : typeof s.stream !== 'string' || !['huffman', 'ans'].includes(s.entropy as string) || !Number.isSafeInteger(s.streamBytes) || s.streamBytes! < 0)
    throw bad('needs either codes, or stream with entropy and streamBytes');
}

/** Checks the scheme's codebook fields: a tensor name and F32 or F16. */
export function parseCodebook(s: QuantizedScheme, bad: (problem: string) => Error): void {
  if (s.codebookDtype !== 'F32' && s.codebookDtype !== 'F16') throw bad('codebookDtype must be F32 or F16');
  if (typeof s.codebook !== 'string') throw bad('codebook must name a tensor');
}

/** Checks the stored codebook of an entry: present, its dtype, and shape [slices, 2^bits]. */
export function checkCodebook(ckpt: Checkpoint, name: string, s: QuantizedScheme): void {
  const file = ckpt.path;
  if (!ckpt.has(s.codebook)) throw new FormatError(`scheme names "${s.codebook}", which the file does not hold`, { file, tensor: name });
  const cb = ckpt.info(s.codebook);
  const levels = 2 ** s.bits;
  if (cb.dtype !== s.codebookDtype || cb.shape.length !== 2 || cb.shape[0] !== s.slices || cb.shape[1] !== levels)
    throw new FormatError(`codebook "${s.codebook}" is ${cb.dtype} ${JSON.stringify(cb.shape)}, expected ${s.codebookDtype} [${s.slices}, ${levels}]`, { file, tensor: name });
}

/**
 * Checks the stored codes (or stream) of an entry: present, U8, long enough, and a stream of the right symbols.
 * `count` codes of s.bits bits (default: one per element).
 */
export function checkCodes(ckpt: Checkpoint, name: string, s: QuantizedScheme, count = numel(s.shape)): void {
  const file = ckpt.path;
  const levels = 2 ** s.bits;
  if (s.stream !== undefined) {
    if (!ckpt.has(s.stream)) throw new FormatError(`scheme names "${s.stream}", which the file does not hold`, { file, tensor: name });
    const st = ckpt.info(s.stream);
    if (st.dtype !== 'U8' || st.shape.length !== 1 || !padded(st.numel, s.streamBytes!))
      throw new FormatError(`stream "${s.stream}" is ${st.dtype} ${JSON.stringify(st.shape)}, expected U8 [${s.streamBytes}] (plus at most 7 bytes of alignment padding)`, { file, tensor: name });
    let info;
    try {
      info = loadNative().entropyInfo(ckpt.bytes(s.stream).subarray(0, s.streamBytes));
    } catch (e) {
      throw fromNative(e, { file, tensor: name });
    }
    if (info.n !== count || info.alphabet > levels || info.coder !== s.entropy)
      throw new FormatError(`stream holds ${info.n} ${info.coder} symbols of alphabet ${info.alphabet}, expected ${count} ${s.entropy} symbols below ${levels}`, {
        file,
        tensor: name,
      });
    return;
  }
  if (!ckpt.has(s.codes!)) throw new FormatError(`scheme names "${s.codes}", which the file does not hold`, { file, tensor: name });
  const codes = ckpt.info(s.codes!);
  const need = codeBytes(count, s.bits);
  if (codes.dtype !== 'U8' || codes.shape.length !== 1 || !padded(codes.numel, need))
    throw new FormatError(`codes "${s.codes}" are ${codes.dtype} ${JSON.stringify(codes.shape)}, expected U8 [${need}] (plus at most 7 bytes of alignment padding)`, { file, tensor: name });
}

/**
 * Whether a stored U8 tensor of `stored` bytes holds exactly `need` bytes of payload: storeCodes pads a tensor's
 * last part to an 8-byte boundary, so at most 7 bytes more. Anything else is another file's layout.
 */
export function padded(stored: number, need: number): boolean {
  return stored >= need && stored - need < 8;
}

/**
 * The `count` codes of a stored entry (default: one per element), ready for a native dequantizer: the packed
 * codes (a view of the file), or the stream decoded to one byte per code. `packBits` is what the dequantizer must be told.
 */
export async function loadCodes(ckpt: TensorSource, s: QuantizedScheme, threads: number, cancel: Int32Array, count = numel(s.shape)): Promise<{ codes: Uint8Array; packBits?: 8 }> {
  if (s.stream === undefined) return { codes: ckpt.bytes(s.codes!) };
  const codes = new Uint8Array(count);
  await loadNative().entropyDecode(ckpt.bytes(s.stream).subarray(0, s.streamBytes), codes, threads, cancel);
  return { codes, packBits: 8 };
}

/** A quantized tensor's metrics from the native stats; with entropy coding, H, L and the compression ratios. */
export function metricsOf(
  t: TensorRef,
  stats: { n: number; sse: number; signal: number; maxAbsErr: number },
  bytesOut: number,
  coded: Coded | undefined,
  codebookEntries: number,
): StoredMetrics {
  const metrics: StoredMetrics = {
    mse: stats.n ? stats.sse / stats.n : 0,
    sqnrDb: sqnrDb(stats.signal, stats.sse),
    maxAbsErr: stats.maxAbsErr,
    bitsPerWeight: (bytesOut * 8) / t.numel,
    bytesIn: t.byteLength,
    bytesOut,
    seconds: 0,
  };
  if (coded) {
    const info = loadNative().entropyInfo(coded.blob);
    // Choi et al. Eq. 1: N*b / (sum_i (|C_i| + 1) * b_i + k*b): the coded payload, one codeword per symbol in
    // the table (Huffman; rANS: its frequency table), and k codebook entries of b bits.
    const b = DTYPE_SIZE[t.dtype] * 8;
    const tableBits = info.codeLengths ? info.codeLengths.reduce((a, x) => a + x, 0) : info.tableBytes * 8;
    Object.assign(metrics, {
      entropy: coded.entropy,
      avgCodeLength: coded.avgCodeLength,
      compressionRatio: t.byteLength / bytesOut,
      paperCompressionRatio: (t.numel * b) / (coded.avgCodeLength * t.numel + tableBits + codebookEntries * b),
    });
  }
  return metrics;
}

/**
 * Importance weights of a tensor, or undefined: when an importance file lacks it, or holds zeros for all of it
 * (no preference: uniform weights, as for a zero slice), with a warning. The same for every codec.
 */
export async function importanceFor(job: Pick<EncodeJob, 'importance' | 'warnings'>, t: TensorRef): Promise<Float32Array | undefined> {
  if (!job.importance) return undefined;
  const w = await job.importance.weightsFor(t);
  if (!w) job.warnings.push(`no importance for tensor "${t.name}" in ${job.importance.file}: uniform weights used`);
  else if (w.every((v) => v === 0)) {
    job.warnings.push(`importance of tensor "${t.name}" in ${job.importance.file} is zero everywhere: uniform weights used`);
    return undefined;
  }
  return w;
}
