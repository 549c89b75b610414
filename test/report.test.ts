/**
 * The report file (quantize --report FILE.json | FILE.html, docs/REPORT.md). The JSON's numbers against the run's
 * report and against independent oracles: SQNR, histograms and levels recomputed in the test from the input and
 * the decoded output, read with the test's own safetensors reader. The HTML page in a real headless Chromium
 * (puppeteer-core): it loads from file:// with no console error, page error or network request, every chart has
 * drawn (its series' colours are on its canvas), the histograms draw as many level markers as the codebook has
 * levels; screenshots go to test/output/ (a CI artifact). The browser tests skip, saying so, only when no Chromium
 * binary exists (apt-get install chromium; .ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decode, quantize, reportToJson, type QuantizeOptions, type Report } from '../lib/index.js';
import { REPORT_COLORS } from '../lib/report-html.js';
import type { ReportDocument, ReportHistogram } from '../lib/report.js';
import { decodeBytes, gaussian, readSafetensors, tempDir, writeSafetensors, type ParsedFile } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/emotion.f16.safetensors', import.meta.url));
const OUTPUT = fileURLToPath(new URL('./output/', import.meta.url));
const BINS = 256; // docs/REPORT.md: every histogram has 256 bins

let dir: string;
let cleanup: () => void;
let input: string;
let original: ParsedFile;

interface Case {
  name: string;
  options: QuantizeOptions;
  report: Report;
  json: ReportDocument;
  html: string;
  out: string;
}
const cases: Record<string, Case> = {};

/** Runs the same job twice, once with a JSON report and once with an HTML one (the run is deterministic). */
async function run(name: string, options: QuantizeOptions): Promise<Case> {
  const out = join(dir, `${name}.safetensors`);
  const report = await quantize(input, out, { ...options, report: join(dir, `${name}.json`) });
  const json = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as ReportDocument;
  await quantize(input, join(dir, `${name}-2.safetensors`), { ...options, report: join(dir, `${name}.html`) });
  return { name, options, report, json, html: join(dir, `${name}.html`), out };
}

/** The test's own binning (docs/REPORT.md): x in [min, max] goes to bin floor((x − min) · bins / (max − min)) (max to the last); the others are counted below and above. */
function binned(values: ArrayLike<number>, lo: number, hi: number): { counts: number[]; below: number; above: number } {
  const counts = new Array<number>(BINS).fill(0);
  let below = 0, above = 0;
  for (let i = 0; i < values.length; i++) {
    const x = Math.fround(values[i]);
    if (x < lo) below++;
    else if (x > hi) above++;
    else counts[Math.min(BINS - 1, Math.floor((x - lo) * (BINS / (hi - lo))))]++;
  }
  return { counts, below, above };
}
const bin = (values: ArrayLike<number>, lo: number, hi: number) => binned(values, lo, hi).counts;

/** The dense decoded tensor, through the library's decode() and the test's reader: as F32, or in its own dtype (decode's default). */
async function decoded(c: Case, tensor: string, dtype: 'F32' | 'own' = 'F32'): Promise<Float64Array> {
  const path = join(dir, `${c.name}.decoded-${dtype}.safetensors`);
  if (!existsSync(path)) await decode(c.out, path, dtype === 'F32' ? { dtype: 'F32' } : {});
  const f = readSafetensors(path);
  return decodeBytes(f.tensor(tensor), f.header[tensor].dtype);
}

function weights(tensor: string): Float64Array {
  return decodeBytes(original.tensor(tensor), original.header[tensor].dtype);
}

beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  input = join(dir, 'emotion.safetensors');
  copyFileSync(FIXTURE, input);
  original = readSafetensors(input);
  cases.tensor = await run('tensor', { method: 'kmeans-optimal', bits: 4, granularity: 'tensor' });
  cases.row = await run('row', { method: 'kmeans', bits: 3, granularity: 'row', reportTensors: ['*conv2d_4/Conv2D_weights', '/separable_conv2d_3\\/separable_conv2d_weights$/'] });
  cases.block = await run('block', { codec: 'block', bits: 4 });
  const pqTensor = 'StatefulPartitionedCall/model_1/conv2d_4/Conv2D_weights';
  cases.pq = await run('pq', { method: 'pq', include: [pqTensor], reportTensors: pqTensor, centroids: 16 });
});
afterAll(() => cleanup());

