/**
 * GGUF export (ggml's file format, version 3; docs/BLOCK.md): a checkpoint's float tensors quantized to
 * llama.cpp's IQ4_NL (blocks of 32, one F16 scale, the fixed 16-level table kvalues_iq4nl) or Q4_0 (blocks of
 * 32, one F16 scale, levels -8..7), the other tensors kept as they are. The quantization runs in native code
 * (blockQuantize with a fixed table and an MSE-optimal scale search per block), so the export loses as little
 * SQNR as these formats allow; the report says how much it lost, per tensor and in total.
 *
 * Layout written: header (magic "GGUF", version 3, tensor count, KV count), KVs (general.architecture =
 * "weightpress-export", general.name, general.alignment = 32, general.quantization_version = 2,
 * general.file_type, and weightpress.* maps when names or shapes had to change), tensor infos (name, dims
 * innermost first, type, offset), zero padding to 32, then each tensor's data at a 32-aligned offset.
 * The file is written to a temporary file next to the output and renamed into place.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { Checkpoint } from './checkpoint.js';
import { ArgumentError, CancelledError, IoError, WeightpressError, fromNative } from './errors.js';
import { loadNative } from './load.js';
import { isFloatDtype } from './dtype.js';
import type { NativeBlockStats } from './native.js';

// ----- GGUF -----

/** llama.cpp's IQ4_NL levels (kvalues_iq4nl). */
export const IQ4_NL_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
/** Q4_0's levels: code q decodes to (q - 8) x d. */
export const Q4_0_VALUES: readonly number[] = Array.from({ length: 16 }, (_, i) => i - 8);

export type GgufQuantType = 'IQ4_NL' | 'Q4_0';

export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, IQ4_NL: 20, BF16: 30 } as const;
const KEEP_TYPE: Record<string, number> = { F32: 0, F16: 1, BF16: 30, F64: 28, I8: 24, I16: 25, I32: 26, I64: 27 };
const FILE_TYPE: Record<GgufQuantType, number> = { Q4_0: 2, IQ4_NL: 25 };  // llama_ftype MOSTLY_Q4_0 / MOSTLY_IQ4_NL
const ALIGNMENT = 32;
const QK = 32;
const BLOCK_BYTES = 18;  // F16 d + 16 bytes of nibbles
const MAX_NAME = 63;     // GGML_MAX_NAME (64) including the terminating zero

export interface GgufExportOptions {
  type: GgufQuantType;
  /** general.name (default: the input file's name without extension). */
  name?: string;
  /**
   * Tensors whose innermost dimension is not a multiple of 32 but whose rows (numel / shape[0], the output
   * channel) are, e.g. convolution kernels [out, in, kh, kw], are quantized as 2-D [shape[0], numel/shape[0]]
   * (ne = [numel/shape[0], shape[0]]); the original shapes are listed in the KV weightpress.original_shapes.
   * Default true; false keeps them unquantized.
   */
  flatten?: boolean;
  /**
   * Quantize only tensors with at least 2 dimensions and this many elements (default 4096, weightpress's
   * default plan); the others (biases, norms, small kernels) are kept as they are, as llama.cpp does.
   */
  minElements?: number;
  threads?: number;
  signal?: AbortSignal;
}

export interface GgufTensorReport {
  name: string;
  /** The name in the GGUF file (names longer than 63 bytes are shortened; see weightpress.tensor_names). */
  ggufName: string;
  dtype: string;
  shape: number[];
  /** GGUF dimensions, innermost first. */
  ne: number[];
  type: string;
  quantized: boolean;
  numel: number;
  bytes: number;
  sse: number;
  signal: number;
  /** null when the tensor is stored exactly. */
  sqnrDb: number | null;
  maxAbsErr: number;
  bitsPerWeight: number;
}

export interface GgufExportReport {
  input: string;
  output: string;
  type: GgufQuantType;
  tensors: GgufTensorReport[];
  skipped: { name: string; dtype: string; reason: string }[];
  total: {
    tensors: number;
    quantizedTensors: number;
    numel: number;
    quantizedNumel: number;
    sse: number;
    signal: number;
    /** Over the quantized tensors (kept ones add no error). */
    sqnrDb: number | null;
    maxAbsErr: number;
    /** File bytes x 8 / every exported element. */
    bitsPerWeight: number;
    bytes: number;
  };
}

