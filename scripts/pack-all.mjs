#!/usr/bin/env node
// npm run pack:all: build the native addon (unless --reuse-build), put it into this platform's package
// (packages/<platform>/weightpress.node, stripped, with build-info.json), and pack the main package and the
// platform package into pack/ (or --out DIR). Prints each tarball's path and size.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const out = resolve(args.includes('--out') ? args[args.indexOf('--out') + 1] : join(root, 'pack'));
const log = (m) => process.stderr.write(`pack:all: ${m}\n`);
const { platformPackage } = await import(pathToFileURL(join(root, 'dist', 'load.js')).href);
const plat = platformPackage();
if (!plat) throw new Error(`no platform package is defined for ${process.platform}-${process.arch}`);
const platDir = join(root, 'packages', plat.dir);
if (!existsSync(join(platDir, 'package.json'))) throw new Error(`${platDir}/package.json is missing`);

const built = join(root, 'build', 'Release', 'weightpress.node');
if (!args.includes('--reuse-build')) {
  const cmakeJs = createRequire(join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
  log('building with cmake-js (CUDA when nvcc is found)');
  const r = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--log-level', 'warn'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
if (!existsSync(built)) throw new Error(`${built} does not exist: build it first (npm run build:native)`);
const target = join(platDir, 'weightpress.node');
copyFileSync(built, target);
if (spawnSync('strip', ['--strip-unneeded', target]).status !== 0) log('strip not available: the binary keeps its symbols');
const addon = createRequire(import.meta.url)(target);
const versions = addon.versions();
writeFileSync(join(platDir, 'build-info.json'), JSON.stringify({ ...versions, platform: `${process.platform}-${process.arch}`, node: process.version }, null, 2) + '\n');
log(`${target}: ${(statSync(target).size / 2 ** 20).toFixed(2)} MiB, CUDA compiled in: ${versions.cudaCompiled}`);

// Both packages carry the same version.
const mainPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const platPkg = JSON.parse(readFileSync(join(platDir, 'package.json'), 'utf8'));
if (platPkg.version !== mainPkg.version || mainPkg.optionalDependencies?.[platPkg.name] !== mainPkg.version)
  throw new Error(`versions differ: main ${mainPkg.version}, ${platPkg.name} ${platPkg.version}, optionalDependencies ${mainPkg.optionalDependencies?.[platPkg.name]}`);

mkdirSync(out, { recursive: true });
for (const dir of [root, platDir]) {
  const file = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
  const p = join(out, file);
  process.stdout.write(`${p}\t${statSync(p).size}\n`);
}
