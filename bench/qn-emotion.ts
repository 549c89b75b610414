// qn (docs/QN.md) on the real test checkpoint: fit time and SQNR per granularity against exact k-means, and the
// kernels' throughput. Run: npx tsx bench/qn-emotion.ts (2 threads). Results: bench/RESULTS.md, "Quantization Networks".
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { quantize, qnForward, qnBackward, type QuantizeOptions } from '../lib/index.js';

const emo = new URL('../test/fixtures/emotion.f16.safetensors', import.meta.url).pathname;
const RUNS: [string, QuantizeOptions][] = [
  ['kmeans-optimal bits 2 (4 levels), row', { method: 'kmeans-optimal', bits: 2 }],
  ['qn ternary, tensor', { method: 'qn', levels: 'ternary', granularity: 'tensor' }],
  ['qn ternary, row', { method: 'qn', levels: 'ternary' }],
  ['qn ternary, row, learnBiases', { method: 'qn', levels: 'ternary', learnBiases: true }],
  ['qn binary, row', { method: 'qn', levels: 'binary' }],
  ['kmeans-optimal bits 1, row', { method: 'kmeans-optimal', bits: 1 }],
];
for (const [label, o] of RUNS) {
  const t = Date.now();
  const r = await quantize(emo, join(tmpdir(), 'qn-bench.safetensors'), { ...o, threads: 2 });
  console.log(`${label}: ${((Date.now() - t) / 1000).toFixed(2)} s, SQNR ${r.total.sqnrDb?.toFixed(2)} dB`);
}
const n = 1 << 22;
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.05);
const f = { levels: [-1, 0, 1], alpha: 0.03, beta: 25, biases: [-0.05, 0.05] };
const y = new Float32Array(n);
for (const T of [Infinity, 10]) {
  const t = performance.now();
  qnForward(x, f, { temperature: T, out: y, threads: 2 });
  console.log(`qnForward T=${T} 4M: ${(performance.now() - t).toFixed(1)} ms`);
}
{
  const t = performance.now();
  qnBackward(x, y, f, { temperature: 10, threads: 2 });
  console.log(`qnBackward ternary 4M: ${(performance.now() - t).toFixed(1)} ms`);
}
