/**
 * Child process of the e2e suite: one quantize() of a file, then its peak RSS as JSON on stdout.
 *
 *   node --import tsx bench/e2e-child.ts IN OUT METHOD GRANULARITY
 *
 * baselineKB is the RSS after loading the addon and opening the checkpoint (before any tensor is touched). The
 * process's high-water mark is then reset (Linux: "5" into /proc/self/clear_refs), because starting tsx alone
 * peaks above what a small job needs; peakKB is the high-water mark (VmHWM) after the job. Where the reset is
 * not allowed, peakKB is process.resourceUsage().maxRSS (startup included) and hwmReset is false.
 * RSS includes the pages of the mapped input resident in this process, so it is the figure that must stay
 * bounded by the largest tensor.
 */
import './env.js';

import { readFileSync, writeFileSync } from 'node:fs';

import { Checkpoint, quantize, type MethodName } from '../lib/index.js';

function statusKB(field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const [input, output, method, granularity] = process.argv.slice(2);
if (!input || !output || !method || !granularity) {
  process.stderr.write('usage: node --import tsx bench/e2e-child.ts IN OUT METHOD GRANULARITY\n');
  process.exit(2);
}
const ck = await Checkpoint.open(input);
ck.close();
let hwmReset = false;
try {
  writeFileSync('/proc/self/clear_refs', '5');
  hwmReset = statusKB('VmHWM') !== null;
} catch {
  // not Linux, or not allowed
}
const baselineKB = statusKB('VmRSS') ?? process.resourceUsage().maxRSS;
const t0 = performance.now();
const report = await quantize(input, output, { method: method as MethodName, bits: 4, granularity: granularity as 'tensor' | 'row' | 'group' });
const seconds = (performance.now() - t0) / 1000;
const peakKB = (hwmReset ? statusKB('VmHWM') : null) ?? process.resourceUsage().maxRSS;
process.stdout.write(JSON.stringify({ baselineKB, peakKB, hwmReset, seconds, bytesIn: report.total.bytesIn, bytesOut: report.total.bytesOut }) + '\n');
