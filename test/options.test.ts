/**
 * Options as data: every option is declared once (job: lib/validate.ts, codecs: lib/codecs/, methods:
 * lib/methods/), and validation, defaults, the CLI flags and `quantize --help` come from the declarations. These
 * tests loop over the declarations and the method and codec registries.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { CODECS } from '../lib/codecs/registry.js';
import { ArgumentError } from '../lib/errors.js';
import { COMPRESSION_RATIO, RATE, defaultText, type OptionSpec } from '../lib/methods/options.js';
import { METHOD_OPTIONS, METHODS, type MethodEntry, type MethodName } from '../lib/methods/registry.js';
import { CODEC_OPTIONS, JOB_OPTIONS, QUANTIZE_DEFAULTS, QUANTIZE_KEYS, QUANTIZE_OPTIONS, resolveQuantizeOptions, type QuantizeOptions } from '../lib/validate.js';

const CLI = join(__dirname, '..', 'dist', 'cli.js');
const help = execFileSync(process.execPath, [CLI, 'quantize', '--help'], { encoding: 'utf8' });

/** A method that takes the option (the default method for job and codec options). */
function methodFor(spec: OptionSpec): MethodEntry {
  return METHOD_OPTIONS.find((r) => r.spec === spec)?.methods[0] ?? METHODS.find((m) => m.name === 'kmeans-optimal')!;
}

/** The options a method needs to run at all (importance weights, a rate), leaving out `spec` and what excludes it. */
function baseFor(m: MethodEntry, spec?: OptionSpec): QuantizeOptions {
  const o: QuantizeOptions = { method: m.name as MethodName };
  if (m.importance === 'required') o.importance = 'importance.safetensors';
  if (m.check?.({}) !== undefined && spec !== RATE && spec !== COMPRESSION_RATIO) o.rate = 2;
  return o;
}

/** The error a call throws (it must throw). */
function thrown(f: () => unknown): ArgumentError {
  try {
    f();
  } catch (e) {
    return e as ArgumentError;
  }
  throw new Error('expected an error');
}

/** A value of the option's type outside its range (or not of its type where it has no range). */
function outOfRange(spec: OptionSpec): unknown {
  switch (spec.type) {
    case 'int':
    case 'intOrAuto':
      return spec.max! + 1;
    case 'number':
      return spec.max !== undefined ? spec.max + 1 : spec.min !== undefined ? spec.min / 2 : -1;
    case 'boolean':
      return 'yes';
    case 'enum':
      return 'no-such-value';
    case 'string':
      return '';
    case 'strings':
      return ['/(/'];
    case 'size':
      return -5;
    case 'doubleQuant':
      return { bits: 9, superBlock: 256 };
  }
}

describe('declarations', () => {
  it('every option is declared once, with a camelCase key and a kebab-case flag', () => {
    const names = QUANTIZE_OPTIONS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    const flags = QUANTIZE_OPTIONS.flatMap((s) => [s.flag, ...(s.aliases ?? []).map((a) => a.flag)]);
    expect(new Set(flags).size).toBe(flags.length);
    for (const s of QUANTIZE_OPTIONS) {
      expect(s.name, s.name).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      expect(s.flag, s.name).toMatch(/^--[a-z][a-z0-9-]*$/);
      expect(s.doc.length, s.name).toBeGreaterThan(0);
      if (s.type === 'enum') expect(s.values?.length, s.name).toBeGreaterThan(0);
      if (s.type === 'int') expect(Number.isInteger(s.min) && Number.isInteger(s.max), s.name).toBe(true);
    }
  });

  it('the declared options are exactly the keys of QuantizeOptions (but the callbacks)', () => {
    // The compiler holds this literal to every key of QuantizeOptions but signal and onProgress, and no other;
    // report and reportTensors are quantize()'s own (the report file), no option of the plan.
    const every: Required<Omit<QuantizeOptions, 'signal' | 'onProgress' | 'report' | 'reportTensors'>> = {
      method: 'kmeans', codec: 'scalar', maxShardSize: 1, bits: 4, granularity: 'row', groupSize: 1, include: [], exclude: [], minDims: 0, minElements: 0,
      seed: 0, maxIter: 1, symmetric: false, step: 'mse', codebookDtype: 'F32', importance: '', imatrix: '', importanceKind: 'hessian', importanceMap: [], calibration: '', calibrationMap: [], exact: true,
      rate: 1, compressionRatio: 1, lambda: 1, lambda2: 1, targetValues: 1, entropy: 'none', blockSize: 1, scale: 'optimal', table: 'tensor',
      doubleQuant: false, rounds: 1, scaleDtype: 'F16', threads: 0, device: 'auto', subvector: 8, centroids: 256, rowScale: false, codebookRows: 0, iterations: 20, rank: 'auto',
      levels: '', tStart: 1, tSlope: 1, epochs: 1, stepsPerEpoch: 1, learningRate: 1, learnBiases: false, force: false, preserveMean: 'auto',
      recipe: '', preset: 'q4_k_m', maxBpw: 4, targetSize: 1,
    };
    expect(QUANTIZE_OPTIONS.map((s) => s.name).sort()).toEqual(Object.keys(every).sort());
    expect([...QUANTIZE_KEYS].sort()).toEqual([...Object.keys(every), 'signal', 'onProgress'].sort());
  });

  it('the job, codec and method groups partition the options; shared method options are one declaration', () => {
    expect(QUANTIZE_OPTIONS.length).toBe(JOB_OPTIONS.length + CODEC_OPTIONS.length + METHOD_OPTIONS.length);
    for (const m of METHODS) for (const spec of m.options) expect(METHOD_OPTIONS.find((r) => r.spec === spec)?.methods, `${m.name} ${spec.name}`).toContain(m);
    for (const c of CODECS) for (const spec of c.options ?? []) expect(CODEC_OPTIONS.some((r) => r.spec === spec && r.codecs.includes(c.name))).toBe(true);
    // seed and maxIter are declared once and taken by several methods.
    const seed = METHOD_OPTIONS.find((r) => r.spec.name === 'seed')!;
    expect(seed.methods.map((m) => m.name)).toEqual(expect.arrayContaining(['kmeans', 'hessian-kmeans']));
  });

  it('QUANTIZE_DEFAULTS holds the declared defaults (blockSize 16 from the block codec)', () => {
    for (const s of QUANTIZE_OPTIONS) expect(QUANTIZE_DEFAULTS[s.name], s.name).toEqual(s.default);
    expect(CODEC_OPTIONS.find((r) => r.spec.name === 'blockSize')).toMatchObject({ codecs: ['block'], spec: { default: 16 } });
  });
});

