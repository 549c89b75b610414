/** Per-tensor and whole-model metrics, their totals, and the summary table. The JSON shape is stable. */
import type { StoredMetrics } from './format.js';

export interface TensorReport extends StoredMetrics {
  name: string;
  dtype: string;
  shape: number[];
  /** 'keep' for tensors stored as they were. */
  method: string;
  /** Bits per code; for kept tensors the dtype's bits. */
  bits: number;
  granularity: 'tensor' | 'row' | 'group' | 'network' | 'block' | null;
  /** Elements. */
  numel: number;
  /** Where the bandwidth-bound passes ran ('cpu' or 'cuda'); absent for kept tensors and in files. */
  device?: string;
  /** The recipe rule that chose its method and options ("preset q4_k_m #2"); absent without a recipe. */
  rule?: string;
}

export interface TotalReport extends StoredMetrics {
  tensors: number;
  quantizedTensors: number;
  numel: number;
  /** MSE and SQNR over the quantized tensors only (`mse` is over every weight; `sqnrDb` equals quantizedSqnrDb). */
  quantizedMse: number;
  quantizedSqnrDb: number | null;
  /** bytesIn / bytesOut over every tensor. */
  compressionRatio: number;
  /** Over the entropy-coded tensors (weighted by weights): H and L of the codes, bits per weight. */
  entropy?: number;
  avgCodeLength?: number;
}

export interface Report {
  input: string;
  output?: string;
  tensors: TensorReport[];
  total: TotalReport;
  /** Things the caller should know (e.g. tensors without importance weights). */
  warnings?: string[];
}

export function sqnrDb(signal: number, sse: number): number | null {
  if (sse <= 0) return null; // exact: infinite SQNR (JSON has no Infinity)
  if (signal <= 0) return -Infinity;
  return 10 * Math.log10(signal / sse);
}

/** Totals. Sums of squared error and signal are recovered from each tensor's mse, sqnr and numel. */
export function totals(tensors: TensorReport[], seconds?: number): TotalReport {
  let ne = 0, he = 0, le = 0;
  let n = 0, nq = 0, sse = 0, sseQ = 0, sigQ = 0, bytesIn = 0, bytesOut = 0, secs = 0, maxErr = 0, q = 0;
  for (const t of tensors) {
    n += t.numel;
    bytesIn += t.bytesIn;
    bytesOut += t.bytesOut;
    secs += t.seconds;
    maxErr = Math.max(maxErr, t.maxAbsErr);
    const e = t.mse * t.numel;
    const s = t.sqnrDb === null ? 0 : e * 10 ** (t.sqnrDb / 10);
    sse += e;
    if (t.entropy !== undefined) {
      ne += t.numel;
      he += t.entropy * t.numel;
      le += (t.avgCodeLength ?? 0) * t.numel;
    }
    if (t.method !== 'keep') {
      q++;
      nq += t.numel;
      sseQ += e;
      sigQ += s;
    }
  }
  return {
    tensors: tensors.length,
    quantizedTensors: q,
    numel: n,
    mse: n ? sse / n : 0,
    // Kept tensors add no error; SQNR is taken over the quantized tensors, whose signal the file records.
    sqnrDb: sseQ > 0 ? sqnrDb(sigQ, sseQ) : null,
    quantizedMse: nq ? sseQ / nq : 0,
    quantizedSqnrDb: sseQ > 0 ? sqnrDb(sigQ, sseQ) : null,
    maxAbsErr: maxErr,
    bitsPerWeight: n ? (bytesOut * 8) / n : 0,
    bytesIn,
    bytesOut,
    seconds: seconds ?? secs,
    compressionRatio: bytesOut ? bytesIn / bytesOut : 0,
    ...(ne ? { entropy: he / ne, avgCodeLength: le / ne } : {}),
  };
}

function fmtBytes(b: number): string {
  if (b >= 1 << 30) return `${(b / (1 << 30)).toFixed(2)} GiB`;
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(2)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b} B`;
}

/** The summary table printed by the CLI. */
export function formatTable(r: Report, maxRows = 40): string {
  const head = ['tensor', 'dtype', 'shape', 'method', 'bits', 'gran', 'SQNR dB', 'MSE', 'max|err|', 'bpw', 'in', 'out', 's'];
  const rows: string[][] = [];
  const shown = r.tensors.length > maxRows ? r.tensors.filter((t) => t.method !== 'keep').slice(0, maxRows) : r.tensors;
  // A recipe's run: the rule that chose each tensor's method and options, as the last column.
  const ruled = r.tensors.some((t) => t.rule);
  if (ruled) head.push('rule');
  for (const t of shown) {
    rows.push([
      t.name, t.dtype, t.shape.join('x'), t.method, String(t.bits), t.granularity ?? '-',
      t.sqnrDb === null ? 'exact' : t.sqnrDb.toFixed(2), t.mse.toExponential(3), t.maxAbsErr.toExponential(2),
      t.bitsPerWeight.toFixed(3), fmtBytes(t.bytesIn), fmtBytes(t.bytesOut), t.seconds.toFixed(3),
      ...(ruled ? [t.rule ?? '-'] : []),
    ]);
  }
  const T = r.total;
  const sep = head.map(() => '');
  rows.push(sep);
  rows.push([
    `total (${T.tensors} tensors, ${T.quantizedTensors} quantized)`, '', '', '', '', '',
    T.sqnrDb === null ? 'exact' : T.sqnrDb.toFixed(2), T.mse.toExponential(3), T.maxAbsErr.toExponential(2),
    T.bitsPerWeight.toFixed(3), fmtBytes(T.bytesIn), fmtBytes(T.bytesOut), T.seconds.toFixed(3),
    ...(ruled ? [''] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 6 || i >= 13 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of rows) out.push(row === sep ? widths.map((w) => '-'.repeat(w)).join('  ') : line(row));
  if (shown.length < r.tensors.length) out.push(`(${r.tensors.length - shown.length} more tensors not shown; --json lists all)`);
  if (T.quantizedSqnrDb !== null) out.push(`quantized tensors only: SQNR ${T.quantizedSqnrDb.toFixed(2)} dB, MSE ${T.quantizedMse.toExponential(3)}`);
  return out.join('\n');
}

/** The --json object: {tensors: [...], total: {...}} with the documented fields. */
export function toJson(r: Report): object {
  return {
    input: r.input,
    ...(r.output ? { output: r.output } : {}),
    tensors: r.tensors.map((t) => ({
      name: t.name, dtype: t.dtype, shape: t.shape, method: t.method, bits: t.bits, granularity: t.granularity,
      mse: t.mse, sqnrDb: t.sqnrDb, maxAbsErr: t.maxAbsErr, bitsPerWeight: t.bitsPerWeight,
      bytesIn: t.bytesIn, bytesOut: t.bytesOut, seconds: t.seconds, numel: t.numel, ...(t.device ? { device: t.device } : {}), ...(t.rule ? { rule: t.rule } : {}),
      ...(t.entropy !== undefined
        ? { entropy: t.entropy, avgCodeLength: t.avgCodeLength, compressionRatio: t.compressionRatio, paperCompressionRatio: t.paperCompressionRatio }
        : {}),
      ...(t.layerOutputError ? { layerOutputError: t.layerOutputError } : {}),
      ...(t.rank ? { rank: t.rank } : {}),
    })),
    total: r.total,
    ...(r.warnings ? { warnings: r.warnings } : {}),
  };
}
