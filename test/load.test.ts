/** The loader: the order of attempts, and one error listing every failed attempt with the fix. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { candidates, loadFrom } from '../lib/load.js';
import { tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('loadNative', () => {
  it('tries an explicit binary, then prebuilds, then the local build (tests prefer the local build)', () => {
    const root = tmp.dir;
    const pre = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    mkdirSync(pre, { recursive: true });
    writeFileSync(join(pre, 'weightpress.glibc.node'), 'not a binary');
    const saved = process.env.WEIGHTPRESS_PREFER_LOCAL;
    delete process.env.WEIGHTPRESS_PREFER_LOCAL;
    try {
      const c = candidates(root);
      expect(c[0]).toBe(join(pre, 'weightpress.glibc.node'));
      expect(c.indexOf(join(root, 'build', 'Release', 'weightpress.node'))).toBeGreaterThan(0);
    } finally {
      if (saved !== undefined) process.env.WEIGHTPRESS_PREFER_LOCAL = saved;
    }
    expect(candidates(root)[0]).toBe(join(root, 'build', 'Release', 'weightpress.node'));
  });

  it('when nothing loads, lists every attempt with its reason and the command that fixes it', () => {
    const root = tmp.dir;
    const bad = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'weightpress.glibc.node');
    try {
      loadFrom(candidates(root), root);
      expect.unreachable();
    } catch (e) {
      const err = e as { code: string; message: string };
      expect(err.code).toBe('E_LOAD');
      expect(err.message).toContain(`${bad}: `);
      expect(err.message).toContain(`${join(root, 'build', 'Release', 'weightpress.node')}: not found`);
      expect(err.message).toContain('npm run build:native');
      expect(err.message).toContain('node-gyp rebuild');
    }
  });
});