describe('quantize --help from the declarations', () => {
  it.each(QUANTIZE_OPTIONS.map((s) => [s.name, s] as const))('%s: its flag, doc and default', (_name, spec) => {
    const at = help.indexOf(`  ${spec.flag}${spec.metavar ? ` ${spec.metavar}` : ''}`);
    expect(at, spec.flag).toBeGreaterThan(0);
    // The entry runs to the next line that starts a flag or a group; wrapped lines join with one space.
    const rest = help.slice(at).split('\n');
    const end = rest.findIndex((l, i) => i > 0 && !/^ {27}/.test(l));
    const entry = rest.slice(0, end).join(' ').replace(/\s+/g, ' ');
    expect(entry).toContain(spec.doc.split(' ').slice(0, 4).join(' '));
    const d = defaultText(spec);
    if (d !== undefined) expect(entry).toContain(`(default ${d.replace(/\s+/g, ' ')})`);
    for (const a of spec.aliases ?? []) expect(help).toContain(`  ${a.flag}`);
  });

  it('groups: job, each codec with options, methods (each method option names its methods)', () => {
    expect(help).toContain('job options:');
    for (const c of CODECS.filter((x) => x.options?.length)) expect(help).toContain(`codec options, ${c.name} (--codec ${c.name}):`);
    const methodPart = help.slice(help.indexOf('method options'));
    for (const r of METHOD_OPTIONS) expect(methodPart.replace(/\s+/g, ' ')).toContain(`[${r.methods.map((m) => m.name).join(', ')}]`);
    for (const m of METHODS) expect(help).toContain(`${m.name}: ${m.summary.split(' ').slice(0, 3).join(' ')}`);
  });
});

describe('defaults from the declarations', () => {
  it.each(METHODS.map((m) => [m.name, m] as const))('%s: every omitted option resolves to its default', (_name, m) => {
    const base = baseFor(m);
    const r = resolveQuantizeOptions(base) as unknown as Record<string, unknown>;
    for (const spec of QUANTIZE_OPTIONS) {
      if (spec.name in base) continue;
      if (spec.name === 'bits') expect(r.bits, `${m.name} bits`).toBe(m.defaultBits(base));
      else if (spec.name === 'entropy') expect(r.entropy, `${m.name} entropy`).toBe(m.entropy);
      else if (spec.name === 'codec') expect(r.codec, `${m.name} codec`).toBe(m.codec ?? spec.default);
      // A method's own default granularity (ecsq: tensor), a codec's own default codebook dtype (vector: F32).
      else if (spec.name === 'granularity') expect(r.granularity, `${m.name} granularity`).toBe(m.granularity ?? spec.default);
      // ... or the method's own codec defaults (normal-float: F32 levels).
      else if (spec.name === 'codebookDtype')
        expect(r.codebookDtype, `${m.name} codebookDtype`).toBe(m.codec === 'vector' ? 'F32' : ((m as { codecDefaults?: Record<string, unknown> }).codecDefaults?.codebookDtype ?? spec.default));
      else expect(r[spec.name], `${m.name} ${spec.name}`).toEqual(spec.default);
    }
  });

  it("bits and entropy: the declared default unless the method has its own (ecsq: huffman, bits from the rate)", () => {
    expect(resolveQuantizeOptions({ method: 'kmeans' })).toMatchObject({ bits: 4, entropy: 'none' });
    expect(resolveQuantizeOptions({ method: 'ecsq', rate: 2 })).toMatchObject({ bits: 5, entropy: 'huffman' });
  });
});

