/**
 * Installing weightpress as a user does: pack the main package and this platform's prebuilt package
 * (scripts/pack-all.mjs --reuse-build), install both tarballs into a new empty project offline, with and without
 * install scripts, and use it: the CLI on the fixture, an ESM import, a CommonJS require. Nothing may be compiled (no
 * build/ in the installed package). Without the platform package, the error names the package and the fix.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { platformPackage } from '../lib/load.js';
import { tempDir } from './helpers.js';

const repo = join(__dirname, '..');
const fixture = join(__dirname, 'fixtures', 'emotion.f16.safetensors');
const tmp = tempDir();
afterAll(() => tmp.cleanup());
const plat = platformPackage();
const pack = join(tmp.dir, 'pack');
let tarballs: { main: string; platform: string; mainBytes: number; platformBytes: number };

/** The environment of a user's shell: none of npm's or the test runner's own variables. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|WEIGHTPRESS_|VITEST|NODE_OPTIONS)/i.test(k)) env[k] = v;
  return env;
}

function project(name: string, extra: Record<string, unknown> = {}): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...extra }));
  return dir;
}

function npm(cwd: string, args: string[]) {
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd, env: userEnv(), encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function node(cwd: string, args: string[]) {
  return spawnSync(process.execPath, args, { cwd, env: userEnv(), encoding: 'utf8' });
}

/** The installed package works: the CLI quantizes the fixture, ESM import and CommonJS require give the API. */
function works(dir: string) {
  const cli = join(dir, 'node_modules', 'weightpress', 'dist', 'cli.js');
  const q = node(dir, [cli, 'quantize', fixture, '-o', join(dir, 'out.safetensors'), '--json']);
  expect(q.status, q.stderr).toBe(0);
  expect(JSON.parse(q.stdout).total.quantizedTensors).toBeGreaterThan(0);
  const esm = node(dir, ['--input-type=module', '-e', "import { quantize, versions } from 'weightpress'; console.log(typeof quantize, versions().cudaCompiled)"]);
  const cjs = node(dir, ['-e', "const w = require('weightpress'); console.log(typeof w.quantize, w.versions().cudaCompiled)"]);
  const want = JSON.parse(readFileSync(join(repo, 'packages', plat!.dir, 'build-info.json'), 'utf8')).cudaCompiled;
  expect(esm.stdout.trim(), esm.stderr).toBe(`function ${want}`);
  expect(cjs.stdout.trim(), cjs.stderr).toBe(`function ${want}`);
  // Nothing was compiled.
  expect(existsSync(join(dir, 'node_modules', 'weightpress', 'build'))).toBe(false);
}

describe.skipIf(!plat)('npm install of the packed tarballs', () => {
  beforeAll(() => {
    const lines = execFileSync(process.execPath, [join(repo, 'scripts', 'pack-all.mjs'), '--reuse-build', '--out', pack], { cwd: repo, encoding: 'utf8' }).trim().split('\n');
    const [main, platform] = lines.map((l) => l.split('\t'));
    tarballs = { main: main[0], platform: platform[0], mainBytes: Number(main[1]), platformBytes: Number(platform[1]) };
  }, 120_000);

  it('the main tarball holds what users need: no tests, benches or build trees', () => {
    const files = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo, env: userEnv(), encoding: 'utf8' }))[0].files.map((f: { path: string }) => f.path) as string[];
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.cjs');
    expect(files).toContain('dist/cli.js');
    expect(files).toContain('scripts/install.mjs');
    expect(files.filter((f) => /^(test|bench|build|packages|pack|lib)\//.test(f) || f.endsWith('.node'))).toEqual([]);
    expect(tarballs.mainBytes).toBeGreaterThan(0);
  });

  it('offline, without install scripts: works at once, nothing compiled', () => {
    const dir = project('no-scripts');
    const r = npm(dir, ['install', '--offline', '--ignore-scripts', tarballs.main, tarballs.platform]);
    expect(r.status, r.out).toBe(0);
    works(dir);
  });

  it('offline, with install scripts: the install step finds the prebuilt and compiles nothing', () => {
    const dir = project('with-scripts');
    // npm >= 11 runs a dependency's install script only when the project allows it.
    const allow = { allowScripts: { weightpress: true, [`file:${tarballs.main}`]: true } };
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'with-scripts', version: '1.0.0', private: true, ...allow }));
    const r = npm(dir, ['install', '--offline', tarballs.main, tarballs.platform]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`weightpress install: using ${join(dir, 'node_modules', plat!.name, 'weightpress.node')}`);
    expect(r.out).not.toMatch(/cmake-js|node-gyp rebuild/);
    works(dir);
  });

  it('without the platform package, the error names the package and the fix', () => {
    const dir = project('no-platform');
    const r = npm(dir, ['install', '--offline', '--ignore-scripts', '--omit=optional', tarballs.main]);
    expect(r.status, r.out).toBe(0);
    const q = node(dir, [join(dir, 'node_modules', 'weightpress', 'dist', 'cli.js'), 'backends']);
    expect(q.status).not.toBe(0);
    expect(q.stderr).toContain('E_LOAD');
    expect(q.stderr).toContain(`${plat!.name} is not installed`);
    expect(q.stderr).toContain(`npm install ${plat!.name}`);
    expect(q.stderr).toContain('WEIGHTPRESS_BUILD_FROM_SOURCE=1');
  });
});
