/**
 * GGUF export (ggml's file format, version 3; docs/BLOCK.md): a checkpoint's float tensors quantized to one of
 * llama.cpp's block types, the other tensors kept as they are:
 * - IQ4_NL (blocks of 32, one F16 scale, the fixed 16-level table kvalues_iq4nl) and Q4_0 (blocks of 32, one F16
 *   scale, levels -8..7): blockQuantize with the fixed table and an MSE-optimal scale search per block;
 * - the K-quants Q4_K, Q5_K, Q6_K (super-blocks of 256) and Q8_0, Q5_0, Q5_1 (blocks of 32): llama.cpp's own
 *   quantizers (native/core/kquants.cpp, after ggml-quants.c's quantize_row_*_ref, and quantize_row_*_impl when
 *   an importance matrix is given), so the export loses what llama-quantize loses.
 * Importance (an imatrix from llama-imatrix, or a safetensors importance file) weights every quantizer's error as
 * llama.cpp weights it. A tensor whose rows are not a multiple of the type's block falls back as llama.cpp's
 * llama_tensor_get_type does: Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, and rows that are not a multiple of 32
 * either to F16 (an F32/F64 tensor; one beyond F16's range to BF16; F16 and BF16 tensors stay as they are).
 * The report says what each tensor became and how much SQNR it lost.
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
import type { TensorRef } from './checkpoint.js';
import { importanceFor } from './codecs/codes.js';
import { ArgumentError, DtypeError, FormatError, WeightpressError, fromNative } from './errors.js';
import { Importance } from './importance.js';
import { Cancel, reportProgress } from './job.js';
import { refuseQuantized } from './plan.js';
import { ensureDir } from './shards.js';
import { forceOf, intIn, type ImportanceKind, type Progress } from './validate.js';
import { loadNative } from './load.js';
import { isFloatDtype } from './dtype.js';
import type { NativeBlockStats } from './native.js';

// ----- GGUF -----

/** llama.cpp's IQ4_NL levels (kvalues_iq4nl). */
export const IQ4_NL_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
/** Q4_0's levels: code q decodes to (q - 8) x d. */
export const Q4_0_VALUES: readonly number[] = Array.from({ length: 16 }, (_, i) => i - 8);

export type GgufQuantType = 'IQ4_NL' | 'Q4_0' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_0' | 'Q5_0' | 'Q5_1';

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
  /** Q4_0 / IQ4_NL: the fixed table blockQuantize fills; the others run llama.cpp's quantizers (ggufQuantize). */
  table?: readonly number[];
  fileType: number;
  /** llama_tensor_get_type's fallback for rows that are not a multiple of the block. */
  fallback?: GgufQuantType;
}
export const GGUF_QUANT_TYPES: readonly GgufQuantRow[] = [
  { name: 'Q4_0', id: 2, blockSize: 32, blockBytes: 18, table: Q4_0_VALUES, fileType: 2 }, // LLAMA_FTYPE_MOSTLY_Q4_0
  { name: 'IQ4_NL', id: 20, blockSize: 32, blockBytes: 18, table: IQ4_NL_VALUES, fileType: 25 }, // LLAMA_FTYPE_MOSTLY_IQ4_NL
  { name: 'Q4_K', id: 12, blockSize: 256, blockBytes: 144, fileType: 14, fallback: 'Q5_0' }, // LLAMA_FTYPE_MOSTLY_Q4_K_S
  { name: 'Q5_K', id: 13, blockSize: 256, blockBytes: 176, fileType: 16, fallback: 'Q5_1' }, // LLAMA_FTYPE_MOSTLY_Q5_K_S
  { name: 'Q6_K', id: 14, blockSize: 256, blockBytes: 210, fileType: 18, fallback: 'Q8_0' }, // LLAMA_FTYPE_MOSTLY_Q6_K
  { name: 'Q8_0', id: 8, blockSize: 32, blockBytes: 34, fileType: 7 }, // LLAMA_FTYPE_MOSTLY_Q8_0
  { name: 'Q5_0', id: 6, blockSize: 32, blockBytes: 22, fileType: 8 }, // LLAMA_FTYPE_MOSTLY_Q5_0
  { name: 'Q5_1', id: 7, blockSize: 32, blockBytes: 24, fileType: 9 }, // LLAMA_FTYPE_MOSTLY_Q5_1
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
  /** The block type of the quantized tensors (rows that do not fit its block fall back; see the module comment). */
  type: GgufQuantType;
  /**
   * A llama.cpp importance matrix (llama-imatrix's GGUF or legacy .dat; lib/imatrix.ts): the quantizers weight
   * each weight's error as llama-quantize --imatrix does. Tensors it has no entry for are quantized without
   * (report.warnings names them).
   */
  imatrix?: string;
  /** Or a safetensors importance file (docs/IMPORTANCE.md), read as quantize() reads it. */
  importance?: string;
  /** How to read `importance` (default 'hessian'). */
  importanceKind?: ImportanceKind;
  /** Name rules "FROM=>TO" (FROM a regex) from a checkpoint tensor's name to its importance / imatrix entry name. */
  importanceMap?: string[];
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
  /** Why the tensor is not of the export's type though it was to be quantized (llama.cpp's fallback rule). */
  fallback?: string;
  /** Whether an importance (imatrix) weighted its quantization. */
  importance?: boolean;
  maxAbsErr: number;
  bitsPerWeight: number;
}

