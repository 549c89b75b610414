/**
 * Finds and loads the native addon: an explicit WEIGHTPRESS_BINARY, then a prebuilt binary in
 * prebuilds/<platform>-<arch>/, then the local build. When nothing loads, the error lists every attempt
 * with its reason and the command that fixes it. WEIGHTPRESS_PREFER_LOCAL=1 tries the local build first
 * (tests use it, so a stale prebuild cannot hide the fresh build).
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { WeightpressError } from './errors.js';
import type { NativeAddon } from './native.js';

const require = createRequire(import.meta.url);
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

/** Where the addon may be, in the order tried, for a package rooted at `root`. */
export function candidates(root = packageRoot): string[] {
  const list: string[] = [];
  const env = process.env.WEIGHTPRESS_BINARY;
  if (env) list.push(env);
  const local = [join(root, 'build', 'Release', 'weightpress.node'), join(root, 'build', 'Debug', 'weightpress.node')];
  const preDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const pre: string[] = [];
  if (existsSync(preDir)) {
    for (const f of readdirSync(preDir).sort()) if (f.endsWith('.node')) pre.push(join(preDir, f));
  } else {
    pre.push(join(preDir, 'weightpress.node'));
  }
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
      attempts.push(`  ${path}: not found`);
      continue;
    }
    try {
      return require(path) as NativeAddon;
    } catch (e) {
      attempts.push(`  ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new WeightpressError(
    'E_LOAD',
    `could not load the weightpress native addon for ${process.platform}-${process.arch} (Node ${process.version}). Tried:\n` +
      attempts.join('\n') +
      `\nTo fix: build it from source with \`npm run build:native\` (needs CMake and a C++17 compiler; ` +
      `CUDA is used when nvcc is found) or \`npx node-gyp rebuild\` (CPU only), in ${root}.`,
  );
}
