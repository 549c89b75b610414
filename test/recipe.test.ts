/**
 * Issue 16, items 1, 2 and 7: recipes and presets, size budgets, the defaults' bits per weight, and progress with
 * ETA. Oracles: the presets' documented rules (docs/RECIPES.md) written out here as a table; brute force over every
 * bits assignment (each tensor's point measured by quantizing it alone); the written file's size; the progress
 * events' own sums.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { inspect, quantize, type QuantizeOptions } from '../lib/index.js';
import { allocate, type RdPoint } from '../lib/budget.js';
import type { Progress } from '../lib/validate.js';
import { encode, gaussian, mulberry32, readSafetensors, tempDir, writeSafetensors, type RawTensor } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A small Llama-named checkpoint (HF names), F32, seeded. */
function llama(path: string, layers = 2, d = 64): string[] {
  const t: RawTensor[] = [];
  const add = (name: string, shape: number[], seed: number) =>
    t.push({
      name,
      dtype: 'F32',
      shape,
      data: encode(
        Array.from(
          gaussian(
            shape.reduce((a, b) => a * b, 1),
            seed,
          ),
          (v) => v * 0.05,
        ),
        'F32',
      ),
    });
  add('model.embed_tokens.weight', [128, d], 1);
  for (let l = 0; l < layers; l++) {
    for (const [k, p] of ['q_proj', 'k_proj', 'v_proj', 'o_proj'].entries()) add(`model.layers.${l}.self_attn.${p}.weight`, [d, d], 10 + l * 10 + k);
    add(`model.layers.${l}.mlp.gate_proj.weight`, [2 * d, d], 100 + l);
    add(`model.layers.${l}.mlp.up_proj.weight`, [2 * d, d], 200 + l);
    add(`model.layers.${l}.mlp.down_proj.weight`, [d, 2 * d], 300 + l);
    add(`model.layers.${l}.input_layernorm.weight`, [d], 400 + l);
  }
  add('lm_head.weight', [128, d], 2);
  writeSafetensors(path, t);
  return t.map((x) => x.name);
}

const ckpt = join(tmp.dir, 'llama.safetensors');
const names = llama(ckpt);
let n = 0;
const out = () => join(tmp.dir, `out${n++}.safetensors`);

/** The bits the q4_k_m preset gives a tensor, from docs/RECIPES.md's table (independent of lib/recipe.ts's patterns). */
function q4km(name: string): number | undefined {
  if (name.endsWith('layernorm.weight')) return undefined; // 1-D: the size rule keeps it
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return 8;
  if (name.includes('.v_proj.') || name.includes('.down_proj.')) return 6;
  return 4;
}

function scheme(
  file: string,
): Record<
  string,
  { method: string; bits?: number; rule?: { recipe: string; index: number | null; match: string[] }; codebookDtype?: string; granularity?: string }
> {
  return JSON.parse(readSafetensors(file).metadata!.weightpress).tensors;
}

