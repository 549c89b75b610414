/**
 * The seeded mutation fuzzer (test/fuzz.ts) over both readers: a fixed corpus of variants in every run
 * (WP_FUZZ_COUNT, WP_FUZZ_SEED override it; `npm run fuzz -- --count N --seed S`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fuzz } from './fuzz.js';
import { tempDir } from './helpers.js';

const COUNT = Number(process.env.WP_FUZZ_COUNT ?? 2000);
const SEED = Number(process.env.WP_FUZZ_SEED ?? 20261130);

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  ({ dir, cleanup } = tempDir());
});
afterAll(() => cleanup());

describe('mutated files: typed errors naming the file, or exactly the same tensors', { timeout: Math.max(120_000, COUNT * 200) }, () => {
  it(`${COUNT} variants from seed ${SEED}: no untyped error, no partial output, no garbage decoded`, async () => {
    const r = await fuzz(COUNT, SEED, dir);
    console.log(
      `fuzz: ${r.tried} variants (seed ${SEED}): ${r.rejected} rejected with a typed error, ${r.same} decoded exactly as before, ` +
        `${r.decodedOther} decoded to other values (data outside streams, re-signed schemes); by kind ${JSON.stringify(r.byKind)}; ${r.failures.length} failures`,
    );
    expect(r.failures.slice(0, 20)).toEqual([]);
    expect(r.tried).toBe(COUNT);
    // The corpus exercises both outcomes of every kind that can have both.
    expect(r.rejected).toBeGreaterThan(0);
    expect(r.same).toBeGreaterThan(0);
  });
});
