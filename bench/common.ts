/** Shared helpers of the bench suites: seeded random numbers, timing through tinybench, markdown tables. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

import { Bench } from 'tinybench';

/** BENCH_QUICK=1: reduced sizes, for checking that a suite runs (numbers are then only preliminary). */
export const QUICK = !!process.env.BENCH_QUICK && process.env.BENCH_QUICK !== '0';

/** An integer from the environment, or the default (the quick default when BENCH_QUICK is set). */
export function envInt(name: string, full: number, quick = full): number {
  const v = process.env[name];
  if (v === undefined || v === '') return QUICK ? quick : full;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return Math.floor(n);
}

/** True when the module with this import.meta.url is the script node/tsx was started with. */
export function isMain(metaUrl: string): boolean {
  return !!process.argv[1] && resolve(process.argv[1]) === fileURLToPath(metaUrl);
}

// ---------------------------------------------------------------------------------------------------------
// Random numbers: xoshiro128** on 32-bit integers (fast in V8, no allocation), seeded through splitmix32.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number, stream = 0) {
    let s = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r >>> 0;
  }

  /** Fills out[0, n) with u32() draws (the same sequence), with the state in locals: several times faster. */
  fillU32(out: Uint32Array, n = out.length): void {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < n; ++i) {
      const x = Math.imul(b, 5);
      out[i] = Math.imul((x << 7) | (x >>> 25), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = (d << 11) | (d >>> 21);
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() * 2.3283064365386963e-10;
  }

  /** Uniform in (-1, 1). */
  sym(): number {
    return ((this.u32() | 0) + 0.5) * 4.656612873077393e-10;
  }

  /** Standard normal (Marsaglia's polar method). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    for (;;) {
      const u = this.sym(), v = this.sym();
      const s = u * u + v * v;
      if (s >= 1 || s === 0) continue;
      const f = Math.sqrt((-2 * Math.log(s)) / s);
      this.spare = v * f;
      this.hasSpare = true;
      return u * f;
    }
  }

  /** Student-t with `nu` degrees of freedom (Bailey's polar method: one pow and one sqrt per draw). */
  studentT(nu: number): number {
    const e = -2 / nu;
    for (;;) {
      const u = this.sym(), v = this.sym();
      const w = u * u + v * v;
      if (w >= 1 || w === 0) continue;
      return u * Math.sqrt((nu * (Math.pow(w, e) - 1)) / w);
    }
  }
}

/**
 * Two-sided tail of Student-t: P(|T| > t) for integer nu >= 1, by the closed forms of Abramowitz & Stegun
 * 26.7.3-4 (theta = atan(t / sqrt(nu))).
 */
export function studentTTail(t: number, nu: number): number {
  const th = Math.atan(Math.abs(t) / Math.sqrt(nu));
  const c2 = Math.cos(th) ** 2, s = Math.sin(th);
  let a: number;
  if (nu % 2 === 1) {
    let sum = 0, term = 1;
    if (nu > 1) {
      sum = 1;
      for (let k = 1; 2 * k + 1 <= nu - 2; ++k) sum += (term *= ((2 * k) / (2 * k + 1)) * c2);
    }
    a = (2 / Math.PI) * (th + s * Math.cos(th) * sum);
  } else {
    let sum = 1, term = 1;
    for (let k = 1; 2 * k <= nu - 2; ++k) sum += (term *= ((2 * k - 1) / (2 * k)) * c2);
    a = s * sum;
  }
  return Math.max(0, 1 - a);
}

/**
 * Fast Student-t sampler: inverse CDF from one 32-bit random number. The quantile of |T| is tabulated per
 * octave of the tail probability (2^-1 ... 2^-31, 64 linear pieces each), so the relative error is ~1e-4
 * everywhere, tails included (far below BF16's 2^-8), at the cost of a table lookup per draw.
 */
export class StudentTTable {
  private readonly q: Float64Array; // [octave e = 1..31][knot j = 0..64]: |t| with P(|T| > t) = 2^-e (1 + j/64)
  private readonly scale = new Float64Array(33); // 2^(e - 25): 31-bit mantissa offset -> knot position