describe('validation from the declarations', () => {
  it.each(QUANTIZE_OPTIONS.map((s) => [s.name, s] as const))('%s: a misspelled key is rejected, naming the valid ones', (_name, spec) => {
    const bad = spec.name.toLowerCase() !== spec.name ? spec.name.toLowerCase() : `${spec.name}s`;
    const e = thrown(() => resolveQuantizeOptions({ [bad]: spec.default ?? 1 } as QuantizeOptions));
    expect(e).toBeInstanceOf(ArgumentError);
    expect(e.code).toBe('E_ARGUMENT');
    expect(e.message).toContain(`option ${bad}: unknown quantize option (known: `);
    for (const k of QUANTIZE_KEYS) expect(e.message).toContain(k);
  });

  it.each(QUANTIZE_OPTIONS.map((s) => [s.name, s] as const))('%s: an out-of-range value is rejected', (_name, spec) => {
    const m = methodFor(spec);
    const e = thrown(() => resolveQuantizeOptions({ ...baseFor(m, spec), [spec.name]: outOfRange(spec) }));
    expect(e).toBeInstanceOf(ArgumentError);
    expect(e.code).toBe('E_ARGUMENT');
    expect(e.message).toMatch(new RegExp(`^option ${spec.name}\\b`));
  });

  it.each(QUANTIZE_OPTIONS.filter((s) => s.type === 'int' && s.name !== 'bits').map((s) => [s.name, s] as const))('%s: below its range and not an integer', (_name, spec) => {
    const m = methodFor(spec);
    for (const v of [spec.min! - 1, spec.min! + 0.5])
      expect(() => resolveQuantizeOptions({ ...baseFor(m, spec), [spec.name]: v })).toThrow(`option ${spec.name}: must be an integer from ${spec.min} to ${spec.max}`);
  });

  it.each(METHOD_OPTIONS.filter((r) => r.spec.only).map((r) => [r.spec.name, r] as const))('%s: rejected with a method that does not take it', (_name, r) => {
    const other = METHODS.find((m) => !r.methods.includes(m) && !m.check && m.importance === 'optional')!;
    const value = r.spec.type === 'boolean' ? true : r.spec.type === 'string' ? 'ternary' : r.spec.type === 'int' ? r.spec.min : r.spec.min ?? 1;
    expect(() => resolveQuantizeOptions({ method: other.name, [r.spec.name]: value })).toThrow(`option ${r.spec.name}: applies to ${r.spec.only} only, not ${other.name}`);
  });

  it('rate and compressionRatio exclude each other', () => {
    expect(() => resolveQuantizeOptions({ method: 'ecsq', rate: 2, compressionRatio: 8 })).toThrow('option compressionRatio: give rate or compressionRatio, not both');
  });
});

describe('CLI flags from the declarations', () => {
  function cli(...args: string[]) {
    return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  }

  it.each([
    ['--blocksize', '16'],
    ['--maxiter', '10'],
  ])('a misspelled flag %s: exit 2, naming it', (flag, value) => {
    const r = cli('quantize', 'none.safetensors', '-o', 'none-out.safetensors', flag, value);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(flag);
    // ... and listing the valid flags, every declared one among them.
    expect(r.stderr).toContain('valid: ');
    for (const spec of QUANTIZE_OPTIONS) expect(r.stderr).toContain(spec.flag);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    ['--max-iter', 'ten', 'option --max-iter: expected an integer'],
    ['--rate', 'x', 'option --rate: expected a number'],
    ['--double-quant', '6', 'option --double-quant: expected BITS/SUPERBLOCK'],
    ['--block-size', '0', 'option blockSize: must be an integer from 1 to 1048576, got 0'],
    ['--codebook-dtype', 'f8', 'option codebookDtype: must be one of F32, F16, got "F8"'],
  ])('%s %s: exit 2, one line', (flag, value, message) => {
    const r = cli('quantize', 'none.safetensors', '-o', 'none-out.safetensors', flag, value);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });
});