describe('presets', () => {
  it('q4_k_m gives every tensor the bits of its documented rule, and the scheme and inspect name the rule', async () => {
    const o = out();
    const r = await quantize(ckpt, o, { preset: 'q4_k_m', minElements: 1, threads: 1 });
    const s = scheme(o);
    for (const name of names) {
      const want = q4km(name);
      if (want === undefined) expect(s[name].method, name).toBe('keep');
      else {
        expect(s[name].bits, name).toBe(want);
        expect(s[name].rule?.recipe, name).toBe('preset q4_k_m');
        expect(s[name].rule?.index, name).toBe(want === 8 ? 1 : want === 6 ? 2 : null);
      }
    }
    const rows = (await inspect(o)).tensors;
    expect(rows.find((t) => t.name === 'lm_head.weight')?.rule).toBe('preset q4_k_m #1');
    expect(rows.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')?.rule).toBe('preset q4_k_m default');
    expect(r.tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')?.rule).toBe('preset q4_k_m #2');
  });

  it("a preset sets bits only: the job's method and codec apply", async () => {
    const o = out();
    await quantize(ckpt, o, { preset: 'q4_k_m', method: 'uniform', codec: 'block', threads: 1 });
    const s = scheme(o);
    expect(s['model.layers.0.self_attn.q_proj.weight']).toMatchObject({ method: 'uniform', granularity: 'block', bits: 4 });
    expect(s['model.layers.0.self_attn.v_proj.weight']).toMatchObject({ method: 'uniform', granularity: 'block', bits: 6 });
  });
});

describe('recipe files', () => {
  const yaml = join(tmp.dir, 'mix.yaml');
  writeFileSync(
    yaml,
    `# first match wins
rules:
  - match: "*.v_proj.weight"
    method: uniform
    bits: 3
  - match: ["model.layers.1.*", "/down_proj/"]
    bits: 5
    granularity: tensor
  - match: "*.k_proj.weight"
    keep: true
default:
  method: kmeans
  bits: 2
  max-iter: 50
`,
  );

  it('YAML: the first matching rule, then the default; keep: true keeps; flag names are accepted', async () => {
    const o = out();
    const r = await quantize(ckpt, o, { recipe: yaml, threads: 1 });
    const s = scheme(o);
    // layer 1's v_proj matches rule 1 before rule 2
    expect(s['model.layers.1.self_attn.v_proj.weight']).toMatchObject({ method: 'uniform', bits: 3, rule: { index: 1 } });
    expect(s['model.layers.1.self_attn.q_proj.weight']).toMatchObject({ method: 'kmeans-optimal', bits: 5, granularity: 'tensor', rule: { index: 2 } });
    expect(s['model.layers.0.mlp.down_proj.weight']).toMatchObject({ bits: 5, rule: { index: 2 } });
    expect(s['model.layers.0.self_attn.k_proj.weight']).toMatchObject({ method: 'keep', rule: { index: 3, match: ['*.k_proj.weight'] } });
    expect(s['model.layers.0.self_attn.q_proj.weight']).toMatchObject({ method: 'kmeans', bits: 2, rule: { index: null } });
    expect((s['model.layers.0.self_attn.q_proj.weight'] as { params?: { maxIter?: number } }).params?.maxIter).toBe(50);
    expect(r.tensors.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')?.rule).toBe(`${yaml} #3`);
  });

  it('JSON and the API object give the same file as the YAML', async () => {
    const recipe = {
      rules: [
        { match: '*.v_proj.weight', method: 'uniform', bits: 3 },
        { match: ['model.layers.1.*', '/down_proj/'], bits: 5, granularity: 'tensor' },
        { match: '*.k_proj.weight', keep: true },
      ],
      default: { method: 'kmeans', bits: 2, maxIter: 50 },
    };
    const json = join(tmp.dir, 'mix.json');
    writeFileSync(json, JSON.stringify(recipe));
    const [a, b, c] = [out(), out(), out()];
    await quantize(ckpt, a, { recipe: yaml, threads: 1 });
    await quantize(ckpt, b, { recipe: json, threads: 1 });
    await quantize(ckpt, c, { recipe: recipe as QuantizeOptions['recipe'], threads: 1 });
    const strip = (f: string) => Object.fromEntries(Object.entries(scheme(f)).map(([k, v]) => [k, { ...v, rule: v.rule && { ...v.rule, recipe: '' } }]));
    expect(strip(b)).toEqual(strip(a));
    expect(strip(c)).toEqual(strip(a));
    // The stored bytes are the same too (the scheme differs only in the recipe's name).
    const data = (f: string) => readFileSync(f).subarray(8 + Number(readFileSync(f).readBigUInt64LE(0)));
    expect(Buffer.compare(data(b), data(a))).toBe(0);
  });

  const bad: [string, string, RegExp][] = [
    ['unknown method', 'rules:\n  - match: "*"\n  - match: "*q_proj*"\n    method: nope\n', /rule 2: option method: unknown method "nope"/],
    ['bits out of range', 'rules:\n  - match: "*"\n    bits: 12\n', /rule 1: option bits: must be an integer from 1 to 8/],
    ['option of another codec', 'rules:\n  - match: "*"\n    block-size: 32\n', /rule 1: option blockSize: applies to the block codec only/],
    ['unknown option', 'rules:\n  - match: "*"\n    bitz: 3\n', /rule 1: unknown option "bitz"/],
    ['job option in a rule', 'rules:\n  - match: "*"\n    importance: x.safetensors\n', /rule 1: option importance belongs to the job/],
    ['no match', 'rules:\n  - bits: 3\n', /rule 1: needs "match"/],
    ['bad regex', 'rules:\n  - match: "/(/"\n', /rule 1: option match: bad regular expression/],
    ['network granularity', 'rules:\n  - match: "*"\n    granularity: network\n', /rule 1: granularity 'network'/],
    ['bad default', 'rules: []\ndefault:\n  method: ecsq\n', /default: option method: method ecsq needs rate/],
    ['not a list', 'rules: 3\n', /"rules" must be a list/],
    ['unknown key', 'rules: []\nextra: 1\n', /unknown key "extra"/],
    ['keep with options', 'rules:\n  - match: "*"\n    keep: true\n    bits: 3\n', /rule 1: keep: true takes no options/],
    ['not YAML', 'rules: [\n', /recipe is not valid YAML/],
  ];
  it.each(bad)('%s: E_ARGUMENT naming the file and the rule, before any work', async (_what, text, message) => {
    const file = join(tmp.dir, `bad${n++}.yaml`);
    writeFileSync(file, text);
    const o = out();
    let progressed = false;
    const e = await quantize(ckpt, o, { recipe: file, onProgress: () => (progressed = true) }).then(
      () => undefined,
      (x: unknown) => x as { code: string; message: string; file?: string },
    );
    expect(e?.code).toBe('E_ARGUMENT');
    expect(e?.message).toMatch(message);
    expect(e?.file).toBe(file);
    expect(existsSync(o)).toBe(false);
    expect(progressed).toBe(false);
  });

  it('a missing recipe file is E_IO naming it; recipe and preset together are refused', async () => {
    await expect(quantize(ckpt, out(), { recipe: join(tmp.dir, 'none.yaml') })).rejects.toMatchObject({ code: 'E_IO', file: join(tmp.dir, 'none.yaml') });
    await expect(quantize(ckpt, out(), { recipe: 'x.yaml', preset: 'q4_k_m' })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringContaining('not both'),
    });
    await expect(quantize(ckpt, out(), { preset: 'q9' })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('q4_k_m') });
  });

  it('a rule that matches no quantized tensor is a warning', async () => {
    const r = await quantize(ckpt, out(), { recipe: { rules: [{ match: '*.nothing', bits: 3 }] }, threads: 1 });
    expect(r.warnings?.join('\n')).toMatch(/recipe #1 \(\*\.nothing\) matches no tensor/);
  });
});

describe('allocate: the least distortion within the budget', () => {
  /** Every assignment, enumerated. */
  function brute(items: RdPoint[][], budget: number): number | undefined {
    let best: number | undefined;
    const rec = (i: number, bytes: number, dist: number) => {
      if (bytes > budget) return;
      if (i === items.length) {
        if (best === undefined || dist < best) best = dist;
        return;
      }
      for (const p of items[i]) rec(i + 1, bytes + p.bytes, dist + p.distortion);
    };
    rec(0, 0, 0);
    return best;
  }

  it('equals brute force over all assignments (300 random instances), and meets the budget', () => {
    const r = mulberry32(7);
    for (let trial = 0; trial < 300; trial++) {
      const items: RdPoint[][] = Array.from({ length: 1 + Math.floor(r() * 5) }, () =>
        Array.from({ length: 1 + Math.floor(r() * 5) }, () => ({ bytes: 1 + Math.floor(r() * 50), distortion: r() * 100 })),
      );
      const budget = Math.floor(r() * 150);
      const want = brute(items, budget);
      const got = allocate(items, budget);
      if (want === undefined) {
        expect(got).toBeUndefined();
        continue;
      }
      expect(got?.exact).toBe(true);
      expect(got!.distortion).toBeCloseTo(want, 9);
      expect(got!.choice.reduce((a, j, i) => a + items[i][j].bytes, 0)).toBeLessThanOrEqual(budget);
      expect(got!.choice.reduce((a, j, i) => a + items[i][j].distortion, 0)).toBeCloseTo(got!.distortion, 9);
    }
  });

  it('past the state cap the greedy still meets the budget and never beats the exact answer', () => {
    const r = mulberry32(9);
    for (let trial = 0; trial < 100; trial++) {
      // Convex rate-distortion curves (as quantizers give): distortion falls by a factor per added byte.
      const items: RdPoint[][] = Array.from({ length: 6 }, () => {
        const scale = 1 + r() * 10,
          size = 1 + Math.floor(r() * 9);
        return [2, 3, 4, 5, 6].map((b) => ({ bytes: b * size, distortion: scale * 4 ** -b }));
      });
      const least = items.reduce((a, pts) => a + pts[0].bytes, 0);
      const budget = least + Math.floor(r() * 150);
      const exact = allocate(items, budget)!;
      const g = allocate(items, budget, 1)!;
      expect(g.exact).toBe(false);
      expect(g.bytes).toBeLessThanOrEqual(budget);
      expect(g.distortion).toBeGreaterThanOrEqual(exact.distortion - 1e-12);
    }
  });
});

describe('size budgets', () => {
  const small = join(tmp.dir, 'small.safetensors');
  // Three tensors of different spread, so that bits are worth more in some than in others.
  writeSafetensors(small, [
    {
      name: 'a',
      dtype: 'F32',
      shape: [32, 64],
      data: encode(
        Array.from(gaussian(2048, 1), (v) => v * 1.0),
        'F32',
      ),
    },
    {
      name: 'b',
      dtype: 'F32',
      shape: [16, 64],
      data: encode(
        Array.from(gaussian(1024, 2), (v, i) => v * 0.1 * (i % 7 === 0 ? 6 : 1)),
        'F32',
      ),
    },
    {
      name: 'c',
      dtype: 'F32',
      shape: [64, 32],
      data: encode(
        Array.from(gaussian(2048, 3), (v) => v * 0.01),
        'F32',
      ),
    },
    { name: 'norm', dtype: 'F32', shape: [64], data: encode(Array.from(gaussian(64, 4)), 'F32') },
  ]);
  const base: QuantizeOptions = { method: 'kmeans-optimal', granularity: 'tensor', minElements: 1000, threads: 1 };

  it('maxBpw: the written bits per weight are within it, with the least total squared error of all assignments (brute force)', async () => {
    // Each tensor alone at each bits: its bytes and squared error, measured by quantize itself.
    const point: Record<string, Record<number, { bytes: number; sse: number }>> = {};
    for (const t of ['a', 'b', 'c'])
      for (let b = 2; b <= 8; b++) {
        const r = await quantize(small, out(), { ...base, bits: b, include: [t] });
        const row = r.tensors.find((x) => x.name === t)!;
        (point[t] ??= {})[b] = { bytes: row.bytesOut, sse: row.mse * row.numel };
      }
    const numel = 2048 + 1024 + 2048 + 64;
    for (const maxBpw of [2.6, 3.5, 4.2, 6]) {
      const r = await quantize(small, out(), { ...base, maxBpw });
      expect(r.total.bitsPerWeight).toBeLessThanOrEqual(maxBpw);
      let best = Infinity;
      for (let x = 2; x <= 8; x++)
        for (let y = 2; y <= 8; y++)
          for (let z = 2; z <= 8; z++) {
            const bytes = point.a[x].bytes + point.b[y].bytes + point.c[z].bytes + 64 * 4;
            if (bytes * 8 > maxBpw * numel) continue;
            best = Math.min(best, point.a[x].sse + point.b[y].sse + point.c[z].sse);
          }
      const sse = r.tensors.reduce((a, t) => a + t.mse * t.numel, 0);
      expect(sse / best).toBeCloseTo(1, 9);
    }
  });

  it('targetSize: the written file is at most the target; a target no choice meets is E_ARGUMENT and writes nothing', async () => {
    // The header takes a few kB (quantize reserves 4 kB and more); the data about 1-2 kB at these bits.
    for (const target of [11500, 12500, 14000]) {
      const o = out();
      await quantize(small, o, { ...base, targetSize: target });
      expect(statSync(o).size).toBeLessThanOrEqual(target);
    }
    const o = out();
    await expect(quantize(small, o, { ...base, targetSize: 10000 })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/targetSize 10000 cannot be met/),
    });
    await expect(quantize(small, o, { ...base, maxBpw: 1 })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/maxBpw 1 cannot be met/),
    });
    expect(existsSync(o)).toBe(false);
  });

  it('a budget with bits, or with a method whose size is not its bits, is refused before any work', async () => {
    await expect(quantize(small, out(), { ...base, maxBpw: 4, bits: 3 })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringContaining('give bits or maxBpw'),
    });
    // A recipe rule's method is checked before any tensor is read too.
    await expect(quantize(small, out(), { minElements: 1000, maxBpw: 4, recipe: { rules: [{ match: 'a', method: 'pq' }] } })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringContaining('method pq sizes its codes'),
    });
    await expect(quantize(small, out(), { ...base, method: 'ecsq', rate: 2, maxBpw: 4 })).rejects.toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringContaining('method ecsq sets its size by rate'),
    });
  });

  it('a recipe rule that sets bits keeps them; the others are allocated', async () => {
    const o = out();
    const r = await quantize(small, o, { ...base, maxBpw: 4, recipe: { rules: [{ match: 'a', bits: 2 }] } });
    expect(r.tensors.find((t) => t.name === 'a')?.bits).toBe(2);
    expect(r.total.bitsPerWeight).toBeLessThanOrEqual(4);
  });
});

