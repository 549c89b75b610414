/**
 * Real published weights (../shared/data, converted TF.js models; emotion.f16 is copied into test/fixtures so
 * that this runs on a clone without ../shared). Every checkpoint quantizes and decodes.
 *
 * SQNR floor at 4 bits per row: 18.13 dB, the SQNR of the 4-bit Lloyd-Max quantizer of a Laplacian source
 * (METHODS.md §6). Trained weight rows are between Gaussian (20.22 dB) and Laplacian in tail weight, and an
 * exact per-row optimum can only do better than a fixed-density Lloyd-Max design on rows that are no heavier
 * tailed; a result below it means the solver or the pipeline lost accuracy. Per tensor, the exact optimum must
 * beat (or tie) evenly spaced min-max levels on the same rows, which it must by definition.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, quantize } from '../lib/index.js';
import { readSafetensors, tempDir } from './helpers.js';

const LAPLACE_4BIT_DB = 18.13;
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const shared = join(__dirname, '..', '..', 'shared', 'data');
const files = [join(__dirname, 'fixtures', 'emotion.f16.safetensors')];
if (existsSync(shared)) for (const f of readdirSync(shared).sort()) if (f.endsWith('.safetensors')) files.push(join(shared, f));

describe.each(files)('%s', (file) => {
  const base = file.split('/').pop()!;
  it('quantizes at 4 bits per row above the floor, beating min-max per tensor, and decodes', async () => {
    const out = join(tmp.dir, `${base}.wp`);
    const r = await quantize(file, out, { method: 'kmeans-optimal', bits: 4, granularity: 'row' });
    const u = await quantize(file, join(tmp.dir, `${base}.u`), { method: 'uniform', step: 'minmax', bits: 4, granularity: 'row' });
    expect(r.total.quantizedTensors).toBeGreaterThan(0);
    expect(r.total.sqnrDb!).toBeGreaterThan(LAPLACE_4BIT_DB);
    for (const t of r.tensors.filter((x) => x.method !== 'keep')) {
      const ut = u.tensors.find((x) => x.name === t.name)!;
      expect(t.mse, t.name).toBeLessThanOrEqual(ut.mse * (1 + 1e-6));
    }
    const dense = join(tmp.dir, `${base}.dense`);
    await decode(out, dense);
    const src = readSafetensors(file);
    const d = readSafetensors(dense);
    expect(Object.keys(d.header).sort()).toEqual(Object.keys(src.header).sort());
    for (const [name, e] of Object.entries(src.header)) {
      expect(d.header[name].dtype).toBe(e.dtype);
      expect(d.header[name].shape).toEqual(e.shape);
    }
  });
});
