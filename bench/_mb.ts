import { Rng, StudentTTable, studentTTail } from './common.js';
for (const nu of [3, 4, 6]) {
  const tab = new StudentTTable(nu);
  const r = new Rng(1), r2 = new Rng(2); const n = 1e8;
  const qs = [0.5, 1, 2, 5, 10, 30, 100];
  const c1 = qs.map(() => 0), c2 = qs.map(() => 0);
  let t0 = performance.now();
  let s1 = 0, s2 = 0;
  for (let i = 0; i < n; i++) { const v = tab.sample(r.u32()); s1 += v; const a = Math.abs(v); for (let k = 0; k < qs.length; k++) if (a > qs[k]) c1[k]++; }
  const tt = performance.now() - t0; t0 = performance.now();
  for (let i = 0; i < n; i++) { const v = r2.studentT(nu); s2 += v; const a = Math.abs(v); for (let k = 0; k < qs.length; k++) if (a > qs[k]) c2[k]++; }
  const te = performance.now() - t0;
  console.log('nu', nu, 'table', (tt/n*1e6).toFixed(1), 'ns (incl counting)', 'exact', (te/n*1e6).toFixed(1), 'mean', (s1/n).toFixed(4), (s2/n).toFixed(4));
  qs.forEach((q, k) => console.log('  P(|T|>', q, ')', 'theory', studentTTail(q, nu).toExponential(4), 'table', (c1[k]/n).toExponential(4), 'polar', (c2[k]/n).toExponential(4)));
}
// pure speed
const tab = new StudentTTable(3); const r = new Rng(5); const a = new Float32Array(1e7);
for (let rep = 0; rep < 3; rep++) { const t0 = performance.now(); for (let i = 0; i < a.length; i++) a[i] = tab.sample(r.u32()); console.log('table speed', ((performance.now()-t0)/a.length*1e6).toFixed(1), 'ns'); }
