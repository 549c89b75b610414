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
 * The file is written unnamed next to the output and linked into place at the end (lib/atomic.ts).
 */
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { AtomicFile, checkOutputs, removeStaleTemps } from './atomic.js';
import { Checkpoint } from './checkpoint.js';
import { ArgumentError, DtypeError, WeightpressError, fromNative } from './errors.js';
import { Cancel, reportProgress } from './job.js';
import { refuseQuantized } from './plan.js';
import { ensureDir } from './shards.js';
import { forceOf, intIn, type Progress } from './validate.js';
import { loadNative } from './load.js';
import { isFloatDtype } from './dtype.js';
import type { NativeBlockStats } from './native.js';

// ----- GGUF -----

/** llama.cpp's IQ4_NL levels (kvalues_iq4nl). */
export const IQ4_NL_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
/** Q4_0's levels: code q decodes to (q - 8) x d. */
export const Q4_0_VALUES: readonly number[] = Array.from({ length: 16 }, (_, i) => i - 8);

export type GgufQuantType = 'IQ4_NL' | 'Q4_0';

/**
 * ggml tensor types, one row each (ggml's type_traits; ids from ggml.h's enum ggml_type). Quantized rows give the
 * block layout and how weightpress fills it: blocks of `blockSize` weights stored in `blockBytes` bytes (an F16
 * scale then 16 bytes of nibbles: codes 0..15 of the block in the low nibbles, 16..31 in the high ones, as
 * ggml-common.h's block_q4_0 / block_iq4_nl), the fixed 16-level table the scale multiplies, and the llama_ftype
 * of a file of that type. Kept rows name the safetensors dtype they store.
 */
