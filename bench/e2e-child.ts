/**
 * Child process of the e2e suite: one quantize() of a file, then its peak RSS as JSON on stdout.
 *
 *   node --import tsx bench/e2e-child.ts IN OUT METHOD GRANULARITY
 *
 * baselineKB is the high-water mark after loading the addon and opening the checkpoint (before any tensor is
 * touched); peakKB is process.resourceUsage().maxRSS after the job. RSS includes the pages of the mapped input
 * that are resident in this process, so it is the figure that must stay bounded by the largest tensor.
 */
import './env.js';

import { Checkpoint, quantize, type MethodName } from '../lib/index.js';

const [input, output, method, granularity] = process.argv.slice(2);
if (!input || !output || !method || !granularity) {
  process.stderr.write('usage: node --import tsx bench/e2e-child.ts IN OUT METHOD GRANULARITY\n');
  process.exit(2);
}
const ck = await Checkpoint.open(input);
ck.close();
const baselineKB = process.resourceUsage().maxRSS;
const t0 = performance.now();
const report = await quantize(input, output, { method: method as MethodName, bits: 4, granularity: granularity as 'tensor' | 'row' | 'group' });
const seconds = (performance.now() - t0) / 1000;
const peakKB = process.resourceUsage().maxRSS;
process.stdout.write(JSON.stringify({ baselineKB, peakKB, seconds, bytesIn: report.total.bytesIn, bytesOut: report.total.bytesOut }) + '\n');
