/**
 * Finds and loads the native addon, in this order: an explicit WEIGHTPRESS_BINARY, the prebuilt binary of this
 * platform's package (@weightpress/<platform>, an optionalDependency that npm installs only on its platform;
 * packages/README.md), then a local build (build/Release). When nothing loads, the error lists every attempt with
 * its reason and the command that fixes it. WEIGHTPRESS_PREFER_LOCAL=1 tries the local build first (tests use
 * it, so that an installed prebuilt cannot hide the fresh build).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { WeightpressError } from './errors.js';
import type { NativeAddon } from './native.js';

const require = createRequire(import.meta.url);
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

/** glibc or musl (Linux only): the C library the running Node was linked against. */
function libc(): 'gnu' | 'musl' | undefined {
  if (process.platform !== 'linux') return undefined;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  if (report?.header?.glibcVersionRuntime) return 'gnu';
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu';
  } catch {
    return 'gnu';
  }
}

/**
 * The prebuilt package for this machine: its npm name and its directory under packages/, or undefined where
 * weightpress publishes none. One entry per platform: adding a platform is adding it here (packages/README.md).
 */
export function platformPackage(platform = process.platform, arch = process.arch, c = libc()): { name: string; dir: string } | undefined {
  const key = [platform, arch, c].filter(Boolean).join('-');
  const known: Record<string, string> = { 'linux-x64-gnu': 'linux-x64-gnu' };
  const dir = known[key];
  return dir ? { name: `@weightpress/${dir}`, dir } : undefined;
}

/** The platform package's binary, resolved the way Node resolves the package from `root`; undefined if absent. */
function platformBinary(root: string): string | undefined {
  const p = platformPackage();
  if (!p) return undefined;
  try {
    return createRequire(join(root, 'package.json')).resolve(`${p.name}/weightpress.node`);
  } catch {
    return undefined;
  }
}

/** Where the addon may be, in the order tried, for a package rooted at `root`. */
export function candidates(root = packageRoot): string[] {
  const list: string[] = [];
  const env = process.env.WEIGHTPRESS_BINARY;
  if (env) list.push(env);
  const local = [join(root, 'build', 'Release', 'weightpress.node'), join(root, 'build', 'Debug', 'weightpress.node')];
  const p = platformPackage();
  const pre = p ? [platformBinary(root) ?? `${p.name}/weightpress.node (package ${p.name} is not installed)`] : [];
  if (process.env.WEIGHTPRESS_PREFER_LOCAL) list.push(...local, ...pre);
  else list.push(...pre, ...local);
  return list;
}

export function loadNative(): NativeAddon {
  if (cached) return cached;
  cached = loadFrom(candidates(), packageRoot);
  return cached;
}

/** Loads the first candidate that loads; otherwise one E_LOAD error listing every attempt and the fix. */
export function loadFrom(paths: string[], root: string): NativeAddon {
  const attempts: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      attempts.push(`  ${path}${path.includes('is not installed') ? '' : ': not found'}`);
      continue;
    }
    try {
      return require(path) as NativeAddon;
    } catch (e) {
      attempts.push(`  ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const p = platformPackage();
  throw new WeightpressError(
    'E_LOAD',
    `could not load the weightpress native addon for ${process.platform}-${process.arch} (Node ${process.version}). Tried:\n` +
      attempts.join('\n') +
      '\nTo fix: ' +
      (p ? `install the prebuilt binary with \`npm install ${p.name}\` (npm skips it when optional dependencies are omitted), or ` : '') +
      `build from source in ${root} with \`WEIGHTPRESS_BUILD_FROM_SOURCE=1 npm rebuild weightpress\` (needs the packages ` +
      'cmake-js and node-addon-api, CMake >= 3.18 and a C++17 compiler; CUDA is compiled in when nvcc is found; ' +
      'without CMake it builds with node-gyp, CPU only), or, in a checkout, `npm run build:native`.',
  );
}
