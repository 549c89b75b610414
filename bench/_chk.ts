import './env.js';
import { Checkpoint } from '../lib/index.js';
import { bf16ToF64 } from './common.js';
const ck = await Checkpoint.open('bench/data/llm-1g.bf16.safetensors');
for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.3.mlp.down_proj.weight', 'model.norm.weight']) {
  const info = ck.info(name); const b = ck.bytes(name);
  const x = bf16ToF64(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
  const cols = info.shape[info.shape.length - 1], rows = x.length / cols;
  let s2 = 0, s4 = 0; for (const v of x) { s2 += v * v; s4 += v ** 4; }
  const m2 = s2 / x.length, kurt = s4 / x.length / (m2 * m2);
  const colRms = new Float64Array(cols); for (let i = 0; i < x.length; i++) colRms[i % cols] += x[i] * x[i];
  const sorted = [...colRms].map(v => Math.sqrt(v / rows)).sort((a, b) => b - a);
  const rowRms = []; for (let r = 0; r < rows; r++) { let s = 0; for (let j = 0; j < cols; j++) s += x[r * cols + j] ** 2; rowRms.push(Math.sqrt(s / cols)); }
  rowRms.sort((a, b) => a - b);
  console.log(name, info.shape, 'rms', Math.sqrt(m2).toExponential(2), 'kurtosis', kurt.toFixed(1), 'top col rms / median', (sorted[0] / sorted[cols >> 1]).toFixed(1), (sorted[8] / sorted[cols >> 1]).toFixed(1), 'row rms p5/p95', (rowRms[Math.floor(rows * 0.05)]).toExponential(2), (rowRms[Math.floor(rows * 0.95)]).toExponential(2));
}
ck.close();
