#!/usr/bin/env node
// npm's install step: use a prebuilt binary when one loads here; otherwise build from source with cmake-js
// (CUDA when nvcc is found), falling back to node-gyp (CPU only) when CMake is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const log = (m) => process.stderr.write(`weightpress install: ${m}\n`);

function loads(path) {
  try {
    require(path).versions();
    return true;
  } catch (e) {
    log(`${path} does not load: ${e.message.split('\n')[0]}`);
    return false;
  }
}

const force = process.env.WEIGHTPRESS_BUILD_FROM_SOURCE === '1' || existsSync(join(root, '.git'));
const preDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
if (!force && existsSync(preDir)) {
  for (const f of readdirSync(preDir)) {
    if (f.endsWith('.node') && loads(join(preDir, f))) {
      log(`using prebuilt ${join(preDir, f)}`);
      process.exit(0);
    }
  }
}

function run(cmd, args) {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0;
}

const bin = (name) => join(root, 'node_modules', '.bin', name);
const haveCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
if (haveCmake && existsSync(bin('cmake-js')) && run(bin('cmake-js'), ['rebuild', '--log-level', 'warn'])) {
  if (loads(join(root, 'build', 'Release', 'weightpress.node'))) process.exit(0);
}
log(haveCmake ? 'cmake-js build failed; trying node-gyp (CPU only)' : 'cmake not found; building with node-gyp (CPU only)');
const gyp = existsSync(bin('node-gyp')) ? bin('node-gyp') : 'npx';
const gypArgs = gyp === 'npx' ? ['--yes', 'node-gyp', 'rebuild'] : ['rebuild'];
if (run(gyp, gypArgs) && loads(join(root, 'build', 'Release', 'weightpress.node'))) process.exit(0);
log('could not build the native addon. Install CMake (>= 3.18) and a C++17 compiler, then run `npm rebuild weightpress`.');
process.exit(1);
