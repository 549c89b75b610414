const n = 1e7; const a = new Float32Array(n);
// variant 1: local-variable xorshift128 in loop
for (let rep = 0; rep < 2; rep++) {
  let x = 123456789, y = 362436069, z = 521288629, w = 88675123;
  let t0 = performance.now();
  for (let i = 0; i < n; i++) { const t = x ^ (x << 11); x = y; y = z; z = w; w = (w ^ (w >>> 19)) ^ (t ^ (t >>> 8)); a[i] = (w >>> 0) * 2.3283064365386963e-10; }
  console.log('inline xorshift128', ((performance.now() - t0) / n * 1e6).toFixed(1));
  // variant 2: class with int32 fields
  class X { a = 123456789|0; b = 362436069|0; c = 521288629|0; d = 88675123|0;
    next(): number { const t = this.a ^ (this.a << 11); this.a = this.b; this.b = this.c; this.c = this.d; this.d = (this.d ^ (this.d >>> 19)) ^ (t ^ (t >>> 8)); return this.d >>> 0; } }
  const r = new X(); t0 = performance.now();
  for (let i = 0; i < n; i++) a[i] = r.next() * 2.3283064365386963e-10;
  console.log('class xorshift128', ((performance.now() - t0) / n * 1e6).toFixed(1));
  // variant 3: Int32Array state
  const s = new Int32Array([123456789, 362436069, 521288629, 88675123]);
  const nx = () => { const t = s[0] ^ (s[0] << 11); s[0] = s[1]; s[1] = s[2]; s[2] = s[3]; s[3] = (s[3] ^ (s[3] >>> 19)) ^ (t ^ (t >>> 8)); return s[3] >>> 0; };
  t0 = performance.now();
  for (let i = 0; i < n; i++) a[i] = nx() * 2.3283064365386963e-10;
  console.log('int32array xorshift128', ((performance.now() - t0) / n * 1e6).toFixed(1));
  t0 = performance.now();
  for (let i = 0; i < n; i++) a[i] = Math.random();
  console.log('Math.random', ((performance.now() - t0) / n * 1e6).toFixed(1));
}
