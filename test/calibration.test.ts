// The calibration reader (lib/calibration.ts): name lookup, shape and content checks.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { Calibration, inFeaturesOf } from '../lib/calibration.js';
import { WeightpressError } from '../lib/errors.js';
import { encode, mulberry32, tempDir, writeSafetensors } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
function gramOf(xs: number[][], n: number): number[] {
  const h = new Array(n * n).fill(0);
  for (const x of xs) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] += x[i] * x[j];
  return h;
}
const r = mulberry32(7);
const xs = Array.from({ length: 20 }, () => Array.from({ length: 6 }, () => r() - 0.5));
const h = gramOf(xs, 6);
const t = (name: string, shape: number[]) => ({ name, dtype: 'F32', shape, numel: shape.reduce((a, b) => a * b, 1), byteLength: 0, file: 'x' });

describe('calibration reader', () => {
  it('finds a Gram matrix by weight name, module name or .gram, and returns it as F32', async () => {
    const f = join(dir, 'cal.safetensors');
    writeSafetensors(f, [
      { name: 'fc1.weight', dtype: 'F32', shape: [6, 6], data: encode(h, 'F32') },
      { name: 'fc2', dtype: 'F16', shape: [6, 6], data: encode(h, 'F16') },
      { name: 'conv.weight.gram', dtype: 'F64', shape: [6, 6], data: encode(h, 'F64') },
    ]);
    const c = await Calibration.open(f);
    try {
      const a = await c.gramFor(t('fc1.weight', [3, 6]));
      expect(a?.name).toBe('fc1.weight');
      expect(Array.from(a!.h)).toEqual(h.map((v) => Math.fround(v)));
      expect((await c.gramFor(t('fc2.weight', [4, 6])))?.name).toBe('fc2');
      // A conv weight [out, in, kh, kw] has in·kh·kw features per row.
      expect(inFeaturesOf(t('conv.weight', [2, 3, 1, 2]))).toBe(6);
      expect((await c.gramFor(t('conv.weight', [2, 3, 1, 2])))?.name).toBe('conv.weight.gram');
      expect(await c.gramFor(t('other.weight', [3, 6]))).toBeUndefined();
    } finally {
      c.close();
    }
    const m = await Calibration.open(f, ['^layer\\.=>fc1.']);
    try {
      expect((await m.gramFor(t('layer.weight', [3, 6])))?.name).toBe('fc1.weight');
    } finally {
      m.close();
    }
  });

  it('refuses a wrong shape, an asymmetric matrix, NaN and a negative diagonal, naming file and tensor', async () => {
    const bad = (name: string, data: number[], shape = [6, 6]) => {
      const f = join(dir, `${name}.safetensors`);
      writeSafetensors(f, [{ name: 'w', dtype: 'F32', shape, data: encode(data, 'F32') }]);
      return f;
    };
    const asym = [...h];
    asym[1] += 1;
    const nan = [...h];
    nan[3] = NaN;
    const neg = h.map((v, i) => (i === 7 ? -1 : v));
    const cases: [string, string, RegExp][] = [
      [bad('shape', h.slice(0, 30), [5, 6]), 'E_FORMAT', /needs \[6,6\]/],
      [bad('asym', asym), 'E_FORMAT', /not symmetric/],
      [bad('nan', nan), 'E_NONFINITE', /NaN/],
      [bad('neg', neg), 'E_NONFINITE', /negative diagonal/],
    ];
    for (const [file, code, msg] of cases) {
      const c = await Calibration.open(file);
      try {
        const e = await c.gramFor(t('w', [2, 6])).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(WeightpressError);
        expect((e as WeightpressError).code).toBe(code);
        expect((e as Error).message).toMatch(msg);
        expect((e as WeightpressError).file).toBe(file);
        expect((e as WeightpressError).tensor).toBe('w');
      } finally {
        c.close();
      }
    }
  });
});
