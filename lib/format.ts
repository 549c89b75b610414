/**
 * The weightpress file format (docs/FORMAT.md): a safetensors file whose `__metadata__["weightpress"]` holds
 * the scheme of every tensor as JSON. Quantized tensors are stored as a codebook tensor and a packed-codes
 * tensor; kept tensors are stored as they were.
 */
import { createHash } from 'node:crypto';

import { FormatError } from './errors.js';
import { DTYPE_SIZE, isFloatDtype } from './dtype.js';
import type { RuleRef } from './recipe.js';

export const FORMAT_KEY = 'weightpress';
/**
 * The newest format version this code writes and reads. Version 2 (issue #10 §4) adds row offsets (`rowOffset`)
 * and block-format tensors whose blocks run over the flattened tensor (`block.cols` = numel). A file is written as
 * version 1 when none of its entries uses them, so that older readers still read it; version 1 files read as before.
 */
export const FORMAT_VERSION = 2;
/** The versions this reader accepts. */
export const FORMAT_VERSIONS: readonly number[] = [1, 2];

/** The version a file with these entries is written as: the oldest that can describe them. */
export function formatVersionFor(tensors: Record<string, TensorScheme>): number {
  for (const s of Object.values(tensors)) {
    // Read before the entries are checked: anything malformed here is left to the entry's own checks.
    if (!s || typeof s !== 'object' || s.method === 'keep') continue;
    const q = s as QuantizedScheme;
    if (q.rowOffset !== undefined) return 2;
    if (q.block && typeof q.block === 'object' && Array.isArray(q.shape) && q.shape.length >= 2 && q.block.cols !== q.shape.reduce((a, b) => a * b, 1) / q.shape[0]) return 2;
  }
  return 1;
}
/**
 * `__metadata__` key of the scheme's SHA-256 (hex of the UTF-8 bytes of the scheme string). Some parameters of a
 * stored layout do not change its sizes (block scales are padded to 8 bytes, so 5-, 6- and 7-bit double
 * quantization or another super-block can give the same bytes); the digest makes any change to the scheme an
 * E_FORMAT instead of a file decoded under parameters it was not written with. Files without it are read as before.
 */
export const DIGEST_KEY = 'weightpress.sha256';

/** The value of DIGEST_KEY for a scheme string. */
export function schemeDigest(scheme: string): string {
  return createHash('sha256').update(scheme, 'utf8').digest('hex');
}

export interface StoredMetrics {
  mse: number;
  sqnrDb: number | null;
  maxAbsErr: number;
  bitsPerWeight: number;
  bytesIn: number;
  bytesOut: number;
  /** Always 0 in files: timings are not stored, so that the same job gives a byte-identical file. */
  seconds: number;
  /** With entropy coding: the entropy H of the codes and the average code length L, bits per weight. */
  entropy?: number;
  avgCodeLength?: number;
  /** With entropy coding: bytesIn / bytesOut, and Choi et al.'s Eq. 1 (see docs/FORMAT.md). */
  compressionRatio?: number;
  paperCompressionRatio?: number;
  /** Vector codec with a calibration file: tr((W − Ŵ) H (W − Ŵ)ᵀ) after the weight-error clustering and at the end. */
  layerOutputError?: { initial: number; final: number };
  /** lr2vq: the projection's rank dk, and with rank 'auto' each candidate's low-rank and clustering error terms. */
  rank?: { chosen: number; estimate?: { rank: number; lowRank: number; clustering: number }[] };
}

export interface QuantizedScheme {
  /** The codec that wrote it, for codecs added after the scalar and block codecs (storedCodec()). */
  codec?: string;
  method: string;
  bits: number;
  granularity: 'tensor' | 'row' | 'group' | 'network' | 'block';
  groupSize?: number;
  /** granularity 'block' (docs/BLOCK.md): the U8 scales tensor, and the format's parameters. The codebook is
   * the learned table, [tables, K] F32 (one table, or one per row). */
  scales?: string;
  block?: {
    blockSize: number;
    cols: number;
    table: 'tensor' | 'row';
    scale: 'optimal' | 'absmax';
    doubleQuant: { bits: number; superBlock: number; dtype?: 'F16' | 'F32' } | null;
  };
  /** Consecutive elements (row-major) that share one codebook row. */
  sliceSize: number;
  /** Number of codebook rows: ceil(numel / sliceSize). */
  slices: number;
  /** Original dtype and shape. */
  dtype: string;
  shape: number[];
  /** Names of the stored tensors: packed codes, or (with entropy coding) an entropy-coded stream. */
  codes?: string;
  stream?: string;
  /** With `stream`: the coder, and the stream's length in bytes (the tensor may be padded past it). */
  entropy?: 'huffman' | 'ans';
  streamBytes?: number;
  codebook: string;
  codebookDtype: 'F32' | 'F16';
  /** Row-mean preservation (lib/codecs/rowmean.ts, docs/FORMAT.md "Row offsets"): the [rows] tensor of offsets
   * added to each row at decode, and its dtype. Files holding such an entry are format version 2. */
  rowOffset?: string;
  rowOffsetDtype?: 'F16' | 'F32';
  /** A power of two the stored offsets are multiplied by (absent: 1). */
  rowOffsetScale?: number;
  /** Method parameters that shaped the result (seed, symmetric, step ...). */
  params?: Record<string, unknown>;
  metrics: StoredMetrics;
  /** The recipe rule that chose the method and options (lib/recipe.ts): recipe, 1-based rule number (null: default), patterns. */
  rule?: RuleRef;
}

export interface KeptScheme {
  method: 'keep';
  dtype: string;
  shape: number[];
  metrics: StoredMetrics;
  /** A recipe rule with keep: true (lib/recipe.ts). */
  rule?: RuleRef;
}