describe('defaults give the bits asked for', () => {
  it('scalar codebooks are F16 by default (vector codewords F32); ecsq works per tensor', async () => {
    const [a, b, c] = [out(), out(), out()];
    await quantize(ckpt, a, { threads: 1 });
    expect(
      Object.values(scheme(a))
        .filter((s) => s.method !== 'keep')
        .every((s) => s.codebookDtype === 'F16'),
    ).toBe(true);
    await quantize(ckpt, b, { method: 'ecsq', rate: 3, threads: 1, include: ['*.q_proj.weight'] });
    expect(
      Object.values(scheme(b))
        .filter((s) => s.method !== 'keep')
        .every((s) => s.granularity === 'tensor'),
    ).toBe(true);
    await quantize(ckpt, c, { method: 'pq', threads: 1, include: ['*.q_proj.weight'] });
    expect(
      Object.values(scheme(c))
        .filter((s) => s.method !== 'keep')
        .every((s) => s.codebookDtype === 'F32'),
    ).toBe(true);
  });

  it('4 bits per row on the real emotion checkpoint: F16 codebooks cost no SQNR (< 0.001 dB) and fewer bits than F32', async () => {
    const emotion = join(__dirname, 'fixtures', 'emotion.f16.safetensors');
    const f16 = await quantize(emotion, out(), { bits: 4, threads: 1 });
    const f32 = await quantize(emotion, out(), { bits: 4, threads: 1, codebookDtype: 'F32' });
    expect(Math.abs(f16.total.quantizedSqnrDb! - f32.total.quantizedSqnrDb!)).toBeLessThan(0.001);
    expect(f16.total.bytesOut).toBeLessThan(f32.total.bytesOut);
  });
});