describe('the JSON report', () => {
  it("holds the run's report: every tensor row and the totals, the rate-distortion points, the settings", () => {
    for (const c of Object.values(cases)) {
      const want = reportToJson(c.report) as { tensors: Record<string, unknown>[] };
      expect(c.json.format).toBe('weightpress-report');
      expect(c.json.version).toBe(1);
      // Seconds differ between runs of the same job; quantize() returns the JSON run's own report.
      expect(c.json.tensors.map(({ codec: _c, ...t }) => t)).toEqual(want.tensors);
      expect(c.json.total).toEqual(c.report.total);
      const q = c.report.tensors.filter((t) => t.method !== 'keep' && t.sqnrDb !== null);
      expect(c.json.rateDistortion.points).toEqual(q.map((t) => ({ tensor: t.name, bitsPerWeight: t.bitsPerWeight, sqnrDb: t.sqnrDb })));
      expect(c.json.rateDistortion.total).toEqual({ bitsPerWeight: c.report.total.bitsPerWeight, sqnrDb: c.report.total.quantizedSqnrDb });
      for (const [k, v] of Object.entries(c.options)) if (!k.startsWith('report')) expect(c.json.settings[k], k).toEqual(v);
      for (const t of c.json.tensors) expect(t.codec === 'keep').toBe(t.method === 'keep');
    }
  });

  it('per-tensor SQNR equals 10 log10(Σw² / Σ(w − ŵ)²) recomputed from the input and the decoded file', async () => {
    for (const c of Object.values(cases)) {
      const q = c.json.tensors.filter((t) => t.method !== 'keep');
      expect(q.length).toBeGreaterThan(0);
      const t = [...q].sort((a, b) => b.numel - a.numel)[0];
      const w = weights(t.name);
      const d = await decoded(c, t.name);
      let sig = 0, err = 0;
      for (let i = 0; i < w.length; i++) {
        sig += w[i] * w[i];
        err += (w[i] - d[i]) ** 2;
      }
      expect(t.sqnrDb, `${c.name} ${t.name}`).toBeCloseTo(10 * Math.log10(sig / err), 3);
      expect(t.mse).toBeCloseTo(err / w.length, 9);
    }
  });

  it('by default draws the 4 largest quantized tensors; with reportTensors, those the patterns name', () => {
    const quantized = cases.tensor.json.tensors.filter((t) => t.method !== 'keep');
    const largest = [...quantized].sort((a, b) => b.numel - a.numel).slice(0, 4).map((t) => t.name);
    expect(cases.tensor.json.histograms.map((h) => h.tensor).sort()).toEqual(largest.sort());
    expect(cases.row.json.histograms.map((h) => h.tensor)).toEqual([
      'StatefulPartitionedCall/model_1/conv2d_4/Conv2D_weights',
      'StatefulPartitionedCall/model_1/separable_conv2d_3/separable_conv2d_weights',
    ]);
    expect(cases.pq.json.histograms.map((h) => h.tensor)).toEqual(['StatefulPartitionedCall/model_1/conv2d_4/Conv2D_weights']);
  });

  it("histograms: the weights' and the decoded values' counts equal the test's binning of the input and of the decoded file", async () => {
    for (const c of Object.values(cases))
      for (const h of c.json.histograms) {
        const w = weights(h.tensor);
        expect(h.bins.count).toBe(BINS);
        // These small CNN tensors have no long tails: the bins span min to max.
        expect(h.bins.clipped).toBe(false);
        expect(h.bins.min).toBe(Math.min(...w));
        expect(h.bins.max).toBe(Math.max(...w));
        expect(h.weights, `${c.name} ${h.tensor}`).toEqual(bin(w, h.bins.min, h.bins.max));
        expect([h.weightsBelow, h.weightsAbove, h.nonFinite]).toEqual([0, 0, 0]);
        // Decoded as decode() writes by default: in the tensor's own dtype.
        const d = binned(await decoded(c, h.tensor, 'own'), h.bins.min, h.bins.max);
        expect(h.decoded, `${c.name} ${h.tensor}`).toEqual(d.counts);
        expect([h.decodedBelow, h.decodedAbove]).toEqual([d.below, d.above]);
        expect(h.weights.reduce((a, b) => a + b, 0)).toBe(h.numel);
      }
  });

  it('long tails: the bins clip to the 0.05 %-99.95 % quantiles and count the rest below and above', async () => {
    // 2^16 Gaussian weights and 16 outliers at ±40σ: min to max would put the bulk into about 12 bins.
    const n = 1 << 16;
    const w = Float32Array.from(gaussian(n, 7), (x, i) => (i % 4096 === 5 ? (i % 8192 === 5 ? 40 : -40) : x));
    const path = join(dir, 'tails.safetensors');
    writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [256, 256], data: new Uint8Array(w.buffer) }]);
    await quantize(path, join(dir, 'tails.wp.safetensors'), { bits: 4, granularity: 'tensor', report: join(dir, 'tails.json') });
    const h = (JSON.parse(readFileSync(join(dir, 'tails.json'), 'utf8')) as ReportDocument).histograms[0];
    const sorted = Float64Array.from(w).sort();
    expect(h.bins.clipped).toBe(true);
    // The quantiles, found on 65,536 fine bins over [-40, 40], are inside the range, within one fine bin of its ends.
    const fine = 80 / 65536;
    const qlo = sorted[Math.floor(n * 0.0005)], qhi = sorted[Math.ceil(n * 0.9995) - 1];
    expect(h.bins.min).toBeLessThanOrEqual(qlo);
    expect(h.bins.min).toBeGreaterThan(qlo - 2 * fine);
    expect(h.bins.max).toBeGreaterThanOrEqual(qhi);
    expect(h.bins.max).toBeLessThan(qhi + 2 * fine);
    const b = binned(w, h.bins.min, h.bins.max);
    expect(h.weights).toEqual(b.counts);
    expect([h.weightsBelow, h.weightsAbove]).toEqual([b.below, b.above]);
    expect(h.weightsBelow + h.weightsAbove).toBeLessThanOrEqual(2 * Math.ceil(n * 0.0005) + 2);
  });

  it('a kept tensor chosen by pattern: its weights only, inf and NaN counted apart; no decoded values, no levels', async () => {
    const path = join(dir, 'kept.safetensors');
    const b = Float32Array.from([1, 2, Infinity, NaN, -Infinity, 3, 2.5, 1.5]);
    const w = Float32Array.from(gaussian(4096, 3));
    writeSafetensors(path, [
      { name: 'b', dtype: 'F32', shape: [8], data: new Uint8Array(b.buffer) },
      { name: 'w', dtype: 'F32', shape: [64, 64], data: new Uint8Array(w.buffer) },
    ]);
    await quantize(path, join(dir, 'kept.wp.safetensors'), { bits: 2, report: join(dir, 'kept.json'), reportTensors: 'b' });
    const doc = JSON.parse(readFileSync(join(dir, 'kept.json'), 'utf8')) as ReportDocument;
    expect(doc.histograms.map((h) => h.tensor)).toEqual(['b']);
    const h = doc.histograms[0];
    expect([h.codec, h.bins.min, h.bins.max, h.nonFinite, h.decoded, h.levels]).toEqual(['keep', 1, 3, 3, null, null]);
    expect(h.weights).toEqual(bin([1, 2, 3, 2.5, 1.5], 1, 3));
    expect(h.note).toMatch(/kept/);
  });

  it("levels: the stored codebook (row 0 with per-row codebooks), and every decoded value of a per-tensor codebook is one of them", async () => {
    for (const c of [cases.tensor, cases.row]) {
      const file = readSafetensors(c.out);
      const scheme = JSON.parse(file.metadata.weightpress) as { tensors: Record<string, { codebook: string; slices: number; sliceSize: number }> };
      for (const h of c.json.histograms) {
        const s = scheme.tensors[h.tensor];
        const k = 2 ** (c.options.bits as number);
        const stored = Array.from(decodeBytes(file.tensor(s.codebook), file.header[s.codebook].dtype)).slice(0, k);
        expect(h.levels).toEqual(stored);
        expect(h.slices).toBe(s.slices);
        expect(h.sliceSize).toBe(s.sliceSize);
        if (c === cases.tensor) {
          const set = new Set(h.levels);
          expect((await decoded(c, h.tensor)).filter((v) => !set.has(v)).length).toBe(0);
          expect(h.sliceWeights).toBeUndefined();
        } else {
          // Row 0's own weights, in the same bins.
          expect(h.sliceWeights).toEqual(bin(weights(h.tensor).subarray(0, s.sliceSize), h.bins.min, h.bins.max));
        }
      }
    }
  });

  it('codecs without scalar levels (block, vector) draw none and say why', () => {
    expect(cases.block.json.histograms.every((h) => h.codec === 'block')).toBe(true);
    expect(cases.pq.json.histograms.every((h) => h.codec === 'vector')).toBe(true);
    for (const c of [cases.block, cases.pq]) {
      expect(c.json.histograms.length).toBeGreaterThan(0);
      for (const h of c.json.histograms) {
        expect(h.levels).toBeNull();
        expect(h.note).toMatch(c === cases.pq ? /no scalar levels/ : /scaled per block/);
        expect(h.decoded).not.toBeNull();
      }
    }
  });
});