  constructor(readonly nu: number) {
    if (!Number.isInteger(nu) || nu < 1) throw new Error('nu must be a positive integer');
    this.q = new Float64Array(32 * 65);
    for (let e = 0; e <= 32; ++e) this.scale[e] = 2 ** (e - 25);
    for (let e = 1; e <= 31; ++e) {
      for (let j = 0; j <= 64; ++j) {
        const p = 2 ** -e * (1 + j / 64);
        this.q[e * 65 + j] = p >= 1 ? 0 : this.invert(p);
      }
    }
  }

  private invert(p: number): number {
    let lo = 0, hi = 1;
    while (studentTTail(hi, this.nu) > p) hi *= 2;
    for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
      const mid = 0.5 * (lo + hi);
      if (studentTTail(mid, this.nu) > p) lo = mid;
      else hi = mid;
    }
    return 0.5 * (lo + hi);
  }

  /**
   * out[offset + i] = mult * draw(bits[i]) for i in [0, n): the draws of sample(), in bulk (locals only, the
   * random words read as int32 so that V8 stays on small integers). `bits` views Rng.fillU32() output.
   */
  fill(out: Float32Array, offset: number, n: number, bits: Int32Array, mult: number): void {
    const q = this.q, scale = this.scale;
    for (let i = 0; i < n; ++i) {
      const u = bits[i];
      const m31 = u & 0x7fffffff;
      let e = Math.clz32(m31);
      let pos = 0;
      if (e < 32) pos = (m31 - (1 << (31 - e))) * scale[e];
      else e = 31;
      const j = pos | 0;
      const b = e * 65 + j;
      const v = q[b] + (pos - j) * (q[b + 1] - q[b]);
      out[offset + i] = u < 0 ? -mult * v : mult * v;
    }
  }

  /** A draw from one uniform 32-bit integer (as returned by Rng.u32()). */
  sample(u: number): number {
    const m31 = u & 0x7fffffff;
    let e = Math.clz32(m31); // m31 in [2^(31-e), 2^(32-e)): P(|T| > t) in [2^-e, 2^(1-e))
    let pos = 0;
    if (e < 32) pos = (m31 - (1 << (31 - e))) * this.scale[e]; // position within the octave, in [0, 64)
    else e = 31;
    const j = pos | 0;
    const b = e * 65 + j;
    const v = this.q[b] + (pos - j) * (this.q[b + 1] - this.q[b]);
    return u < 0 || u >= 0x80000000 ? -v : v;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** F32 -> BF16 with round-to-nearest-even (finite inputs). `bits` views the same memory as the floats. */
export function f32ToBf16(bits: Uint32Array, n: number, out: Uint16Array, outOffset = 0): void {
  for (let i = 0; i < n; ++i) {
    const u = bits[i];
    out[outOffset + i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

/** BF16 -> F64, for measuring. */
export function bf16ToF64(raw: Uint16Array): Float64Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const out = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; ++i) {
    u[0] = raw[i] << 16;
    out[i] = f[0];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Measures.

/** Sum of squared distances of each value to its nearest level (levels sorted ascending, at least one). */
export function sseToNearest(x: ArrayLike<number>, levelsIn: ArrayLike<number>): number {
  const levels = Float64Array.from(levelsIn).sort();
  const k = levels.length;
  const mids = new Float64Array(Math.max(0, k - 1));
  for (let t = 0; t + 1 < k; ++t) mids[t] = 0.5 * (levels[t] + levels[t + 1]);
  let sse = 0;
  for (let i = 0; i < x.length; ++i) {
    const v = x[i];
    let lo = 0, hi = k - 1; // first threshold >= v, by bisection: the level index
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (mids[m] < v) lo = m + 1;
      else hi = m;
    }
    const e = v - levels[lo];
    sse += e * e;
  }
  return sse;
}

// ---------------------------------------------------------------------------------------------------------
// Timing.

export interface Timing {
  name: string;
  /** Milliseconds per run: mean, min and median of the samples, and the sample count. */
  mean: number;
  min: number;
  p50: number;
  rme: number;
  samples: number;
}

export interface TaskSpec {
  name: string;
  fn: () => unknown | Promise<unknown>;
  /**
   * Timed runs (default: the bench's). 'auto': one probe run first, timed with performance.now(); when it took
   * more than half of `budgetMs` it is the only (timed) run, otherwise it is the warmup and tinybench times as
   * many runs as fit in the rest of the budget (at most `maxIterations`): slow tasks run once, fast ones often.
   */
  iterations?: number | 'auto';
  /** Untimed runs first (default: the bench's; with 'auto' the probe run is the warmup). */
  warmup?: number;
  budgetMs?: number;
  maxIterations?: number;
}

/**
 * Times tasks one after another (same process, same moment, same data), each through tinybench with a
 * fixed number of runs and no time budget (the slow ones would otherwise run for minutes).
 */
export async function timeTasks(name: string, tasks: TaskSpec[], defaults: { iterations: number; warmup: number }): Promise<Map<string, Timing>> {
  const out = new Map<string, Timing>();
  for (const t of tasks) {
    let iterations: number;
    let warmup = t.warmup ?? defaults.warmup;
    if (t.iterations === 'auto') {
      const t0 = performance.now();
      await t.fn();
      const probe = performance.now() - t0;
      const budget = t.budgetMs ?? 5000;
      if (2 * probe > budget) {
        // Too slow to run again within the budget: the probe run is the one timed run.
        out.set(t.name, { name: t.name, mean: probe, min: probe, p50: probe, rme: 0, samples: 1 });
        process.stderr.write(`  ${t.name}: ${fmtMs(probe)} (1 run)\n`);
        continue;
      }
      iterations = Math.max(1, Math.min(t.maxIterations ?? 10, Math.floor(budget / Math.max(probe, 1e-3)) - 1));
      warmup = 0;
    } else {
      iterations = Math.max(1, t.iterations ?? defaults.iterations);
    }
    const bench = new Bench({
      name,
      iterations,
      time: 0,
      warmup: warmup > 0,
      warmupIterations: Math.max(1, warmup),
      warmupTime: 0,
      throws: true,
    });
    bench.add(t.name, t.fn);
    await bench.run();
    const r = bench.tasks[0].result;
    if (r.state !== 'completed') throw new Error(`${t.name}: tinybench state ${r.state}${'error' in r ? `: ${r.error}` : ''}`);
    out.set(t.name, { name: t.name, mean: r.latency.mean, min: r.latency.min, p50: r.latency.p50, rme: r.latency.rme, samples: r.latency.samplesCount });
    process.stderr.write(`  ${t.name}: ${fmtMs(r.latency.mean)} (min ${fmtMs(r.latency.min)}, ${iterations} runs)\n`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Formatting.

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtBytes(b: number): string {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b} B`;
}

export function fmtCount(n: number): string {
  if (n >= 1e6 && n % 1e5 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 100 === 0) return `${n / 1e3}k`;
  return n.toLocaleString('en-US');
}

export function fmtX(r: number): string {
  if (!Number.isFinite(r)) return '-';
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

/** A GitHub markdown table. */
export function mdTable(headers: string[], rows: (string | number)[][], align?: ('l' | 'r')[]): string {
  const a = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const line = (cells: (string | number)[]) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(headers), `|${a.map((x) => (x === 'r' ? ' ---: ' : ' :--- ')).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The machine, as one markdown bullet list. */
export function machineInfo(): string {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) model = m[1].trim();
  } catch {
    // not Linux
  }
  const la = loadavg().map((v) => v.toFixed(2)).join(' ');
  return [
    `- CPU: ${model}, nproc = ${availableParallelism()}`,
    `- Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- Node ${process.version} (${process.platform}-${process.arch})`,
    `- Load average at start: ${la}`,
    `- Mode: ${QUICK ? '**BENCH_QUICK=1 (reduced sizes: preliminary numbers)**' : 'full sizes'}`,
  ].join('\n');
}

/** The markdown heading every entry prints first: the machine and the addon. */
export async function benchHeader(): Promise<string> {
  const { versions } = await import('../lib/index.js');
  const v = versions();
  return (
    `# weightpress benchmarks\n\n${machineInfo()}\n` +
    `- weightpress ${v.weightpress} (N-API ${v.napi}, CUDA compiled: ${v.cudaCompiled})\n- Date: ${new Date().toISOString()}\n`
  );
}

/** Prints a suite's markdown to stdout (progress goes to stderr, so stdout can be pasted as it is). */
export function emit(md: string): void {
  process.stdout.write(md.replace(/\n*$/, '\n\n'));
}

export function note(msg: string): void {
  process.stderr.write(msg + '\n');
}