export interface GgufExportReport {
  input: string;
  output: string;
  type: GgufQuantType;
  tensors: GgufTensorReport[];
  skipped: { name: string; dtype: string; reason: string }[];
  /** Things to know: tensors without importance, fallbacks to BF16. */
  warnings: string[];
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
  /** The block type it is quantized to, or undefined (kept, or converted to F16). */
  row?: GgufQuantRow;
  /** Converted to F16 (a fallback for rows no block fits). */
  toF16: boolean;
  type: number;
  bytes: number;
  flattened: boolean;
  fallback?: string;
  ref: TensorRef;
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
 * their rows allow (or to its fallback), and returns the SQNR the export costs per tensor and in total.
 * Throws ArgumentError (bad options), FormatError / IoError (a bad input, importance or imatrix file),
 * NonFiniteError (a NaN/Inf weight), OverflowError (a block scale beyond F16), CancelledError.
 */
export async function exportGguf(input: string, output: string, options: GgufExportOptions): Promise<GgufExportReport> {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('option options: must be an object');
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k)) throw new ArgumentError(`option ${k}: unknown export-gguf option (known: ${KNOWN.join(', ')})`);
  const main = GGUF_QUANT_TYPES.find((r) => r.name === options.type);
  if (!main) throw new ArgumentError(`option type: must be one of ${GGUF_QUANT_TYPES.map((r) => r.name).join(', ')}, got ${JSON.stringify(options.type)}`);
  const type = main.name;
  const chain = [main, ...(main.fallback ? [GGUF_QUANT_TYPES.find((r) => r.name === main.fallback)!] : [])];
  const flatten = options.flatten ?? true;
  const minElements = Math.max(32, intIn('minElements', options.minElements ?? 4096, 0, Number.MAX_SAFE_INTEGER));
  const threads = intIn('threads', options.threads ?? 0, 0, 1024);
  const strict = forceOf(options.strict, 'strict');
  const force = forceOf(options.force);
  if (options.imatrix !== undefined && options.importance !== undefined) throw new ArgumentError('option imatrix: give importance or imatrix, not both');
  for (const k of ['imatrix', 'importance'] as const)
    if (options[k] !== undefined && (typeof options[k] !== 'string' || options[k] === '')) throw new ArgumentError(`option ${k}: must be a file path`);
  const kind = options.importanceKind ?? 'hessian';
  if (!['hessian', 'fisher', 'adam-v'].includes(kind)) throw new ArgumentError(`option importanceKind: must be one of hessian, fisher, adam-v, got ${JSON.stringify(kind)}`);
  const map = options.importanceMap ?? [];
  if (!Array.isArray(map) || map.some((r) => typeof r !== 'string' || !r.includes('=>'))) throw new ArgumentError('option importanceMap: must be an array of FROM=>TO rules');
  const ck = await Checkpoint.open(input);
  const native = loadNative();
  const cancel = new Cancel(options.signal);
  let file: AtomicFile | undefined;
  let importance: Importance | undefined;
  try {
    cancel.check(ck.path);
    refuseQuantized(ck);
    if (options.imatrix !== undefined) importance = await Importance.openImatrix(options.imatrix, map);
    else if (options.importance !== undefined) importance = await Importance.open(options.importance, kind, map);
    // A directory (an existing one, or a path ending in "/") gets "<input name>.gguf".
    const defaultName = basename(ck.path).replace(/\.safetensors$|\.json$/, '').replace(/\.safetensors$/, '');
    const out = /[\\/]$/.test(output) || isDirectory(output) ? join(resolve(output), `${defaultName || 'model'}.gguf`) : resolve(output);
    const inputs = [ck.path, ...ck.files, ...(importance ? [importance.file] : [])];
    const [target] = checkOutputs([out], inputs, force);
    removeStaleTemps(dirname(target));
    // Plan: what each tensor becomes, and its size.
    const plan: Planned[] = [];
    const skipped: GgufExportReport['skipped'] = [];
    const warnings: string[] = [];
    const taken = new Set<string>();
    const shapes: Record<string, number[]> = {};
    const names: Record<string, string> = {};
    ck.tensors().forEach((t, i) => {
      const shape = t.shape;
      const numel = t.numel;
      let row: GgufQuantRow | undefined;
      let flattened = false, toF16 = false;
      let fallback: string | undefined;
      let ne = shape.length ? [...shape].reverse() : [1];
      let cols = shape.length ? shape[shape.length - 1] : 1;
      if (isFloatDtype(t.dtype) && numel >= minElements && shape.length >= 2) {
        const flat = numel / shape[0];
        for (const r of chain) {
          if (cols % r.blockSize === 0) row = r;
          else if (flatten && flat % r.blockSize === 0) {
            row = r;
            flattened = true;
            cols = flat;
            ne = [cols, shape[0]];
          }
          if (row) break;
        }
        if (row !== main)
          fallback = `rows of ${shape[shape.length - 1]}${flatten && flat !== shape[shape.length - 1] ? ` (or ${flat} flattened)` : ''} weights are not a multiple of ${main.name}'s block of ${main.blockSize}`;
        if (!row) {
          // llama.cpp's last resort is F16; an F16 or BF16 tensor is kept as it is (as small, and lossless).
          toF16 = t.dtype === 'F32' || t.dtype === 'F64';
          fallback += toF16 ? ': F16, as llama.cpp does' : `: kept as ${t.dtype}`;
        } else if (row !== main) fallback += `: ${row.name}, as llama.cpp does`;
      }
      let ggType: number;
      let bytes: number;
      const plain = GGUF_PLAIN_TYPES.find((r) => r.dtype === t.dtype);
      if (row) {
        ggType = row.id;
        bytes = (numel / row.blockSize) * row.blockBytes;
      } else if (toF16) {
        ggType = GGML_TYPE.F16;
        bytes = 2 * numel;
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
      plan.push({ name: t.name, ggufName, dtype: t.dtype, shape, ne, numel, cols, row, toF16, type: ggType, bytes, flattened, fallback, ref: t });
    });
    if (strict && skipped.length)
      throw new DtypeError(`GGUF has no type for ${skipped.length} of ${ck.tensors().length} tensors: ${skipped.map((x) => `"${x.name}" (${x.dtype})`).join(', ')} (without strict they are dropped)`, { file: ck.path });
    // An F32 tensor beyond F16's range cannot take the F16 fallback: BF16 (same size, F32's range) instead.
    for (const p of plan) {
      if (!p.toF16) continue;
      const x = await toF32(native, ck.bytes(p.name), p.dtype, p.name, ck.path);
      if (x.some((v) => Math.abs(v) > 65504)) {
        p.toF16 = false;
        p.type = GGML_TYPE.BF16;
        p.fallback = p.fallback!.replace(': F16, as llama.cpp does', ": BF16 (values beyond F16's range)");
        warnings.push(`tensor "${p.name}": values beyond F16's range; stored as BF16 instead of llama.cpp's F16 fallback`);
      }
    }

    // Header, KVs, tensor infos.
    const w = new ByteWriter();
    const kvs: [string, 'str' | 'u32', string | number][] = [
      ['general.architecture', 'str', 'weightpress-export'],
      ['general.name', 'str', options.name ?? basename(ck.path).replace(/\.safetensors$|\.json$/, '')],
      ['general.alignment', 'u32', ALIGNMENT],
      ['general.quantization_version', 'u32', 2],
      ['general.file_type', 'u32', main.fileType],
    ];
    if (Object.keys(shapes).length) kvs.push(['weightpress.original_shapes', 'str', JSON.stringify(shapes)]);
    if (Object.keys(names).length) kvs.push(['weightpress.tensor_names', 'str', JSON.stringify(names)]);
    if (options.imatrix !== undefined) kvs.push(['quantize.imatrix.file', 'str', basename(options.imatrix)]);
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
      const base = { name: p.name, ggufName: p.ggufName, dtype: p.dtype, shape: p.shape, ne: p.ne, numel: p.numel, bytes: p.bytes, bitsPerWeight: p.numel ? (8 * p.bytes) / p.numel : 0, ...(p.fallback ? { fallback: p.fallback } : {}) };
      if (!p.row) {
        let blob: Uint8Array = raw;
        let st = { sse: 0, signal: 0, maxAbsErr: 0 };
        const converted = p.type !== GGUF_PLAIN_TYPES.find((r) => r.dtype === p.dtype)?.id;
        if (converted) {
          const to = p.type === GGML_TYPE.F16 ? 'F16' : 'BF16';
          blob = new Uint8Array(p.bytes);
          await convert(native, raw, p.dtype, to, blob, p.name, ck.path);
          st = errorOf(await toF32(native, raw, p.dtype, p.name, ck.path), await toF32(native, blob, to, p.name, ck.path));
        }
        ck.check();
        await write(blob);
        reports.push({ ...base, type: typeName(p.type), quantized: false, ...st, sqnrDb: st.sse > 0 ? 10 * Math.log10(st.signal / st.sse) : null });
        progress(p, i);
        continue;
      }
      const imp = importance ? await importanceFor({ importance, warnings }, p.ref) : undefined;
      const at = new Error();
      let st: { sse: number; signal: number; maxAbsErr: number };
      let blob: Uint8Array;
      try {
        if (p.row.table) {
          ({ st, blob } = await fixedTableBlocks(native, p, raw, imp, threads, cancel.flag));
        } else {
          blob = new Uint8Array(p.bytes);
          st = await native.ggufQuantize({ data: raw, dtype: p.dtype, numel: p.numel, cols: p.cols, name: p.name, importance: imp }, p.row.id, blob, threads, cancel.flag);
        }
      } catch (e) {
        throw fromNative(e, { file: ck.path, tensor: p.name }, at);
      }
      ck.check(); // what was read is only good if the input did not shrink meanwhile
      await write(blob);
      reports.push({ ...base, type: p.row.name, quantized: true, sse: st.sse, signal: st.signal, sqnrDb: st.sse > 0 ? 10 * Math.log10(st.signal / st.sse) : null,
        maxAbsErr: st.maxAbsErr, ...(importance ? { importance: imp !== undefined } : {}) });
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
      if (r.quantized || r.sse > 0) { sse += r.sse; signal += r.signal; mx = Math.max(mx, r.maxAbsErr); }
      if (r.quantized) qn += r.numel;
    }
    return {
      input: ck.path,
      output: f.path,
      type,
      tensors: reports,
      skipped,
      warnings,
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
    importance?.close();
    ck.close();
  }
}