export type TensorScheme = QuantizedScheme | KeptScheme;

export interface FileScheme {
  format: 'weightpress';
  version: number;
  tensors: Record<string, TensorScheme>;
}

export function codesName(tensor: string): string {
  return `${tensor}.__wp_codes`;
}
export function streamName(tensor: string): string {
  return `${tensor}.__wp_stream`;
}
export function scalesName(tensor: string): string {
  return `${tensor}.__wp_scales`;
}
export function codebookName(tensor: string): string {
  return `${tensor}.__wp_codebook`;
}

/**
 * The codec that wrote an entry: its `codec` field, or for entries written before codecs had names (the two
 * original schemes) 'keep', 'block' or 'scalar' by their fields (docs/FORMAT.md, "Which codec wrote an entry").
 */
export function storedCodec(s: TensorScheme): string {
  if (s.method === 'keep') return 'keep';
  const q = s as QuantizedScheme;
  return q.codec ?? (q.granularity === 'block' ? 'block' : 'scalar');
}

export function isQuantized(s: TensorScheme): s is QuantizedScheme {
  return s.method !== 'keep';
}

const METRIC_NUMBERS = ['mse', 'maxAbsErr', 'bitsPerWeight', 'bytesIn', 'bytesOut', 'seconds'] as const;
const OPTIONAL_METRICS = ['entropy', 'avgCodeLength', 'compressionRatio', 'paperCompressionRatio'] as const;

/** Checks an entry's stored metrics: an object of numbers (sqnrDb a number or null), as quantize writes them. */
function checkMetrics(m: unknown, bad: (p: string) => Error): void {
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw bad('metrics must be an object');
  const r = m as Record<string, unknown>;
  for (const k of METRIC_NUMBERS) if (typeof r[k] !== 'number') throw bad(`metrics.${k} must be a number, got ${JSON.stringify(r[k])}`);
  if (r.sqnrDb !== null && typeof r.sqnrDb !== 'number') throw bad(`metrics.sqnrDb must be a number or null, got ${JSON.stringify(r.sqnrDb)}`);
  for (const k of OPTIONAL_METRICS) if (r[k] !== undefined && typeof r[k] !== 'number') throw bad(`metrics.${k} must be a number, got ${JSON.stringify(r[k])}`);
}

/** Reads and checks the scheme of a weightpress file; a FormatError names the file and the tensor. */
export function parseScheme(metadata: Record<string, string>, file: string): FileScheme {
  const raw = metadata[FORMAT_KEY];
  if (raw === undefined) throw new FormatError(`not a weightpress file: __metadata__ has no "${FORMAT_KEY}" entry`, { file });
  const digest = metadata[DIGEST_KEY];
  if (digest !== undefined && digest !== schemeDigest(raw))
    throw new FormatError(`the weightpress scheme does not match its SHA-256 (${DIGEST_KEY}): the scheme or the digest was changed after writing`, { file });
  let s: FileScheme;
  try {
    s = JSON.parse(raw);
  } catch (e) {
    throw new FormatError(`weightpress scheme is not valid JSON: ${(e as Error).message}`, { file });
  }
  if (!s || s.format !== 'weightpress' || typeof s.tensors !== 'object' || s.tensors === null)
    throw new FormatError('weightpress scheme lacks format/tensors', { file });
  if (!FORMAT_VERSIONS.includes(s.version)) throw new FormatError(`weightpress format version ${s.version} is not supported (this reader knows ${FORMAT_VERSIONS.join(' and ')})`, { file });
  if (s.version < formatVersionFor(s.tensors as Record<string, TensorScheme>)) throw new FormatError(`weightpress format version ${s.version} cannot hold row offsets or blocks across rows (version 2)`, { file });
  if (Array.isArray(s.tensors)) throw new FormatError('weightpress scheme: tensors must be an object', { file });
  for (const [name, t] of Object.entries(s.tensors as Record<string, TensorScheme>)) {
    const bad = (p: string) => new FormatError(`scheme: ${p}`, { file, tensor: name });
    if (!t || typeof t !== 'object' || Array.isArray(t)) throw bad('entry is not an object');
    if (typeof (t as { method: unknown }).method !== 'string') throw bad(`method must be a string, got ${JSON.stringify(t.method)}`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad('shape must be an array of non-negative integers');
    if (!Number.isSafeInteger(t.shape.reduce((a: number, d: number) => a * d, 1))) throw bad(`shape ${JSON.stringify(t.shape)} has more elements than any file holds`);
    if (typeof t.dtype !== 'string' || DTYPE_SIZE[t.dtype] === undefined) throw bad(`unknown dtype ${JSON.stringify(t.dtype)}`);
    checkMetrics(t.metrics, bad);
    const rule = t.rule as unknown;
    if (rule !== undefined) {
      const r = rule as Partial<RuleRef>;
      if (!r || typeof r !== 'object' || typeof r.recipe !== 'string' || !(r.index === null || Number.isSafeInteger(r.index)) || !Array.isArray(r.match) || r.match.some((p) => typeof p !== 'string'))
        throw bad(`rule must be {recipe: string, index: integer or null, match: [patterns]}, got ${JSON.stringify(rule)}`);
    }
    if (!isQuantized(t)) continue;
    if (!isFloatDtype(t.dtype)) throw bad(`quantized tensor has non-float dtype ${t.dtype}`);
    if (!Number.isInteger(t.bits) || t.bits < 1 || t.bits > 16) throw bad(`bits must be 1-16, got ${t.bits}`);
    if (!Number.isInteger(t.sliceSize) || t.sliceSize < 1) throw bad('sliceSize must be a positive integer');
    // The rest is the codec's (lib/codecs/): its fields, sizes and stored tensors.
  }
  return s;
}
