/**
 * Runs the bench suites and prints markdown that can be pasted into bench/RESULTS.md (progress goes to stderr).
 *
 *   npm run bench                       every suite: kmeans1d, perrow, e2e, rd, entropy, block
 *   npm run bench -- kmeans1d perrow    only these
 *   BENCH_QUICK=1 npm run bench         reduced sizes (numbers are then preliminary)
 *   npm run -s bench > out.md           stdout is the markdown only (-s keeps npm's own banner out of it)
 */
import './env.js';

import { benchHeader, emit, note } from './common.js';

const SUITES: Record<string, () => Promise<{ run: () => Promise<string> }>> = {
  kmeans1d: () => import('./kmeans1d.bench.js'),
  perrow: () => import('./perrow.bench.js'),
  e2e: () => import('./e2e.bench.js'),
  rd: async () => ({ run: (await import('./rd.bench.js')).runRd }),
  entropy: () => import('./entropy.bench.js'),
  block: () => import('./block.bench.js'),
  vq: () => import('./vq.bench.js'),
  output: () => import('./output.bench.js'),
  solvers15: () => import('./solvers15.bench.js'),
  header: () => import('./header.bench.js'),
};

const args = process.argv.slice(2).filter((a) => a !== '--');
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`usage: npm run bench -- [${Object.keys(SUITES).join(' | ')} ...]\n`);
  process.exit(0);
}
const unknown = args.filter((a) => !(a in SUITES));
if (unknown.length) {
  process.stderr.write(`unknown suite(s): ${unknown.join(', ')} (known: ${Object.keys(SUITES).join(', ')})\n`);
  process.exit(2);
}
const names = args.length ? args : Object.keys(SUITES);

emit(await benchHeader());
const started = performance.now();
for (const n of names) {
  const t0 = performance.now();
  note(`== ${n}`);
  const suite = await SUITES[n]();
  emit(await suite.run());
  note(`== ${n} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
note(`all done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
