#!/usr/bin/env node
// The native sources, found by directory (native/core/**.cpp, then native/addon/*.cpp), one per line or (with
// --gyp) space-separated for binding.gyp's <!@(...) expansion. CMakeLists.txt globs the same directories, so a new
// solver or codec file is built without touching either build file.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
function walk(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.cpp') ? [join(dir, e.name)] : []));
}
const files = [...walk(join(root, 'native', 'core')), ...walk(join(root, 'native', 'addon'))].map((f) => relative(root, f).split('\\').join('/'));
process.stdout.write(process.argv.includes('--gyp') ? files.join(' ') : files.join('\n') + '\n');