interface Planned {
  name: string;
  ggufName: string;
  dtype: string;
  shape: number[];
  ne: number[];
  numel: number;
  cols: number;
  quantize: boolean;
  type: number;
  bytes: number;
  flattened: boolean;
}

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer) { this.chunks.push(b); this.length += b.length; }
  u32(v: number) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  u64(v: number) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  str(s: string) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  bytes(b: Buffer) { this.push(b); }
  kvString(k: string, v: string) { this.str(k); this.u32(8); this.str(v); }
  kvU32(k: string, v: number) { this.str(k); this.u32(4); this.u32(v); }
  pad(align: number) { const p = (align - (this.length % align)) % align; if (p) this.push(Buffer.alloc(p)); }
  buffer() { return Buffer.concat(this.chunks); }
}

function shortName(name: string, index: number, taken: Set<string>): string {
  let out = name;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME || taken.has(name)) {
    const prefix = `wp${index}~`;
    let tail = name;
    while (Buffer.byteLength(prefix + tail, 'utf8') > MAX_NAME) tail = tail.slice(1);
    out = prefix + tail;
  }
  taken.add(out);
  return out;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Writes `output` as a GGUF v3 file holding the checkpoint's tensors, float tensors quantized to `type` where
 * their rows allow, and returns the SQNR the export costs per tensor and in total.
 */