describe('progress with ETA', () => {
  it('bytes done never fall within a phase, the last event of each phase is its total, and rate and ETA follow', async () => {
    const events: Progress[] = [];
    await quantize(ckpt, out(), { maxBpw: 4, threads: 1, onProgress: (p) => events.push(p) });
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(expect.arrayContaining(['allocate', 'quantize', 'copy']));
    for (const phase of ['allocate', 'quantize'] as const) {
      // 'quantize' and 'copy' are one job's events (one clock): take them together.
      const ev = events.filter((e) => (phase === 'allocate' ? e.phase === 'allocate' : e.phase !== 'allocate'));
      for (let i = 1; i < ev.length; i++) {
        expect(ev[i].bytesDone).toBeGreaterThanOrEqual(ev[i - 1].bytesDone);
        expect(ev[i].elapsedSeconds).toBeGreaterThanOrEqual(ev[i - 1].elapsedSeconds);
      }
      const last = ev[ev.length - 1];
      expect(last.bytesDone).toBe(last.bytesTotal);
      expect(last.etaSeconds).toBe(0);
      for (const e of ev) {
        expect(e.bytesDone).toBeLessThanOrEqual(e.bytesTotal);
        if (e.bytesPerSecond > 0) {
          expect(e.bytesPerSecond).toBeCloseTo(e.bytesDone / e.elapsedSeconds, 6);
          expect(e.etaSeconds).toBeCloseTo((e.bytesTotal - e.bytesDone) / e.bytesPerSecond, 6);
        }
      }
    }
    // Each phase ends with its per-tensor event for the last tensor (index = count, no `within`).
    const alloc = events.filter((e) => e.phase === 'allocate');
    expect(alloc[alloc.length - 1]).toMatchObject({ index: alloc[0].count });
    expect(alloc[alloc.length - 1].within).toBeUndefined();
    // The quantize phase's total is every tensor's input bytes.
    const q = events.filter((e) => e.phase !== 'allocate');
    const file = readSafetensors(ckpt);
    const bytes = Object.values(file.header).reduce((a, e) => a + (e.data_offsets[1] - e.data_offsets[0]), 0);
    expect(q[q.length - 1].bytesTotal).toBe(bytes);
  });
});