type Native = ReturnType<typeof loadNative>;

/** Q4_0 / IQ4_NL: blockQuantize with the fixed table, repacked per block of 32: the F16 scale then 16 bytes whose
 *  low nibbles hold codes 0..15 and high nibbles codes 16..31 (ggml's block_q4_0 / block_iq4_nl). */
async function fixedTableBlocks(native: Native, p: Planned, raw: Uint8Array, importance: Float32Array | undefined, threads: number, flag: Int32Array) {
  const row = p.row!;
  const QK = row.blockSize;
  const params = { bits: 4, blockSize: QK, scale: 'optimal' as const, table: 'tensor' as const, rounds: 1, packBits: 8, fixedTable: Float32Array.from(row.table!), threads };
  const sz = native.blockSizes(p.numel, p.cols, params);
  const codes = new Uint8Array(sz.codesBytes), scales = new Uint8Array(sz.scalesBytes), table = new Uint8Array(sz.tableBytes);
  const st: NativeBlockStats = await native.blockQuantize({ data: raw, dtype: p.dtype, numel: p.numel, cols: p.cols, name: p.name, importance }, params, codes, scales, table, flag);
  const nb = p.numel / QK;
  const blob = new Uint8Array(p.bytes);
  for (let b = 0; b < nb; b++) {
    const o = b * row.blockBytes, c = b * QK;
    blob[o] = scales[2 * b];
    blob[o + 1] = scales[2 * b + 1];
    for (let j = 0; j < QK / 2; j++) blob[o + 2 + j] = codes[c + j] | (codes[c + QK / 2 + j] << 4);
  }
  return { st, blob };
}