export async function exportGguf(input: string, output: string, options: GgufExportOptions): Promise<GgufExportReport> {
  const type = options?.type;
  if (type !== 'IQ4_NL' && type !== 'Q4_0') throw new ArgumentError(`type must be IQ4_NL or Q4_0, got ${String(type)}`);
  const flatten = options.flatten ?? true;
  const minElements = Math.max(QK, options.minElements ?? 4096);
  const out = resolve(output);
  const ck = await Checkpoint.open(input);
  const native = loadNative();
  const cancel = new Int32Array(1);
  const onAbort = () => { cancel[0] = 1; };
  options.signal?.addEventListener('abort', onAbort);
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    if (options.signal?.aborted) throw new CancelledError('export cancelled', { file: ck.path });
    // Plan: what each tensor becomes, and its size.
    const plan: Planned[] = [];
    const skipped: GgufExportReport['skipped'] = [];
    const taken = new Set<string>();
    const shapes: Record<string, number[]> = {};
    const names: Record<string, string> = {};
    ck.tensors().forEach((t, i) => {
      const shape = t.shape;
      const numel = t.numel;
      let quantize = false, flattened = false;
      let ne = shape.length ? [...shape].reverse() : [1];
      let cols = shape.length ? shape[shape.length - 1] : 1;
      if (isFloatDtype(t.dtype) && numel >= minElements && shape.length >= 2) {
        if (cols % QK === 0) quantize = true;
        else if (flatten && shape.length >= 2 && (numel / shape[0]) % QK === 0) {
          quantize = true;
          flattened = true;
          cols = numel / shape[0];
          ne = [cols, shape[0]];
        }
      }
      let ggType: number;
      let bytes: number;
      if (quantize) {
        ggType = GGML_TYPE[type];
        bytes = (numel / QK) * BLOCK_BYTES;
      } else if (t.dtype in KEEP_TYPE) {
        ggType = KEEP_TYPE[t.dtype];
        bytes = t.byteLength;
      } else {
        skipped.push({ name: t.name, dtype: t.dtype, reason: `GGUF has no ${t.dtype} tensor type` });
        return;
      }
      const ggufName = shortName(t.name, i, taken);
      if (ggufName !== t.name) names[ggufName] = t.name;
      if (flattened) shapes[ggufName] = shape;
      plan.push({ name: t.name, ggufName, dtype: t.dtype, shape, ne, numel, cols, quantize, type: ggType, bytes, flattened });
    });

    // Header, KVs, tensor infos.
    const w = new ByteWriter();
    const kvs: [string, 'str' | 'u32', string | number][] = [
      ['general.architecture', 'str', 'weightpress-export'],
      ['general.name', 'str', options.name ?? basename(ck.path).replace(/\.safetensors$|\.json$/, '')],
      ['general.alignment', 'u32', ALIGNMENT],
      ['general.quantization_version', 'u32', 2],
      ['general.file_type', 'u32', FILE_TYPE[type]],
    ];
    if (Object.keys(shapes).length) kvs.push(['weightpress.original_shapes', 'str', JSON.stringify(shapes)]);
    if (Object.keys(names).length) kvs.push(['weightpress.tensor_names', 'str', JSON.stringify(names)]);
    w.bytes(Buffer.from('GGUF', 'ascii'));
    w.u32(3);
    w.u64(plan.length);
    w.u64(kvs.length);
    for (const [k, kind, v] of kvs) {
      if (kind === 'str') w.kvString(k, v as string);
      else w.kvU32(k, v as number);
    }
    let offset = 0;
    const offsets: number[] = [];
    for (const p of plan) {
      w.str(p.ggufName);
      w.u32(p.ne.length);
      for (const d of p.ne) w.u64(d);
      w.u32(p.type);
      offsets.push(offset);
      w.u64(offset);
      offset = alignUp(offset + p.bytes, ALIGNMENT);
    }
    w.pad(ALIGNMENT);
    const header = w.buffer();

    fh = await open(tmp, 'wx');
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.byteLength) {
        const { bytesWritten } = await fh!.write(b, done, b.byteLength - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await write(header);
    const dataStart = header.length;
    const reports: GgufTensorReport[] = [];
    const fixedTable = Float32Array.from(type === 'IQ4_NL' ? IQ4_NL_VALUES : Q4_0_VALUES);
    const params = { bits: 4, blockSize: QK, scale: 'optimal' as const, table: 'tensor' as const, rounds: 1, packBits: 8, fixedTable, threads: options.threads ?? 0 };
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i];
      if (options.signal?.aborted) throw new CancelledError('export cancelled', { file: ck.path, tensor: p.name });
      const target = dataStart + offsets[i];
      if (pos < target) await write(new Uint8Array(target - pos));
      const raw = ck.bytes(p.name);
      if (!p.quantize) {
        await write(raw);
        reports.push({ name: p.name, ggufName: p.ggufName, dtype: p.dtype, shape: p.shape, ne: p.ne, type: typeName(p.type), quantized: false,
          numel: p.numel, bytes: p.bytes, sse: 0, signal: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: p.numel ? (8 * p.bytes) / p.numel : 0 });
        continue;
      }
      const sz = native.blockSizes(p.numel, p.cols, params);
      const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), table = new Uint8Array(sz.tableBytes);
      const at = new Error();
      let st: NativeBlockStats;
      try {
        st = await native.blockQuantize({ data: raw, dtype: p.dtype, numel: p.numel, cols: p.cols, name: p.name }, params, codes, scales, table, cancel);
      } catch (e) {
        throw fromNative(e, { file: ck.path, tensor: p.name }, at);
      }
      // Repack: per block of 32, the F16 scale then 16 bytes whose low nibbles hold codes 0..15 and high
      // nibbles codes 16..31 (ggml's block_q4_0 / block_iq4_nl).
      const nb = p.numel / QK;
      const blob = new Uint8Array(p.bytes);
      for (let b = 0; b < nb; b++) {
        const o = b * BLOCK_BYTES, c = b * QK;
        blob[o] = scales[2 * b];
        blob[o + 1] = scales[2 * b + 1];
        for (let j = 0; j < 16; j++) blob[o + 2 + j] = codes[c + j] | (codes[c + 16 + j] << 4);
      }
      await write(blob);
      reports.push({ name: p.name, ggufName: p.ggufName, dtype: p.dtype, shape: p.shape, ne: p.ne, type, quantized: true,
        numel: p.numel, bytes: p.bytes, sse: st.sse, signal: st.signal, sqnrDb: st.sse > 0 ? 10 * Math.log10(st.signal / st.sse) : null,
        maxAbsErr: st.maxAbsErr, bitsPerWeight: (8 * p.bytes) / p.numel });
    }
    // The data section ends padded to the alignment too (ggml reads every tensor's padded size).
    if (pos < dataStart + offset) await write(new Uint8Array(dataStart + offset - pos));
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, out);
    let sse = 0, signal = 0, qn = 0, n = 0, mx = 0;
    for (const r of reports) {
      n += r.numel;
      if (r.quantized) { sse += r.sse; signal += r.signal; qn += r.numel; mx = Math.max(mx, r.maxAbsErr); }
    }
    return {
      input: ck.path,
      output: out,
      type,
      tensors: reports,
      skipped,
      total: {
        tensors: reports.length,
        quantizedTensors: reports.filter((r) => r.quantized).length,
        numel: n,
        quantizedNumel: qn,
        sse,
        signal,
        sqnrDb: sse > 0 ? 10 * Math.log10(signal / sse) : null,
        maxAbsErr: mx,
        bitsPerWeight: n ? (8 * pos) / n : 0,
        bytes: pos,
      },
    };
  } catch (e) {
    if (fh) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    if (e instanceof WeightpressError) throw e;
    if (e instanceof Error && typeof (e as NodeJS.ErrnoException).errno === 'number')
      throw new IoError(`cannot write the GGUF file: ${e.message}`, { file: out, cause: e });
    throw fromNative(e, { file: out });
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    ck.close();
  }
}

function typeName(t: number): string {
  for (const [k, v] of Object.entries(GGML_TYPE)) if (v === t) return k;
  return String(t);
}
