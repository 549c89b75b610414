#!/usr/bin/env node
// npm's install step. It never compiles when a prebuilt binary loads, and never touches the network:
//   1. WEIGHTPRESS_BINARY, this platform's package (@weightpress/<platform>) or an existing local build loads: done.
//   2. Otherwise, or when asked (`npm install --build-from-source`, WEIGHTPRESS_BUILD_FROM_SOURCE=1, or a git
//      checkout of weightpress itself), build from source: cmake-js (CUDA when nvcc is found), else node-gyp
//      (CPU only), both resolved from npm's install layout (never fetched). What was found is printed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const log = (m) => process.stderr.write(`weightpress install: ${m}\n`);

function loads(path, quiet = false) {
  try {
    const v = require(path).versions();
    log(`using ${path} (weightpress ${v.weightpress}, CUDA ${v.cudaCompiled ? 'compiled in' : 'not compiled in'})`);
    return true;
  } catch (e) {
    if (!quiet) log(`${path} does not load: ${e.message.split('\n')[0]}`);
    return false;
  }
}

const local = join(root, 'build', 'Release', 'weightpress.node');
const asked = process.env.WEIGHTPRESS_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
const checkout = existsSync(join(root, '.git'));
if (!asked && !checkout) {
  if (process.env.WEIGHTPRESS_BINARY && loads(process.env.WEIGHTPRESS_BINARY)) process.exit(0);
  // An installed package has dist/ (a checkout builds it after this step, in `prepare`).
  const { platformPackage } = await import(pathToFileURL(join(root, 'dist', 'load.js')).href);
  const p = platformPackage();
  if (p) {
    let bin;
    try {
      bin = require.resolve(`${p.name}/weightpress.node`);
    } catch {
      log(`the prebuilt package ${p.name} is not installed (were optional dependencies omitted?)`);
    }
    if (bin && loads(bin)) process.exit(0);
  } else {
    log(`no prebuilt binary is published for ${process.platform}-${process.arch}`);
  }
  if (existsSync(local) && loads(local, true)) process.exit(0);
  log('building from source');
} else {
  log(asked ? 'building from source, as asked' : 'a git checkout: building from source');
}

function firstLine(cmd, args, last = false) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) return undefined;
  const lines = r.stdout.trim().split('\n');
  return (last ? lines[lines.length - 1] : lines[0]).trim();
}
const cmake = firstLine('cmake', ['--version']);
const cxx = firstLine(process.env.CXX || 'c++', ['--version']);
const nvcc = firstLine('nvcc', ['--version'], true);
log(`found: ${cmake ?? 'cmake: not found'}; ${cxx ?? 'C++ compiler: not found'}; ${nvcc ? `nvcc: ${nvcc}` : 'nvcc: not found (CPU only)'}`);

function resolveBin(spec) {
  try {
    return require.resolve(spec);
  } catch {
    return undefined;
  }
}
function run(script, args) {
  log(`${script} ${args.join(' ')}`);
  return spawnSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' }).status === 0;
}

const cmakeJs = resolveBin('cmake-js/bin/cmake-js');
if (!cmakeJs) log('cmake-js is not installed: `npm install cmake-js node-addon-api` to build with CMake (and CUDA)');
if (cmake && cmakeJs && run(cmakeJs, ['rebuild', '--log-level', 'warn']) && loads(local)) process.exit(0);
// node-gyp: npm's own (npm passes its path to install scripts), else an installed one. Never `npx --yes`.
const gyp = process.env.npm_config_node_gyp || resolveBin('node-gyp/bin/node-gyp.js');
if (gyp) {
  log(cmake && cmakeJs ? 'the cmake-js build failed; trying node-gyp (CPU only)' : 'building with node-gyp (CPU only)');
  if (run(gyp, ['rebuild']) && loads(local)) process.exit(0);
}
log(
  'could not get a working native addon. Either install the prebuilt package for this platform, or install CMake ' +
    '(>= 3.18), a C++17 compiler and the packages cmake-js and node-addon-api, then run `WEIGHTPRESS_BUILD_FROM_SOURCE=1 npm rebuild weightpress`.',
);
process.exit(1);
