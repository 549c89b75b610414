/**
 * normal-float (QLoRA's NormalFloat): the 4-bit table against the published NF4 values (Dettmers et al., QLoRA,
 * 2023, Appendix E; the same list bitsandbytes ships), scale equivariance, and a whole tensor quantized per group of
 * 64 against a reference written here: each weight becomes the nearest of absmax(group) x NF4.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { decode, quantize, solveSync } from '../lib/index.js';
import { decodeBytes, encode, gaussian, readSafetensors, tempDir, writeSafetensors } from './helpers.js';

const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('normal-float', () => {
  it('gives the published NF4 table at 4 bits (values in [-1, 1] scaled by absmax)', () => {
    const lv = solveSync('normal-float', Float64Array.from([-0.25, 0.1, 1]), { k: 16 });
    expect(lv.length).toBe(16);
    // bitsandbytes builds it in float32 (torch.linspace): agreement to about 1e-6.
    lv.forEach((v, i) => expect(Math.abs(v - NF4[i])).toBeLessThan(2e-6));
  });

  it('is scale equivariant and has an exact zero at every width', () => {
    const x = gaussian(500, 3);
    for (const k of [4, 8, 16, 32, 256]) {
      const a = solveSync('normal-float', x, { k });
      const b = solveSync('normal-float', Float64Array.from(x, (v) => -3.5 * v), { k });
      const m = Math.max(...Array.from(x, Math.abs));
      expect(a.length).toBe(k);
      expect(a.includes(0)).toBe(true);
      expect(Math.max(...Array.from(a, Math.abs))).toBeCloseTo(m, 12);
      a.forEach((v, i) => expect(b[i]).toBeCloseTo(3.5 * v, 9));
    }
  });

  it('per group of 64: every weight decodes to the nearest of absmax x NF4', async () => {
    const rows = 32, cols = 128;
    const x = Float32Array.from(gaussian(rows * cols, 8), (v, i) => v * 0.02 * (1 + (i % 7)));
    const input = join(tmp.dir, 'nf.safetensors');
    writeSafetensors(input, [{ name: 'w', dtype: 'F32', shape: [rows, cols], data: encode(x, 'F32') }]);
    const out = join(tmp.dir, 'nf.wp.safetensors');
    await quantize(input, out, { method: 'normal-float', bits: 4, granularity: 'group', groupSize: 64, minElements: 1 });
    await decode(out, out + '.dense', { dtype: 'F32' });
    const got = decodeBytes(readSafetensors(out + '.dense').tensor('w'), 'F32');
    let far = 0;
    for (let g = 0; g < x.length / 64; g++) {
      const grp = x.subarray(g * 64, g * 64 + 64);
      const m = Math.max(...Array.from(grp, Math.abs));
      for (let i = 0; i < 64; i++) {
        let best = Infinity, want = 0;
        for (const t of NF4) if (Math.abs(grp[i] - t * m) < best) { best = Math.abs(grp[i] - t * m); want = t * m; }
        if (Math.abs(got[g * 64 + i] - want) > 1e-5 * m) far++;
      }
    }
    expect(far).toBe(0);
  });
});
