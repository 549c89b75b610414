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
import { PRESERVE_MEAN } from './rowmean.js';

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

/** Options of the scalar codec for tensors the block format cannot take: per row, F32 codebooks (as before issue 16's F16 default). */
const ROW_FALLBACK = { granularity: 'row', codebookDtype: 'F32' } as const;

export const blockCodec = {
  name: 'block' as const,
  summary: 'a scale per block of weights and a level table learned exactly for the tensor (docs/BLOCK.md)',
  options: [BLOCK_SIZE, SCALE, TABLE, DOUBLE_QUANT, ROUNDS, PRESERVE_MEAN],
  phase: 'quantize' as const,
  placement: 'first',
  storedNames: (name) => [codebookName(name), scalesName(name), ...codeNames(name)],

  plan(t, o) {
    // The block codec takes no codebook dtype: its per-row fallback keeps the F32 codebooks it always had.
    const rowLen = t.shape.length >= 2 ? t.numel / t.shape[0] : t.numel;  // a 1-D tensor is one row
    const dq = o.doubleQuant;
    // With one table per tensor the decode x̂[i] = s_⌊i/B⌋ T[code[i]] does not depend on rows: when blocks do not
    // tile a row, they run over the flattened tensor (as llama.cpp's do; stored block.cols = numel, format
    // version 2). Only a table per row needs whole blocks per row.
    let cols = rowLen;
    if (rowLen % o.blockSize !== 0 && o.table === 'tensor' && t.numel % o.blockSize === 0) cols = t.numel;
    if (cols % o.blockSize !== 0)
      return {
        fallback: { codec: 'scalar', options: ROW_FALLBACK },
        warning: o.table === 'row'
          ? `tensor "${t.name}": with --table row, rows of ${cols} must be a multiple of the block size ${o.blockSize}: quantized per row instead`
          : `tensor "${t.name}": its ${t.numel} weights are not a multiple of the block size ${o.blockSize}: quantized per row instead`,
      };
    if (dq && o.table === 'row' && cols % dq.superBlock !== 0) {
      // Name the constraint that failed and the super-blocks that would fit (multiples of the block size dividing the row).
      const fit: number[] = [];
      for (let s = dq.superBlock - o.blockSize; s >= o.blockSize && fit.length < 2; s -= o.blockSize) if (cols % s === 0) fit.push(s);
      const hint = fit.length ? ` (--double-quant ${fit.map((s) => `${dq.bits}/${s}`).join(' or ')} would fit)` : '';
      return {
        fallback: { codec: 'scalar', options: ROW_FALLBACK },
        warning: `tensor "${t.name}": with --table row, rows of ${cols} must be a multiple of the super-block ${dq.superBlock}${hint}: quantized per row instead`,
      };
    }
    // The sizes do not depend on the method's solver or rate.
    const sizes = loadNative().blockSizes(t.numel, cols, { bits: o.bits, blockSize: o.blockSize, scale: o.scale, table: o.table, doubleQuant: o.doubleQuant || null, ...(packBitsOf(o) ? { packBits: 8 } : {}) });
    // Never larger than keeping the tensor (e.g. a table per short row): the scalar codec, which falls back further.
    const src = DTYPE_SIZE[t.dtype] * 8;
    if (sizes.bitsPerWeight > src)
      return {
        fallback: { codec: 'scalar', options: ROW_FALLBACK },
        warning: `tensor "${t.name}": the block format would take ${sizes.bitsPerWeight.toFixed(1)} bits per weight, more than keeping it (${t.dtype}, ${src}): quantized per row instead`,
      };
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
    const { cols } = task.layout as unknown as BlockLayout;
    let sz = (task.layout as unknown as BlockLayout).sizes;
    const native = loadNative();
    const t = task.tensor;
    let codes = new Uint8Array(sz.codesBytes);
    let scales = new Uint8Array(sz.scalesBytes);
    let table = new Uint8Array(sz.tableBytes);
    const params = blockParams(o, method, DTYPE_SIZE[t.dtype] * 8, job.threads);
    const at = new Error();
    let stats;
    const importance = await importanceFor(job, t);
    const run = () => native.blockQuantize({ data: ckpt.bytes(t.name), dtype: t.dtype, numel: t.numel, cols, name: t.name, importance }, params, codes, scales, table, job.cancel.flag, job.onTensorProgress);
    try {
      try {
        stats = await run();
      } catch (e) {
        // A super-block too small for an F16 super-scale (E_RANGE; e.g. a "dead" row beside ordinary ones): the
        // documented fallback is F32 super-scales for this tensor (2 more bytes per super-block), with a warning.
        const err = fromNative(e, { file: t.file, tensor: t.name }, at);
        if (err.code !== 'E_RANGE' || !params.doubleQuant) throw err;
        params.doubleQuant = { ...params.doubleQuant, dtype: 'F32' };
        sz = native.blockSizes(t.numel, cols, { bits: o.bits, blockSize: o.blockSize, scale: o.scale, table: o.table, doubleQuant: params.doubleQuant, ...(packBitsOf(o) ? { packBits: 8 } : {}) });
        codes = new Uint8Array(sz.codesBytes);
        scales = new Uint8Array(sz.scalesBytes);
        table = new Uint8Array(sz.tableBytes);
        stats = await run();
        job.warnings.push(`tensor "${t.name}": ${err.message}; stored with F32 super-scales instead`);
      }
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
      block: { blockSize: o.blockSize, cols, table: o.table, scale: o.scale, doubleQuant: params.doubleQuant ?? null },
      params: { solver: params.solver, rounds: o.rounds, ...(o.importance !== undefined ? { importance: o.importanceKind } : o.imatrix !== undefined ? { importance: 'imatrix' } : {}), ...(o.rate !== undefined ? { rate: o.rate } : {}) },
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
    // block.cols is the row length, or (version 2, a table per tensor) numel: blocks over the flattened tensor.
    if (n > 0 && b.cols !== cols && !(b.table === 'tensor' && b.cols === n))
      throw bad(`block.cols is ${b.cols}, but rows of shape ${JSON.stringify(s.shape)} hold ${cols}${b.table === 'tensor' ? ` (or ${n}, blocks over the flattened tensor)` : ''}`);
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
    job.saturated += await loadNative().blockDequantize(
      { codes, scales: job.ckpt.bytes(s.scales!), table: job.ckpt.bytes(s.codebook), numel: n, cols: s.block!.cols, name, allowOverflow: job.allowOverflow },
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