describe('report options', () => {
  it('a bad report path, a clash with the input or output, or reportTensors alone is an ArgumentError before any work', async () => {
    const out = join(dir, 'refused.safetensors');
    const refuse = async (o: QuantizeOptions, output: string, msg: RegExp) => {
      await expect(quantize(input, output, o)).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(msg) });
      expect(existsSync(output)).toBe(false);
    };
    await refuse({ report: join(dir, 'r.txt') }, out, /option report: must be a path ending in \.html or \.json/);
    await refuse({ report: join(dir, 'no-such-dir', 'r.html') }, out, /option report: the directory .* does not exist/);
    await refuse({ reportTensors: ['*'] }, out, /option reportTensors: applies with option report/);
    await refuse({ report: join(dir, 'r.html'), reportTensors: [] }, out, /option reportTensors/);
    await refuse({ report: join(dir, 'same.json') }, join(dir, 'same.json'), /option report: .* is the quantized output/);
    linkSync(input, join(dir, 'input-link.html'));
    await refuse({ report: join(dir, 'input-link.html') }, out, /option report: .* is the input/);
    expect(readdirSync(dir).filter((f) => f.startsWith('r.'))).toEqual([]);
  });

  it('the CLI: --report and --report-tensors write the file; a bad path exits 2 with one line', () => {
    const html = join(dir, 'cli.html');
    const ok = spawnSync(process.execPath, [CLI, 'quantize', input, '-o', join(dir, 'cli.safetensors'), '--bits', '2', '--report', html, '--report-tensors', '*conv2d_4/Conv2D_weights', '--quiet'], { encoding: 'utf8' });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<script type="application/json" id="wp-data">');
    // Self-contained: no external script, stylesheet or image.
    expect(page).not.toMatch(/<(script|link|img)[^>]+(src|href)="(?!data:)/i);
    const bad = spawnSync(process.execPath, [CLI, 'quantize', input, '-o', join(dir, 'cli2.safetensors'), '--report', join(dir, 'cli.pdf')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/option report/);
    expect(existsSync(join(dir, 'cli2.safetensors'))).toBe(false);
  });
});

