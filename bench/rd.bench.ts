/**
 * Rate-distortion table on the real checkpoints (issue "Towards the Limit"): SQNR against bits per weight for
 * k-means (exact), Hessian-weighted k-means, ecsq-uniform and ecsq, each with fixed-length and with Huffman
 * codes, in Choi et al.'s all-layers setting (one codebook for every quantized tensor: granularity 'network').
 *
 * No real Hessians exist for these checkpoints (no training data): Hessian-weighted k-means uses a stated proxy,
 * h = |w| (magnitude saliency). The table reports plain (unweighted) SQNR, so the proxy can only lose there; it is
 * shown for completeness, not as evidence for the paper's gain (which is in accuracy, measured with real Hessians).
 *
 *   npx tsx bench/rd.bench.ts            (BENCH_QUICK=1: one checkpoint, fewer rates)
 */
import './env.js';

import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Checkpoint, quantize, type QuantizeOptions, type Report } from '../lib/index.js';
import { QUICK, emit, isMain, mdTable, note } from './common.js';

const SHARED = join(import.meta.dirname, '..', '..', 'shared', 'data');

/** The |w| proxy importance, as F32 safetensors (written here, small files). */
async function writeProxy(src: string, out: string): Promise<void> {
  const ck = await Checkpoint.open(src);
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  const { decodeFloat } = await import('./rd-util.js');
  for (const t of ck.tensors()) {
    if (!['F32', 'F16', 'BF16'].includes(t.dtype)) continue;
    const x = decodeFloat(ck.bytes(t.name), t.dtype);
    const h = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) h[i] = Math.abs(x[i]);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + h.byteLength] };
    parts.push(Buffer.from(h.buffer));
    off += h.byteLength;
  }
  ck.close();
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(out, Buffer.concat([len, Buffer.from(json), ...parts]));
}

/** SQNR and bits per weight over the quantized tensors only (codes or streams, plus codebooks). */
function summary(r: Report): { sqnr: number; bpw: number; H?: number } {
  const q = r.tensors.filter((t) => t.method !== 'keep');
  const n = q.reduce((a, t) => a + t.numel, 0);
  const bytes = q.reduce((a, t) => a + t.bytesOut, 0);
  return { sqnr: r.total.quantizedSqnrDb ?? Infinity, bpw: (bytes * 8) / n, H: r.total.entropy };
}

export async function runRd(): Promise<string> {
  const files = existsSync(SHARED) ? readdirSync(SHARED).filter((f) => f.endsWith('.safetensors')).sort() : [];
  if (!files.length) return '(no ../shared/data: skipped)\n';
  const tmp = mkdtempSync(join(tmpdir(), 'wp-rd-'));
  let md = '';
  try {
    for (const f of QUICK ? files.slice(0, 1) : files) {
      const src = join(SHARED, f);
      const proxy = join(tmp, 'proxy.safetensors');
      await writeProxy(src, proxy);
      const rows: (string | number)[][] = [];
      const bitsList = QUICK ? [3, 4] : [2, 3, 4, 5, 6];
      const rates = QUICK ? [3] : [2, 3, 4, 5];
      const runs: { label: string; o: QuantizeOptions }[] = [];
      for (const bits of bitsList) {
        for (const entropy of ['none', 'huffman'] as const) {
          runs.push({ label: `kmeans-optimal ${bits}b ${entropy}`, o: { method: 'kmeans-optimal', bits, entropy } });
          runs.push({ label: `hessian-kmeans (|w| proxy) ${bits}b ${entropy}`, o: { method: 'hessian-kmeans', bits, entropy, importance: proxy } });
        }
      }
      for (const rate of rates) {
        for (const entropy of ['none', 'huffman'] as const) {
          runs.push({ label: `ecsq-uniform R=${rate} ${entropy}`, o: { method: 'ecsq-uniform', rate, entropy } });
          runs.push({ label: `ecsq R=${rate} ${entropy}`, o: { method: 'ecsq', rate, entropy } });
        }
      }
      for (const { label, o } of runs) {
        note(`${f}: ${label}`);
        const r = await quantize(src, join(tmp, 'out.safetensors'), { ...o, granularity: 'network' });
        const s = summary(r);
        rows.push([label, s.sqnr.toFixed(2), s.bpw.toFixed(3), s.H === undefined ? '–' : s.H.toFixed(3)]);
      }
      md += `\n#### ${f} (all quantized layers, one codebook: granularity network)\n\n`;
      md += mdTable(['method, bits or rate, codes', 'SQNR dB', 'bits/weight (codes + codebook)', 'H of codes'], rows, ['l', 'r', 'r', 'r']);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return md;
}

if (isMain(import.meta.url)) emit(await runRd());
