/** The plan: which tensors are quantized (and how they are sliced), which are kept as they are. */
import type { TensorRef } from './checkpoint.js';
import { DTYPE_SIZE, isFloatDtype } from './dtype.js';
import { codebookName, codesName, scalesName, streamName } from './format.js';
import { FormatError } from './errors.js';
import { loadNative } from './load.js';
import { findMethod } from './methods/registry.js';
import type { NativeBlockParams, NativeBlockSizes } from './native.js';
import { compilePattern, type Granularity, type ResolvedQuantizeOptions } from './validate.js';

export interface QuantizeStep {
  kind: 'quantize';
  tensor: TensorRef;
  /** The options' granularity, or 'row' where 'block' cannot tile the rows. */
  granularity: Granularity;
  sliceSize: number;
  slices: number;
  levels: number;
  codebookBytes: number;
  codesBytes: number;
}
export interface BlockStep {
  kind: 'block';
  tensor: TensorRef;
  cols: number;
  sizes: NativeBlockSizes;
}
export interface KeepStep {
  kind: 'keep';
  tensor: TensorRef;
}
export type Step = QuantizeStep | BlockStep | KeepStep;

/** Bytes of the packed codes of n codes of `bits` bits. */
export function codeBytes(n: number, bits: number): number {
  return Math.ceil((n * bits) / 8);
}

export function sliceSizeOf(t: TensorRef, o: Pick<ResolvedQuantizeOptions, 'granularity' | 'groupSize'>): number {
  if (o.granularity === 'tensor' || o.granularity === 'network') return Math.max(1, t.numel);
  if (o.granularity === 'group') return o.groupSize;
  const rows = t.shape.length ? t.shape[0] : 1;
  return Math.max(1, rows ? t.numel / rows : 1);
}

/** The native parameters of the block format for these options. */
export function blockParams(o: ResolvedQuantizeOptions, dtypeBits = 32): NativeBlockParams {
  const m = findMethod(o.method)!;
  const rate = o.rate ?? (o.compressionRatio !== undefined ? Math.min(8, dtypeBits / o.compressionRatio) : undefined);
  return {
    bits: o.bits, blockSize: o.blockSize, scale: o.scale, table: o.table, solver: m.solver(o), rounds: o.rounds,
    doubleQuant: o.doubleQuant ? { bits: o.doubleQuant.bits, superBlock: o.doubleQuant.superBlock } : null,
    seed: o.seed, maxIter: o.maxIter, ...(rate !== undefined ? { rate } : {}), ...(o.lambda !== undefined ? { lambda: o.lambda } : {}),
    threads: o.threads, ...(o.entropy !== 'none' ? { packBits: 8 } : {}),
  };
}

/** fallbacks, when given, collects the tensors that granularity 'block' could not tile (quantized per row). */
export function makePlan(tensors: TensorRef[], o0: ResolvedQuantizeOptions, file: string, fallbacks?: string[]): Step[] {
  const o = o0;
  const inc = o.include.map((p) => compilePattern('include', p));
  const exc = o.exclude.map((p) => compilePattern('exclude', p));
  const names = new Set(tensors.map((t) => t.name));
  return tensors.map((t): Step => {
    let o = o0;
    const included = inc.length ? inc.some((r) => r.test(t.name)) : t.shape.length >= o.minDims && t.numel >= o.minElements;
    const excluded = exc.some((r) => r.test(t.name));
    if (!included || excluded || !isFloatDtype(t.dtype) || t.numel === 0) return { kind: 'keep', tensor: t };
    for (const n of [codesName(t.name), codebookName(t.name), streamName(t.name), scalesName(t.name)])
      if (names.has(n)) throw new FormatError(`input already has a tensor named "${n}", which weightpress would write`, { file, tensor: t.name });
    if (o.granularity === 'block') {
      const cols = t.shape.length ? t.numel / t.shape[0] : t.numel;
      const dq = o.doubleQuant;
      const fits = cols % o.blockSize === 0 && (!dq || o.table !== 'row' || cols % dq.superBlock === 0);
      if (fits) {
        const sizes = loadNative().blockSizes(t.numel, cols, blockParams(o));
        return { kind: 'block', tensor: t, cols, sizes };
      }
      fallbacks?.push(t.name);
      o = { ...o, granularity: 'row' }; // rows that blocks do not tile: one codebook per row instead
    }
    const sliceSize = sliceSizeOf(t, o);
    const slices = Math.ceil(t.numel / sliceSize);
    const levels = 2 ** o.bits;
    const codebookBytes = slices * levels * DTYPE_SIZE[o.codebookDtype];
    // The codebook is written first, then the codes; the codes tensor is padded so that the pair ends on an
    // 8-byte boundary and every following tensor stays aligned (the format allows no gaps between tensors).
    // With entropy coding the codes are first written one byte each, then coded into a stream.
    const used = o.entropy === 'none' ? codeBytes(t.numel, o.bits) : t.numel;
    const codesBytes = Math.ceil((codebookBytes + used) / 8) * 8 - codebookBytes;
    return { kind: 'quantize', tensor: t, granularity: o.granularity, sliceSize, slices, levels, codebookBytes, codesBytes };
  });
}
