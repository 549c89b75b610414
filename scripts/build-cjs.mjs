#!/usr/bin/env node
// CommonJS entry point: bundles the compiled ESM (dist/index.js) into dist/index.cjs with esbuild, so that
// `require('weightpress')` works on every Node >= 20 (package.json "exports" -> "require"). import.meta.url, which
// CommonJS lacks, becomes the bundle's own file URL (dist/index.cjs sits beside dist/index.js, so the package root
// the loader derives from it is the same). Run by `prepare` / `npm run build:ts` after tsc.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'dist', 'index.js')],
  outfile: join(root, 'dist', 'index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  define: { 'import.meta.url': '__weightpress_import_meta_url' },
  banner: { js: "const __weightpress_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
});