// ---- the page in a real browser ------------------------------------------------------------------------------

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => p && existsSync(p));
if (!CHROMIUM) console.warn('test/report.test.ts: no Chromium binary (CHROMIUM_PATH, /usr/bin/chromium): the browser tests of the HTML report are skipped; apt-get install chromium');

/** Pixels of each colour (#rrggbb, within ±4 per channel, any alpha > 0) on a canvas. */
type Counts = Record<string, number>;

describe.skipIf(!CHROMIUM)('the HTML report in headless Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage'],
    });
    mkdirSync(OUTPUT, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** Loads a page; returns what each chart drew, and the problems seen (console errors, page errors, requests). */
  async function load(path: string, hists: ReportHistogram[], shot: string, toggleLog = false) {
    const page = await browser.newPage();
    const problems: string[] = [];
    const url = `file://${path}`;
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('request', (r) => {
      if (r.url() !== url) problems.push(`request: ${r.url()}`);
    });
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
    if (toggleLog) {
      await page.click('#wp-log');
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    }
    // What the page itself said; the test's pixel readbacks below make Chromium warn about getImageData.
    const seen = [...problems];
    const colors = Object.values(REPORT_COLORS);
    const charts = await page.evaluate((colors: string[]) => {
      const rgb = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
      return [...document.querySelectorAll<HTMLElement>('.wp-chart')].map((box) => {
        const canvas = box.querySelector('canvas');
        const counts: Record<string, number> = {};
        if (canvas) {
          const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          for (const c of colors) {
            const [r, g, b] = rgb(c);
            let n = 0;
            for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && Math.abs(px[i] - r) <= 4 && Math.abs(px[i + 1] - g) <= 4 && Math.abs(px[i + 2] - b) <= 4) n++;
            counts[c] = n;
          }
        }
        return { id: box.id, kind: box.dataset.kind, canvas: !!canvas, width: canvas?.width ?? 0, levels: Number(box.dataset.levels ?? -1), levelsDrawn: Number(box.dataset.levelsDrawn ?? -1), counts, markers: -1 };
      });
    }, colors);
    // Each level's marker, where uPlot's own scale puts the level: a column of the marker colour over the plot's height.
    const markers = await page.evaluate((levels: (number[] | null)[], color: string) => {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
      type U = { valToPos(v: number, s: string, c: boolean): number; bbox: { top: number; height: number }; ctx: CanvasRenderingContext2D };
      const us = (window as unknown as { wpReport: { histograms: U[] } }).wpReport.histograms;
      return us.map((u, i) => {
        const px = u.ctx.getImageData(0, 0, u.ctx.canvas.width, u.ctx.canvas.height);
        let found = 0;
        for (const l of levels[i] ?? []) {
          const x = Math.round(u.valToPos(l, 'x', true));
          let red = 0;
          for (let y = Math.ceil(u.bbox.top); y < u.bbox.top + u.bbox.height; y++) {
            const k = (y * px.width + x) * 4;
            if (Math.abs(px.data[k] - r) <= 4 && Math.abs(px.data[k + 1] - g) <= 4 && Math.abs(px.data[k + 2] - b) <= 4) red++;
          }
          if (red >= 0.9 * u.bbox.height) found++;
        }
        return found;
      });
    }, hists.map((h) => h.levels), REPORT_COLORS.levels);
    charts.filter((x) => x.kind === 'histogram').forEach((x, i) => (x.markers = markers[i]));
    await page.screenshot({ path: join(OUTPUT, shot), fullPage: true });
    await page.close();
    return { charts, problems: seen };
  }

  const C = REPORT_COLORS;
  const some = (counts: Counts, c: string) => (counts[c] ?? 0) > 20;

  it('every page loads with no console error, page error or network request; every chart draws its series', async () => {
    for (const c of Object.values(cases)) {
      const { charts, problems } = await load(c.html, c.json.histograms, `report-${c.name}.png`);
      expect(problems, c.name).toEqual([]);
      const hists: ReportHistogram[] = c.json.histograms;
      expect(charts.map((x) => x.id)).toEqual(['chart-rd', 'chart-tensors', ...hists.map((_, i) => `chart-hist-${i}`)]);
      for (const x of charts) {
        expect(x.canvas, `${c.name} ${x.id}`).toBe(true);
        expect(x.width).toBeGreaterThan(300);
      }
      const [rd, per, ...hs] = charts;
      expect(some(rd.counts, C.tensors) && some(rd.counts, C.total), `${c.name} rate-distortion points`).toBe(true);
      expect(some(per.counts, C.sqnr) && some(per.counts, C.bpw), `${c.name} per-tensor bars and points`).toBe(true);
      hs.forEach((x, i) => {
        const h = hists[i];
        expect(some(x.counts, C.weights) && some(x.counts, C.decoded), `${c.name} ${h.tensor} histograms`).toBe(true);
        // As many level markers as the codebook has levels; none (and no marker colour) without levels.
        expect(x.levels).toBe(h.levels ? h.levels.length : 0);
        expect(x.levelsDrawn, `${c.name} ${h.tensor}`).toBe(h.levels ? h.levels.length : 0);
        expect(x.markers, `${c.name} ${h.tensor}: levels with a marker at their place`).toBe(h.levels ? h.levels.length : 0);
        if (h.levels) expect(h.levels.length).toBe(2 ** (c.options.bits as number));
        expect(some(x.counts, C.levels), `${c.name} ${h.tensor} level markers`).toBe(h.levels !== null);
        if (h.sliceWeights) expect(some(x.counts, C.slice)).toBe(true);
      });
    }
  });

  it('the logarithmic-count switch redraws the histograms without error', async () => {
    const { charts, problems } = await load(cases.row.html, cases.row.json.histograms, 'report-row-log.png', true);
    expect(problems).toEqual([]);
    const hs = charts.filter((x) => x.kind === 'histogram');
    expect(hs.length).toBe(cases.row.json.histograms.length);
    for (const x of hs) {
      expect(x.levelsDrawn).toBe(8);
      expect(x.markers).toBe(8);
      expect(some(x.counts, C.weights) && some(x.counts, C.levels)).toBe(true);
    }
  });
});
