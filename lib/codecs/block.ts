/**
 * Codec 'block': a scale per block of blockSize weights along a row (F16, or q-bit codes under an F16 super-scale
 * per superBlock weights) and a level table of 2^bits entries learned for the tensor (or per row) by the method's
 * solver, refined alternately with the scales. Stored: the table [tables, 2^bits] F32 as the codebook, the U8 scales,
 * and the codes (packed, or an entropy-coded stream). Format: docs/FORMAT.md "Block-format tensors", docs/BLOCK.md.
 * Rows that blocks do not tile are handed to the scalar codec (one codebook per row), with a warning.
 */
import { DTYPE_SIZE, numel } from '../dtype.js';
import { ArgumentError, FormatError, fromNative } from '../errors.js';
import { codebookName, scalesName, type QuantizedScheme } from '../format.js';
import { loadNative } from '../load.js';
import type { MethodEntry } from '../methods/registry.js';
import { option } from '../methods/options.js';
import type { NativeBlockParams, NativeBlockSizes } from '../native.js';
import type { Codec, EncodeResult, TaskOptions } from './codec.js';
import { entryBytes } from './codec.js';
import { checkCodebook, checkCodes, codeNames, importanceFor, loadCodes, metricsOf, packBitsOf, parseCodebook, parseCodes, storeCodes } from './codes.js';

// The block format's options. The defaults: 16-weight blocks with 6-bit scales under an F16 super-scale per 256
// weights (4.44 bits per weight at 4 bits; docs/BLOCK.md). 32-weight blocks with F16 scales cost more and gain less.
export const BLOCK_SIZE = option({
  name: 'blockSize', type: 'int', min: 1, max: 1 << 20, default: 16, unit: 'weights',
  doc: 'weights per block along a row (each block has a scale)', flag: '--block-size', metavar: 'B',
});
export const SCALE = option({
  name: 'scale', type: 'enum', values: ['optimal', 'absmax'], default: 'optimal',
  doc: 'block scales: MSE-optimal search per block, or absmax', flag: '--scale', metavar: 'S',
});
export const TABLE = option({
  name: 'table', type: 'enum', values: ['tensor', 'row'], default: 'tensor',
  doc: 'one learned level table per tensor or per row', flag: '--table', metavar: 'T',
});
export const DOUBLE_QUANT = option({
  name: 'doubleQuant', type: 'doubleQuant', default: { bits: 6, superBlock: 256 }, defaultDoc: '6/256',
  doc: 'block scales as Q-bit codes under an F16 super-scale per S weights, or none (F16 scales)', flag: '--double-quant', metavar: 'Q/S|none',
  parseFlag: (v) => {
    if (v === 'none' || v === 'off') return false;
    const m = /^(\d+)\/(\d+)$/.exec(v.trim());
    if (!m) throw new ArgumentError(`option --double-quant: expected BITS/SUPERBLOCK (e.g. 6/256) or none, got ${JSON.stringify(v)}`);
    return { bits: Number(m[1]), superBlock: Number(m[2]) };
  },
});
export const ROUNDS = option({
  name: 'rounds', type: 'int', min: 1, max: 100, default: 4, unit: 'rounds',
  doc: 'alternating scale/table refinement rounds at most', flag: '--rounds', metavar: 'N',
});

/**
 * The native parameters of the block format for these options; the table solver's own (the method's options, at
 * the rate this tensor's dtype implies) travel as one nested object, solverParams.
 */
export function blockParams(o: TaskOptions, method: MethodEntry, dtypeBits = 32, threads = 0): NativeBlockParams {
  return {
    bits: o.bits,
    blockSize: o.blockSize,
    scale: o.scale,
    table: o.table,
    solver: method.solver(o),
    rounds: o.rounds,
    doubleQuant: o.doubleQuant ? { bits: o.doubleQuant.bits, superBlock: o.doubleQuant.superBlock } : null,
    solverParams: method.nativeParams(o, dtypeBits),
    threads,
    ...(packBitsOf(o) ? { packBits: packBitsOf(o) } : {}),
  };
}