async function convert(native: Native, data: Uint8Array, from: string, to: string, out: Uint8Array, tensor: string, file: string): Promise<void> {
  const at = new Error();
  try {
    await native.convert(data, from, to, out, tensor);
  } catch (e) {
    throw fromNative(e, { file, tensor }, at);
  }
}

async function toF32(native: Native, data: Uint8Array, dtype: string, tensor: string, file: string): Promise<Float32Array> {
  const out = new Float32Array(data.byteLength / ({ F64: 8, F32: 4, F16: 2, BF16: 2 } as Record<string, number>)[dtype]);
  await convert(native, data, dtype, 'F32', new Uint8Array(out.buffer), tensor, file);
  return out;
}

function errorOf(x: Float32Array, y: Float32Array) {
  let sse = 0, signal = 0, maxAbsErr = 0;
  for (let i = 0; i < x.length; i++) {
    const e = y[i] - x[i];
    sse += e * e;
    signal += x[i] * x[i];
    maxAbsErr = Math.max(maxAbsErr, Math.abs(e));
  }
  return { sse, signal, maxAbsErr };
}

/**
 * Decodes `numel` values of a GGUF tensor's data of block type `type` (one of GGUF_QUANT_TYPES) to F32, as ggml's
 * dequantize_row_* do: weightpress's own reader of what exportGguf writes. FormatError when `data` is short.
 */