interface GgufQuantRow {
  name: GgufQuantType;
  id: number;
  blockSize: number;
  blockBytes: number;
  table: readonly number[];
  fileType: number;
}
export const GGUF_QUANT_TYPES: readonly GgufQuantRow[] = [
  { name: 'Q4_0', id: 2, blockSize: 32, blockBytes: 18, table: Q4_0_VALUES, fileType: 2 }, // LLAMA_FTYPE_MOSTLY_Q4_0
  { name: 'IQ4_NL', id: 20, blockSize: 32, blockBytes: 18, table: IQ4_NL_VALUES, fileType: 25 }, // LLAMA_FTYPE_MOSTLY_IQ4_NL
];
export const GGUF_PLAIN_TYPES: readonly { name: string; id: number; dtype: string }[] = [
  { name: 'F32', id: 0, dtype: 'F32' },
  { name: 'F16', id: 1, dtype: 'F16' },
  { name: 'I8', id: 24, dtype: 'I8' },
  { name: 'I16', id: 25, dtype: 'I16' },
  { name: 'I32', id: 26, dtype: 'I32' },
  { name: 'I64', id: 27, dtype: 'I64' },
  { name: 'F64', id: 28, dtype: 'F64' },
  { name: 'BF16', id: 30, dtype: 'BF16' },
];
/** Type ids by name (both tables). */
export const GGML_TYPE: Readonly<Record<string, number>> = Object.fromEntries([...GGUF_QUANT_TYPES, ...GGUF_PLAIN_TYPES].map((r) => [r.name, r.id]));
const ALIGNMENT = 32;
const MAX_NAME = 63; // GGML_MAX_NAME (64) including the terminating zero

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
  /**
   * Refuse (DtypeError naming every one) to drop tensors GGUF has no type for (F8, BOOL, U8, ...); default false:
   * they are dropped and listed in the report's `skipped`.
   */
  strict?: boolean;
  /** Let the output replace an input file (default false: refused). */
  force?: boolean;
  /** Called after each tensor is written (phase 'export'). */
  onProgress?: (p: Progress) => void;
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
  if (typeof options !== 'object' || options === null) throw new ArgumentError('option options: must be an object');
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k)) throw new ArgumentError(`option ${k}: unknown export-gguf option (known: ${KNOWN.join(', ')})`);
  const row = GGUF_QUANT_TYPES.find((r) => r.name === options.type);
  if (!row) throw new ArgumentError(`option type: must be one of ${GGUF_QUANT_TYPES.map((r) => r.name).join(', ')}, got ${JSON.stringify(options.type)}`);
  const type = row.name;
  const QK = row.blockSize;
  const flatten = options.flatten ?? true;
  const minElements = Math.max(QK, intIn('minElements', options.minElements ?? 4096, 0, Number.MAX_SAFE_INTEGER));
  const threads = intIn('threads', options.threads ?? 0, 0, 1024);
  const strict = forceOf(options.strict, 'strict');
  const force = forceOf(options.force);
  const ck = await Checkpoint.open(input);
  const native = loadNative();
  const cancel = new Cancel(options.signal);
  let file: AtomicFile | undefined;
  try {
    cancel.check(ck.path);
    refuseQuantized(ck);
    // A directory (an existing one, or a path ending in "/") gets "<input name>.gguf".
    const defaultName = basename(ck.path).replace(/\.safetensors$|\.json$/, '').replace(/\.safetensors$/, '');
    const out = /[\\/]$/.test(output) || isDirectory(output) ? join(resolve(output), `${defaultName || 'model'}.gguf`) : resolve(output);
    const [target] = checkOutputs([out], [ck.path, ...ck.files], force);
    removeStaleTemps(dirname(target));
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
      const plain = GGUF_PLAIN_TYPES.find((r) => r.dtype === t.dtype);
      if (quantize) {
        ggType = row.id;
        bytes = (numel / QK) * row.blockBytes;
      } else if (plain) {
        ggType = plain.id;
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
    if (strict && skipped.length)
      throw new DtypeError(`GGUF has no type for ${skipped.length} of ${ck.tensors().length} tensors: ${skipped.map((x) => `"${x.name}" (${x.dtype})`).join(', ')} (without strict they are dropped)`, { file: ck.path });

    // Header, KVs, tensor infos.
    const w = new ByteWriter();
    const kvs: [string, 'str' | 'u32', string | number][] = [
      ['general.architecture', 'str', 'weightpress-export'],
      ['general.name', 'str', options.name ?? basename(ck.path).replace(/\.safetensors$|\.json$/, '')],
      ['general.alignment', 'u32', ALIGNMENT],
      ['general.quantization_version', 'u32', 2],
      ['general.file_type', 'u32', row.fileType],
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

    if (/[\\/]$/.test(output)) ensureDir(dirname(target));
    file = await AtomicFile.create(target);
    const f = file;
    const write = (b: Uint8Array) => f.write(b);
    await write(header);
    const dataStart = header.length;
    const reports: GgufTensorReport[] = [];
    const fixedTable = Float32Array.from(row.table);
    const params = { bits: 4, blockSize: QK, scale: 'optimal' as const, table: 'tensor' as const, rounds: 1, packBits: 8, fixedTable, threads };
    const bytesTotal = plan.reduce((a, p) => a + p.bytes, 0);
    let bytesDone = 0;
    const progress = (p: Planned, i: number) => {
      bytesDone += p.bytes;
      reportProgress(options.onProgress, { phase: 'export', tensor: p.name, index: i + 1, count: plan.length, bytesDone, bytesTotal });
    };
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i];
      cancel.check(ck.path);
      const target = dataStart + offsets[i];
      if (f.position < target) await write(new Uint8Array(target - f.position));
      const raw = ck.bytes(p.name);
      if (!p.quantize) {
        await write(raw);
        ck.check();
        reports.push({ name: p.name, ggufName: p.ggufName, dtype: p.dtype, shape: p.shape, ne: p.ne, type: typeName(p.type), quantized: false,
          numel: p.numel, bytes: p.bytes, sse: 0, signal: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: p.numel ? (8 * p.bytes) / p.numel : 0 });
        progress(p, i);
        continue;
      }
      const sz = native.blockSizes(p.numel, p.cols, params);
      const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), table = new Uint8Array(sz.tableBytes);
      const at = new Error();
      let st: NativeBlockStats;
      try {
        st = await native.blockQuantize({ data: raw, dtype: p.dtype, numel: p.numel, cols: p.cols, name: p.name }, params, codes, scales, table, cancel.flag);
      } catch (e) {
        throw fromNative(e, { file: ck.path, tensor: p.name }, at);
      }
      // Repack: per block of 32, the F16 scale then 16 bytes whose low nibbles hold codes 0..15 and high
      // nibbles codes 16..31 (ggml's block_q4_0 / block_iq4_nl).
      const nb = p.numel / QK;
      const blob = new Uint8Array(p.bytes);
      for (let b = 0; b < nb; b++) {
        const o = b * row.blockBytes, c = b * QK;
        blob[o] = scales[2 * b];
        blob[o + 1] = scales[2 * b + 1];
        for (let j = 0; j < QK / 2; j++) blob[o + 2 + j] = codes[c + j] | (codes[c + QK / 2 + j] << 4);
      }
      ck.check(); // what was read is only good if the input did not shrink meanwhile
      await write(blob);
      reports.push({ name: p.name, ggufName: p.ggufName, dtype: p.dtype, shape: p.shape, ne: p.ne, type, quantized: true,
        numel: p.numel, bytes: p.bytes, sse: st.sse, signal: st.signal, sqnrDb: st.sse > 0 ? 10 * Math.log10(st.signal / st.sse) : null,
        maxAbsErr: st.maxAbsErr, bitsPerWeight: (8 * p.bytes) / p.numel });
      progress(p, i);
    }
    // The data section ends padded to the alignment too (ggml reads every tensor's padded size).
    if (f.position < dataStart + offset) await write(new Uint8Array(dataStart + offset - f.position));
    cancel.check(ck.path);
    ck.check();
    const pos = f.position;
    await f.finish();
    let sse = 0, signal = 0, qn = 0, n = 0, mx = 0;
    for (const r of reports) {
      n += r.numel;
      if (r.quantized) { sse += r.sse; signal += r.signal; qn += r.numel; mx = Math.max(mx, r.maxAbsErr); }
    }
    return {
      input: ck.path,
      output: f.path,
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
    await file?.abort();
    const shrunk = ck.failure();
    if (shrunk) throw shrunk;
    if (e instanceof WeightpressError) throw e;
    throw fromNative(e, { file: file?.path ?? output });
  } finally {
    cancel.dispose();
    ck.close();
  }
}

const KNOWN = ['type', 'name', 'flatten', 'minElements', 'threads', 'signal', 'strict', 'force', 'onProgress'];

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function typeName(t: number): string {
  for (const [k, v] of Object.entries(GGML_TYPE)) if (v === t) return k;
  return String(t);
}