/** The native parameters that describe a stored block-format tensor. */
function storedParams(s: QuantizedScheme): NativeBlockParams {
  const b = s.block!;
  return { bits: s.bits, blockSize: b.blockSize, table: b.table, scale: b.scale, doubleQuant: b.doubleQuant };
}

interface BlockLayout {
  cols: number;
  sizes: NativeBlockSizes;
}

export const blockCodec = {
  name: 'block' as const,
  summary: 'a scale per block of weights and a level table learned exactly for the tensor (docs/BLOCK.md)',
  options: [BLOCK_SIZE, SCALE, TABLE, DOUBLE_QUANT, ROUNDS],
  phase: 'quantize' as const,
  placement: 'first',
  storedNames: (name) => [codebookName(name), scalesName(name), ...codeNames(name)],

  plan(t, o) {
    const cols = t.shape.length ? t.numel / t.shape[0] : t.numel;
    const dq = o.doubleQuant;
    const fits = cols % o.blockSize === 0 && (!dq || o.table !== 'row' || cols % dq.superBlock === 0);
    if (!fits)
      return {
        fallback: { codec: 'scalar', options: { granularity: 'row' } },
        warning: `tensor "${t.name}": rows are not a multiple of the block size ${o.blockSize}: quantized per row instead`,
      };
    // The sizes do not depend on the method's solver or rate.
    const sizes = loadNative().blockSizes(t.numel, cols, { bits: o.bits, blockSize: o.blockSize, scale: o.scale, table: o.table, doubleQuant: o.doubleQuant || null, ...(packBitsOf(o) ? { packBits: 8 } : {}) });
    const layout: BlockLayout = { cols, sizes };
    return { layout: layout as unknown as Record<string, unknown> };
  },

  headerBytes: (task) => 2 * entryBytes(task.tensor) + 400,
  outputBytes(task) {
    const { sizes } = task.layout as unknown as BlockLayout;
    return sizes.codesBytes + sizes.scalesBytes + sizes.tableBytes + 16;
  },

  async encode(task, job, method): Promise<EncodeResult> {
    const { ckpt } = job;
    const o = task.options;
    const { cols, sizes: sz } = task.layout as unknown as BlockLayout;
    const native = loadNative();
    const t = task.tensor;
    const codes = new Uint8Array(sz.codesBytes);
    const scales = new Uint8Array(sz.scalesBytes);
    const table = new Uint8Array(sz.tableBytes);
    const params = blockParams(o, method, DTYPE_SIZE[t.dtype] * 8, job.threads);
    const at = new Error();
    let stats;
    try {
      const importance = await importanceFor(job, t);
      stats = await native.blockQuantize({ data: ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, cols, name: t.name, importance }, params, codes, scales, table, job.cancel.flag, job.onTensorProgress);
    } catch (e) {
      throw fromNative(e, { file: t.file, tensor: t.name }, at);
    }
    const K = 2 ** o.bits;
    const cbName = codebookName(t.name);
    const scName = scalesName(t.name);
    await job.out.add(cbName, 'F32', [sz.tables, K], table);
    await job.out.add(scName, 'U8', [scales.byteLength], scales);
    const codesOut = await storeCodes(job, o, t, codes, 0);
    ckpt.advise(t.name, 'dontneed');
    const metrics = metricsOf(t, stats, table.byteLength + scales.byteLength + codesOut.bytes, codesOut.coded, sz.tables * stats.levelsUsed);
    const scheme: QuantizedScheme = {
      method: o.method,
      bits: o.bits,
      granularity: 'block',
      sliceSize: o.table === 'row' ? cols : t.numel,
      slices: sz.tables,
      dtype: t.dtype,
      shape: t.shape,
      ...codesOut.scheme,
      codebook: cbName,
      codebookDtype: 'F32',
      scales: scName,
      block: { blockSize: o.blockSize, cols, table: o.table, scale: o.scale, doubleQuant: o.doubleQuant || null },
      params: { solver: params.solver, rounds: o.rounds, ...(o.importance !== undefined ? { importance: o.importanceKind } : {}), ...(o.rate !== undefined ? { rate: o.rate } : {}) },
      metrics,
    };
    return {
      scheme,
      metrics,
      report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: o.method, bits: o.bits, granularity: 'block', numel: t.numel, ...m, device: 'cpu' }),
    };
  },


  parse(s0, bad) {
    const s = s0 as QuantizedScheme;
    const b = s.block;
    if (s.bits > 8) throw bad(`bits must be 1-8, got ${s.bits}`);
    if (!b || typeof b !== 'object' || !Number.isSafeInteger(b.blockSize) || b.blockSize < 1 || !Number.isSafeInteger(b.cols) || b.cols < 1 || b.cols % b.blockSize !== 0 || typeof s.scales !== 'string')
      throw bad('block entry needs scales and block {blockSize, cols, table, scale, doubleQuant}');
    if (!['tensor', 'row'].includes(b.table) || !['optimal', 'absmax'].includes(b.scale)) throw bad('block.table must be tensor or row, block.scale optimal or absmax');
    const dq = b.doubleQuant;
    if (dq !== null && (typeof dq !== 'object' || !Number.isSafeInteger(dq.bits) || !Number.isSafeInteger(dq.superBlock)))
      throw bad('block.doubleQuant must be null or {bits, superBlock} integers');
    const n = numel(s.shape);
    const cols = s.shape.length ? n / s.shape[0] : n;
    if (n > 0 && b.cols !== cols) throw bad(`block.cols is ${b.cols}, but rows of shape ${JSON.stringify(s.shape)} hold ${cols}`);
    if (s.sliceSize !== (b.table === 'row' ? b.cols : n)) throw bad(`sliceSize must be ${b.table === 'row' ? 'block.cols' : 'numel'} with table ${b.table}`);
    parseCodebook(s, bad);
    parseCodes(s, bad);
  },

  check(ckpt, name, s0) {
    const s = s0 as QuantizedScheme;
    const file = ckpt.path;
    checkCodebook(ckpt, name, s);
    if (!ckpt.has(s.scales!)) throw new FormatError(`scheme names "${s.scales}", which the file does not hold`, { file, tensor: name });
    let sizes;
    try {
      sizes = loadNative().blockSizes(numel(s.shape), s.block!.cols, storedParams(s));
    } catch (e) {
      throw fromNative(e, { file, tensor: name });
    }
    const sc = ckpt.info(s.scales!);
    if (sc.dtype !== 'U8' || sc.shape.length !== 1 || sc.numel !== sizes.scalesBytes)
      throw new FormatError(`scales "${s.scales}" are ${sc.dtype} ${JSON.stringify(sc.shape)}, expected U8 [${sizes.scalesBytes}] for this block format`, { file, tensor: name });
    if (sizes.tables !== s.slices) throw new FormatError(`block format needs ${sizes.tables} tables, the scheme says ${s.slices}`, { file, tensor: name });
    checkCodes(ckpt, name, s);
  },

  async decode(name, s0, dtype, job) {
    const s = s0 as QuantizedScheme;
    const n = numel(s.shape);
    const dense = new Uint8Array(n * DTYPE_SIZE[dtype]);
    const { codes, packBits } = await loadCodes(job.ckpt, s, job.threads, job.cancel.flag);
    await loadNative().blockDequantize(
      { codes, scales: job.ckpt.bytes(s.scales!), table: job.ckpt.bytes(s.codebook), numel: n, cols: s.block!.cols, name },
      { ...storedParams(s), ...(packBits ? { packBits } : {}) },
      dtype,
      dense,
      job.threads,
      job.cancel.flag,
    );
    return dense;
  },

  granularity: () => 'block',
} satisfies Codec;
