/**
 * Issue 16: do F16 scalar codebooks lose anything against F32? Quantizes the real checkpoints (/work/shared/data, or
 * WP_DATA) with kmeans-optimal and uniform, per row and per tensor, at 2, 4 and 8 bits, with F32 and with F16
 * codebooks, and prints the quantized tensors' SQNR of each, their difference, and the total bits per weight.
 *
 *   WEIGHTPRESS_PREFER_LOCAL=1 npx tsx bench/codebook-dtype.ts > out.md
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { quantize } from '../lib/index.js';

const data = process.env.WP_DATA ?? '/work/shared/data';
const dir = mkdtempSync(join(tmpdir(), 'wp-cbdtype-'));
const files = ['emotion.f16', 'mobileface.f32', 'movenet-lightning.bf16'];
process.stdout.write('| checkpoint | method | granularity | bits | SQNR F32 dB | SQNR F16 dB | F16 − F32 dB | bpw F32 | bpw F16 | tensors F16→F32 |\n|---|---|---|---|---|---|---|---|---|---|\n');
try {
  for (const f of files)
    for (const method of ['kmeans-optimal', 'uniform'] as const)
      for (const granularity of ['row', 'tensor'] as const)
        for (const bits of [2, 4, 8]) {
          const r: Record<string, { sqnr: number; bpw: number; fallback: number }> = {};
          for (const codebookDtype of ['F32', 'F16'] as const) {
            const out = join(dir, 'o.safetensors');
            const rep = await quantize(join(data, `${f}.safetensors`), out, { method, granularity, bits, codebookDtype, threads: 1, force: true });
            r[codebookDtype] = { sqnr: rep.total.quantizedSqnrDb ?? Infinity, bpw: rep.total.bitsPerWeight, fallback: (rep.warnings ?? []).filter((w) => w.includes('F32 codebooks')).length };
            rmSync(out);
          }
          process.stdout.write(`| ${f} | ${method} | ${granularity} | ${bits} | ${r.F32.sqnr.toFixed(3)} | ${r.F16.sqnr.toFixed(3)} | ${(r.F16.sqnr - r.F32.sqnr).toFixed(4)} | ${r.F32.bpw.toFixed(3)} | ${r.F16.bpw.toFixed(3)} | ${r.F16.fallback} |\n`);
        }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
