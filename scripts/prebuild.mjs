#!/usr/bin/env node
// Used by `npm run prebuild` as prebuildify's --node-gyp: prebuildify has no CMake backend, so this ignores
// its node-gyp arguments and builds with cmake-js (CUDA when nvcc is found), leaving build/Release/*.node.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(join(root, 'node_modules', '.bin', 'cmake-js'), ['rebuild', '--log-level', 'warn'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