export async function dequantizeGguf(type: GgufQuantType, data: Uint8Array, numel: number, threads = 0): Promise<Float32Array> {
  const row = GGUF_QUANT_TYPES.find((r) => r.name === type);
  if (!row) throw new ArgumentError(`type: must be one of ${GGUF_QUANT_TYPES.map((r) => r.name).join(', ')}, got ${JSON.stringify(type)}`);
  if (!Number.isInteger(numel) || numel < 0 || numel % row.blockSize) throw new ArgumentError(`numel: ${numel} is not a multiple of ${type}'s block of ${row.blockSize}`);
  const nb = numel / row.blockSize;
  if (data.byteLength < nb * row.blockBytes) throw new FormatError(`${type} data of ${data.byteLength} bytes is too short for ${numel} values (${nb * row.blockBytes} bytes)`);
  const out = new Float32Array(numel);
  if (row.table) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let b = 0; b < nb; b++) {
      const o = b * row.blockBytes;
      const d = f16ToF32(dv.getUint16(o, true));
      for (let j = 0; j < 16; j++) {
        const q = data[o + 2 + j];
        out[b * 32 + j] = Math.fround(d * row.table[q & 15]);
        out[b * 32 + j + 16] = Math.fround(d * row.table[q >> 4]);
      }
    }
    return out;
  }
  await loadNative().ggufDequantize(row.id, data, numel, out, threads);
  return out;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const KNOWN = ['type', 'name', 'imatrix', 'importance', 'importanceKind', 'importanceMap', 'flatten', 'minElements', 'threads', 'signal', 'strict', 'force', 'onProgress'];

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
