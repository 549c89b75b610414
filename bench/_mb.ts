import { Rng } from './common.js';
const r = new Rng(1); const n = 1e7; const a = new Float32Array(n);
for (const name of ['u32','normal','t5pow','t4sqrt','t3cbrt','t3pow']) {
  for (let rep = 0; rep < 2; rep++) {
  const t = performance.now();
  if (name === 'u32') for (let i = 0; i < n; i++) a[i] = r.u32();
  if (name === 'normal') for (let i = 0; i < n; i++) a[i] = r.normal();
  if (name === 't5pow') for (let i = 0; i < n; i++) a[i] = r.studentT(5);
  if (name === 't3pow') for (let i = 0; i < n; i++) a[i] = r.studentT(3);
  if (name === 't4sqrt') for (let i = 0; i < n; i++) { let u, v, w; do { u = r.sym(); v = r.sym(); w = u*u+v*v; } while (w >= 1 || w === 0); a[i] = u * Math.sqrt(4 * (1/Math.sqrt(w) - 1) / w); }
  if (name === 't3cbrt') for (let i = 0; i < n; i++) { let u, v, w; do { u = r.sym(); v = r.sym(); w = u*u+v*v; } while (w >= 1 || w === 0); const c = Math.cbrt(w); a[i] = u * Math.sqrt(3 * (1/(c*c) - 1) / w); }
  console.log(name, ((performance.now() - t) / n * 1e6).toFixed(1), 'ns/elem');
  }
}