describe('CLI', () => {
  const CLI = join(__dirname, '..', 'dist', 'cli.js');
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WEIGHTPRESS_PREFER_LOCAL: '1' }, timeout: 120_000 });
    if (r.error) throw r.error;
    return r;
  };

  it('--preset with --json: each tensor names its rule; the table has a rule column', () => {
    const r = cli('quantize', ckpt, '-o', out(), '--preset', 'q4_k_m', '--json', '--threads', '1');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/\r|ETA/); // no progress bar: stderr is no terminal
    const j = JSON.parse(r.stdout) as { tensors: { name: string; rule?: string; bits: number }[] };
    expect(j.tensors.find((t) => t.name === 'lm_head.weight')).toMatchObject({ bits: 8, rule: 'preset q4_k_m #1' });
    const t = cli('quantize', ckpt, '-o', out(), '--preset', 'q4_k_m', '--threads', '1');
    expect(t.stdout.split('\n')[0]).toMatch(/\brule$/);
    expect(t.stdout).toContain('preset q4_k_m #2');
  });

  it('a bad recipe: exit 2, one line naming the file, the rule and the problem', () => {
    const file = join(tmp.dir, 'cli-bad.yaml');
    writeFileSync(file, 'rules:\n  - match: "*"\n  - match: "*v_proj*"\n    codec: nope\n');
    const o = out();
    const r = cli('quantize', ckpt, '-o', o, '--recipe', file);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/E_ARGUMENT/);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toMatch(/rule 2: option codec: must be one of/);
    expect(existsSync(o)).toBe(false);
  });

  it('--max-bpw: the report is within it; --progress draws bytes, rate and ETA on stderr; stderr stays empty without it', () => {
    const r = cli('quantize', ckpt, '-o', out(), '--max-bpw', '3.5', '--json', '--threads', '1');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout) as { total: { bitsPerWeight: number } }).total.bitsPerWeight).toBeLessThanOrEqual(3.5);
    const p = cli('quantize', ckpt, '-o', out(), '--max-bpw', '3.5', '--progress', '--threads', '1');
    expect(p.status, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/allocate \[[#.]+\] +\d+% [\d.]+ MB\/[\d.]+ MB [\d.]+ MB\/s (ETA \d+s|in \d+s)/);
    expect(p.stderr).toMatch(/\[#+\] 100% [\d.]+ MB\/[\d.]+ MB [\d.]+ MB\/s in \d+s/);
  });
});
