// INT4 per group (codec int) against the scalar codec's per-group uniform codebooks, and the compressed-tensors
// export, on the real checkpoints: bits per weight (every stored byte), SQNR, seconds.
// usage: WEIGHTPRESS_PREFER_LOCAL=1 node bench/int-group.mjs [outdir]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { quantize } from '../dist/index.js';

const DATA = '/work/shared/data';
const out = process.argv[2] ?? '/tmp/wp-int-bench';
mkdirSync(out, { recursive: true });
const files = ['emotion.f16.safetensors', 'mobileface.f32.safetensors', 'movenet-lightning.bf16.safetensors'];
const runs = [
  ['scalar codebook per group (F32)', { method: 'uniform', codec: 'scalar', granularity: 'group', groupSize: 128, bits: 4 }],
  ['scalar codebook per group (F16)', { method: 'uniform', codec: 'scalar', granularity: 'group', groupSize: 128, bits: 4, codebookDtype: 'F16' }],
  ['int, asymmetric, MSE (default)', { method: 'uniform', granularity: 'group', groupSize: 128, bits: 4 }],
  ['int, symmetric, MSE', { method: 'uniform', granularity: 'group', groupSize: 128, bits: 4, symmetric: true }],
  ['int, symmetric, min-max (RTN)', { method: 'uniform', granularity: 'group', groupSize: 128, bits: 4, symmetric: true, step: 'minmax' }],
  ['int, asymmetric, min-max (RTN)', { method: 'uniform', granularity: 'group', groupSize: 128, bits: 4, step: 'minmax' }],
  ['int8, symmetric, MSE', { method: 'uniform', granularity: 'group', groupSize: 128, bits: 8, symmetric: true }],
];
for (const f of files) {
  for (const [label, o] of runs) {
    const t0 = process.hrtime.bigint();
    const r = await quantize(join(DATA, f), join(out, `${f}.${label.replace(/\W+/g, '_')}.safetensors`), { ...o, threads: 1 });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const q = r.tensors.filter((t) => t.method !== 'keep');
    const bytes = q.reduce((a, t) => a + t.bytesOut, 0), n = q.reduce((a, t) => a + t.numel, 0);
    console.log(`| ${f} | ${label} | ${((8 * bytes) / n).toFixed(3)} | ${r.total.quantizedSqnrDb?.toFixed(2)} | ${s.toFixed(2)} |`);
  }
}
