/** The loader: the order of attempts, and one error listing every failed attempt with the fix. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { candidates, loadFrom, platformPackage } from '../lib/load.js';
import { tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('loadNative', () => {
  it('tries an explicit binary, then the platform package, then the local build (tests prefer the local build)', () => {
    const root = tmp.dir;
    const p = platformPackage();
    const saved = { prefer: process.env.WEIGHTPRESS_PREFER_LOCAL, bin: process.env.WEIGHTPRESS_BINARY };
    delete process.env.WEIGHTPRESS_PREFER_LOCAL;
    process.env.WEIGHTPRESS_BINARY = '/explicit/weightpress.node';
    try {
      const c = candidates(root);
      expect(c[0]).toBe('/explicit/weightpress.node');
      if (p) expect(c[1]).toContain(p.name);
      expect(c.indexOf(join(root, 'build', 'Release', 'weightpress.node'))).toBe(p ? 2 : 1);
      process.env.WEIGHTPRESS_PREFER_LOCAL = '1';
      expect(candidates(root)[1]).toBe(join(root, 'build', 'Release', 'weightpress.node'));
    } finally {
      if (saved.prefer !== undefined) process.env.WEIGHTPRESS_PREFER_LOCAL = saved.prefer;
      else delete process.env.WEIGHTPRESS_PREFER_LOCAL;
      if (saved.bin !== undefined) process.env.WEIGHTPRESS_BINARY = saved.bin;
      else delete process.env.WEIGHTPRESS_BINARY;
    }
  });

  it('names the platform package of each supported platform, and none elsewhere', () => {
    expect(platformPackage('linux', 'x64', 'gnu')).toEqual({ name: '@weightpress/linux-x64-gnu', dir: 'linux-x64-gnu' });
    expect(platformPackage('linux', 'x64', 'musl')).toBeUndefined();
    expect(platformPackage('darwin', 'arm64', undefined)).toBeUndefined();
  });

  it('when nothing loads, lists every attempt with its reason and the command that fixes it', () => {
    const root = tmp.dir;
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    const bad = join(root, 'build', 'Release', 'weightpress.node');
    writeFileSync(bad, 'not a binary');
    try {
      loadFrom([bad, join(root, 'build', 'Debug', 'weightpress.node')], root);
      expect.unreachable();
    } catch (e) {
      const err = e as { code: string; message: string };
      expect(err.code).toBe('E_LOAD');
      expect(err.message).toContain(`${bad}: `);
      expect(err.message).toContain(`${join(root, 'build', 'Debug', 'weightpress.node')}: not found`);
      expect(err.message).toContain('WEIGHTPRESS_BUILD_FROM_SOURCE=1 npm rebuild weightpress');
      expect(err.message).toContain('npm run build:native');
    }
  });
});
