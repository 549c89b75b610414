/**
 * The HTML report page: one self-contained file (no network: uPlot's JS and CSS, from the uplot npm package, and
 * the report's data are inlined) drawing a ReportDocument (lib/report.ts, docs/REPORT.md): the run's totals and
 * settings, per-tensor SQNR and bits per weight, the rate–distortion points, and the chosen tensors' histograms
 * with their levels drawn over them. The data lives in the page as JSON (<script id="wp-data">), the same
 * document --report FILE.json writes.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { IoError } from './errors.js';
import type { ReportDocument } from './report.js';

/** uPlot's browser build and stylesheet, read from the installed package. Throws IoError when it is missing. */
function uplotAssets(): { js: string; css: string; version: string } {
  const require = createRequire(import.meta.url);
  let js: string, css: string, version: string;
  try {
    js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    version = (JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')) as { version: string }).version;
  } catch (e) {
    throw new IoError(`the chart library uplot (an npm dependency of weightpress) cannot be read: ${(e as Error).message}; reinstall weightpress`);
  }
  return { js, css, version };
}

/** Text safe inside <script> or <style>: no closing tag, no HTML comment opener. */
function inline(text: string, tag: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${tag})`, 'gi'), '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** JSON safe inside <script type="application/json">. */
function inlineJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Series colours; test/report.test.ts looks for them in the drawn canvases. */
export const REPORT_COLORS = { tensors: '#1f77b4', total: '#d62728', sqnr: '#1f77b4', bpw: '#ff7f0e', weights: '#1f77b4', decoded: '#2ca02c', slice: '#9467bd', levels: '#d62728' } as const;

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;word-break:break-all}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}.card b{display:block;font-size:18px}
.card span{color:#666;font-size:12px}.note{color:#555;font-size:13px;margin:4px 0 8px}.hover{color:#333;font-size:13px;min-height:1.4em}
table{border-collapse:collapse;font-size:12.5px;width:100%}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left;white-space:normal;word-break:break-all}th{background:#f6f6f6;position:sticky;top:0}
.scroll{max-height:480px;overflow:auto;border:1px solid #eee}.warn{color:#8a5300}.wp-chart{margin:6px 0 18px}
label{font-size:13px;color:#444}
`;

/** The page's script: builds the cards, tables and charts from the inlined document. */
const PAGE = `
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('wp-data').textContent);
  var C = ${JSON.stringify(REPORT_COLORS)};
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function $(id) { return document.getElementById(id); }
  function db(v) { return v === null || v === undefined ? 'exact' : v.toFixed(2); }
  function bytes(b) {
    if (b >= 1073741824) return (b / 1073741824).toFixed(2) + ' GiB';
    if (b >= 1048576) return (b / 1048576).toFixed(2) + ' MiB';
    if (b >= 1024) return (b / 1024).toFixed(1) + ' KiB';
    return b + ' B';
  }
  function width(node) { return Math.max(320, Math.min(1160, node.clientWidth || 1000)); }
  var T = D.total;

  $('wp-input').textContent = D.input + (D.output ? '  \\u2192  ' + D.output : '');
  $('wp-meta').textContent = 'weightpress ' + D.weightpress + ', ' + D.created;
  [['bits per weight', T.bitsPerWeight.toFixed(3)], ['SQNR (quantized tensors)', db(T.quantizedSqnrDb) + (T.quantizedSqnrDb === null ? '' : ' dB')],
   ['compression ratio', T.compressionRatio.toFixed(2) + '\\u00d7'], ['tensors (quantized)', T.tensors + ' (' + T.quantizedTensors + ')'],
   ['in \\u2192 out', bytes(T.bytesIn) + ' \\u2192 ' + bytes(T.bytesOut)], ['seconds', T.seconds.toFixed(2)]
  ].forEach(function (c) { var d = el('div', { class: 'card' }); d.appendChild(el('b', {}, c[1])); d.appendChild(el('span', {}, c[0])); $('wp-cards').appendChild(d); });
  (D.warnings || []).forEach(function (w) { $('wp-warnings').appendChild(el('li', { class: 'warn' }, w)); });

  var charts = [];
  function make(node, opts, data) { var u = new uPlot(opts, data, node); charts.push(u); return u; }
  function hoverLine(id) { var h = el('div', { class: 'hover', id: id }); return h; }

  // Rate–distortion: every quantized tensor's (bits per weight, SQNR), and the run's total.
  (function () {
    var box = $('chart-rd');
    var pts = D.rateDistortion.points.slice().sort(function (a, b) { return a.bitsPerWeight - b.bitsPerWeight; });
    if (!pts.length) { box.parentNode.insertBefore(el('p', { class: 'note' }, 'no quantized tensor with a finite SQNR: nothing to draw'), box); box.remove(); return; }
    var xs = [], ys = [], ts = [], names = [];
    var tot = D.rateDistortion.total, placed = tot.sqnrDb === null;
    pts.forEach(function (p) {
      if (!placed && tot.bitsPerWeight <= p.bitsPerWeight) { xs.push(tot.bitsPerWeight); ys.push(null); ts.push(tot.sqnrDb); names.push('run total'); placed = true; }
      xs.push(p.bitsPerWeight); ys.push(p.sqnrDb); ts.push(null); names.push(p.tensor);
    });
    if (!placed) { xs.push(tot.bitsPerWeight); ys.push(null); ts.push(tot.sqnrDb); names.push('run total'); }
    var hover = hoverLine('rd-hover'); box.parentNode.insertBefore(hover, box);
    make(box, {
      width: width(box), height: 380, title: 'SQNR against bits per weight',
      scales: { x: { time: false, range: function (u, lo, hi) { var p = Math.max((hi - lo) * 0.08, 0.05); return [Math.max(0, lo - p), hi + p]; } } },
      axes: [{ label: 'bits per weight (every stored byte)' }, { label: 'SQNR (dB)' }],
      cursor: { points: { show: false } },
      series: [{ label: 'bits/weight', value: function (u, v) { return v === null || v === undefined ? '' : v.toFixed(3); } },
        { label: 'tensors', stroke: C.tensors, paths: function () { return null; }, points: { show: true, size: 8, fill: C.tensors, stroke: C.tensors }, value: function (u, v) { return db(v); } },
        { label: 'run total', stroke: C.total, paths: function () { return null; }, points: { show: true, size: 15, fill: C.total, stroke: C.total }, value: function (u, v) { return db(v); } }],
      hooks: { setCursor: [function (u) { var i = u.cursor.idx; hover.textContent = i === null || i === undefined ? '' : names[i] + ': ' + xs[i].toFixed(3) + ' bits/weight, ' + db(ys[i] !== null ? ys[i] : ts[i]) + ' dB'; }] }
    }, [xs, ys, ts]);
  })();

  // Per tensor: SQNR (bars) and bits per weight (points), quantized tensors in the input's order.
  (function () {
    var box = $('chart-tensors');
    var q = D.tensors.filter(function (t) { return t.method !== 'keep'; });
    if (!q.length) { box.parentNode.insertBefore(el('p', { class: 'note' }, 'no quantized tensor: nothing to draw'), box); box.remove(); return; }
    var xs = q.map(function (t, i) { return i; });
    var hover = hoverLine('tensors-hover'); box.parentNode.insertBefore(hover, box);
    make(box, {
      width: width(box), height: 340, title: 'SQNR and bits per weight of each quantized tensor',
      scales: { x: { time: false, range: [-0.7, q.length - 0.3] }, db: {}, bpw: { range: function (u, lo, hi) { return [0, Math.max(hi * 1.15, 1)]; } } },
      axes: [{ label: 'tensor (input order; hover for its name)', values: function (u, vs) { return vs.map(function (v) { return Number.isInteger(v) ? '#' + v : ''; }); } },
        { scale: 'db', label: 'SQNR (dB)' }, { scale: 'bpw', side: 1, label: 'bits per weight', grid: { show: false } }],
      series: [{ label: 'tensor', value: function (u, v) { return v === null || v === undefined ? '' : q[v] ? q[v].name : ''; } },
        { label: 'SQNR dB', scale: 'db', stroke: C.sqnr, fill: C.sqnr + 'cc', paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false }, value: function (u, v) { return db(v); } },
        { label: 'bits/weight', scale: 'bpw', stroke: C.bpw, width: 0, paths: function () { return null; }, points: { show: true, size: 7, fill: C.bpw, stroke: C.bpw }, value: function (u, v) { return v === null || v === undefined ? '' : v.toFixed(3); } }],
      hooks: { setCursor: [function (u) { var i = u.cursor.idx; var t = q[i]; hover.textContent = !t ? '' : t.name + ' (' + t.method + ', ' + t.codec + ', ' + t.bits + ' bits): ' + db(t.sqnrDb) + ' dB, ' + t.bitsPerWeight.toFixed(3) + ' bits/weight'; }] }
    }, [xs, q.map(function (t) { return t.sqnrDb; }), q.map(function (t) { return t.bitsPerWeight; })]);
  })();

  // Histograms of the chosen tensors, with the codebook's levels drawn over them.
  var logY = false;
  var hists = [];
  function histogram(h, i) {
    var box = $('chart-hist-' + i);
    var n = h.bins.count, w = (h.bins.max - h.bins.min) / n;
    var xs = [], k;
    for (k = 0; k < n; k++) xs.push(h.bins.min + (k + 0.5) * w);
    function ys(a) { return a ? a.map(function (c) { return logY && c === 0 ? null : c; }) : null; }
    var lo = h.bins.min, hi = h.bins.max;
    (h.levels || []).forEach(function (l) { if (l < lo) lo = l; if (l > hi) hi = l; });
    var pad = (hi - lo) * 0.02;
    var series = [{ label: 'weight', value: function (u, v) { return v === null || v === undefined ? '' : v.toPrecision(4); } },
      { label: 'weights', scale: 'n', stroke: C.weights, fill: C.weights + '88', paths: uPlot.paths.bars({ size: [1, Infinity], gap: 0 }), points: { show: false } }];
    var data = [xs, ys(h.weights)];
    if (h.decoded) { series.push({ label: 'decoded values', scale: 'd', stroke: C.decoded, width: 1.5, paths: uPlot.paths.stepped({ align: 0 }), points: { show: false } }); data.push(ys(h.decoded)); }
    if (h.sliceWeights) { series.push({ label: 'weights of slice ' + h.slice, scale: 'slice', stroke: C.slice, width: 1.5, points: { show: false } }); data.push(ys(h.sliceWeights)); }
    var axes = [{ label: 'weight value' }, { scale: 'n', label: 'count' + (logY ? ' (log)' : '') }];
    if (h.decoded) axes.push({ scale: 'd', side: 1, label: 'decoded count' + (logY ? ' (log)' : ''), stroke: C.decoded, grid: { show: false } });
    if (h.sliceWeights) axes.push({ scale: 'slice', side: 1, label: 'count, slice ' + h.slice, stroke: C.slice, grid: { show: false } });
    function sc() { return logY ? { distr: 3 } : { range: function (u, a, b) { return [0, b * 1.05 || 1]; } }; }
    var scales = { x: { time: false, range: [lo - pad, hi + pad] }, n: sc(), d: sc(), slice: sc() };
    box.textContent = '';
    box.dataset.levels = h.levels ? String(h.levels.length) : '0';
    var u = make(box, {
      width: width(box), height: 300, title: h.tensor, series: series, axes: axes, scales: scales,
      hooks: { draw: [function (u) {
        var drawn = 0, ctx = u.ctx;
        if (h.levels) {
          ctx.save();
          ctx.strokeStyle = C.levels; ctx.lineWidth = 2;
          h.levels.forEach(function (l) {
            var x = Math.round(u.valToPos(l, 'x', true));
            ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
            drawn++;
          });
          ctx.restore();
        }
        box.dataset.levelsDrawn = String(drawn);
      }] }
    }, data);
    return u;
  }
  D.histograms.forEach(function (h, i) {
    var sec = el('div', { class: 'hist' });
    sec.appendChild(el('h3', {}, h.tensor + '  (' + h.method + ', ' + h.codec + ', ' + h.dtype + ' ' + JSON.stringify(h.shape) + ')'));
    sec.appendChild(el('p', { class: 'note' }, h.note + (h.levels ? ' (red lines: levels)' : '') + '. ' + n_(h)));
    sec.appendChild(el('div', { class: 'wp-chart', id: 'chart-hist-' + i, 'data-kind': 'histogram' }));
    $('wp-hists').appendChild(sec);
    hists.push(histogram(h, i));
  });
  function n_(h) {
    var out = h.weightsBelow + h.weightsAbove, dout = h.decodedBelow + h.decodedAbove;
    return h.bins.count + ' bins over [' + h.bins.min.toPrecision(4) + ', ' + h.bins.max.toPrecision(4) + ']' +
      (h.bins.clipped ? ' (the 0.05\u201399.95 % range: the tails would squeeze the rest into a few bins); ' + out + ' weights beyond it (' + h.weightsBelow + ' below, ' + h.weightsAbove + ' above) are not drawn' : '') +
      (h.nonFinite ? '; ' + h.nonFinite + ' non-finite weights left out' : '') + (dout ? '; ' + dout + ' decoded values beyond the range not drawn' : '');
  }
  if (!D.histograms.length) $('wp-hists').appendChild(el('p', { class: 'note' }, 'no tensor chosen for histograms'));
  $('wp-log').addEventListener('change', function (e) {
    logY = e.target.checked;
    hists.forEach(function (u) { charts.splice(charts.indexOf(u), 1); u.destroy(); });
    hists = D.histograms.map(histogram);
    window.wpReport.histograms = hists;
  });
  // For scripts and tests: the uPlot instances (u.valToPos maps a value to its pixel).
  window.wpReport = { charts: charts, histograms: hists };

  // Tables: every tensor, and the settings.
  var cols = [['tensor', function (t) { return t.name; }], ['method', function (t) { return t.method; }], ['codec', function (t) { return t.codec; }], ['bits', function (t) { return t.bits; }],
    ['gran', function (t) { return t.granularity || '-'; }], ['dtype', function (t) { return t.dtype; }], ['shape', function (t) { return t.shape.join('\\u00d7'); }],
    ['SQNR dB', function (t) { return db(t.sqnrDb); }], ['MSE', function (t) { return t.mse.toExponential(3); }], ['max|err|', function (t) { return t.maxAbsErr.toExponential(2); }],
    ['bits/weight', function (t) { return t.bitsPerWeight.toFixed(3); }], ['in', function (t) { return bytes(t.bytesIn); }], ['out', function (t) { return bytes(t.bytesOut); }], ['s', function (t) { return t.seconds.toFixed(3); }]];
  var tr = el('tr'); cols.forEach(function (c) { tr.appendChild(el('th', {}, c[0])); }); $('wp-table').appendChild(tr);
  D.tensors.forEach(function (t) { var r = el('tr'); cols.forEach(function (c) { r.appendChild(el('td', {}, String(c[1](t)))); }); $('wp-table').appendChild(r); });
  Object.keys(D.settings).forEach(function (k) { var r = el('tr'); r.appendChild(el('td', {}, k)); r.appendChild(el('td', {}, JSON.stringify(D.settings[k]))); $('wp-settings').appendChild(r); });

  window.addEventListener('resize', function () { charts.forEach(function (u) { u.setSize({ width: width(u.root.parentNode), height: u.height }); }); });
  requestAnimationFrame(function () { requestAnimationFrame(function () { document.body.dataset.ready = 'true'; }); });
})();
`;

/**
 * The report as one HTML page: the chart library and the data inlined, a Content-Security-Policy that allows no
 * network request. Throws IoError when the uplot package cannot be read.
 */
export function renderReportHtml(doc: ReportDocument): string {
  const u = uplotAssets();
  const title = `weightpress report: ${doc.input.split(/[\\/]/).pop()}`;
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>${esc(title)}</title>
<!-- Charts: uPlot ${esc(u.version)} (MIT license, https://github.com/leeoniya/uPlot), inlined from the uplot npm package. -->
<style>${inline(u.css, 'style')}</style>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div class="sub" id="wp-input"></div>
<div class="sub" id="wp-meta"></div>
<div class="cards" id="wp-cards"></div>
<ul id="wp-warnings"></ul>
<h2>Rate–distortion</h2>
<p class="note">Each quantized tensor's bits per weight (every stored byte: codes, codebooks, scales) against its SQNR = 10 log10(Σw² / Σ(w − ŵ)²); the large point is the whole run (bits per weight over every tensor, SQNR over the quantized ones).</p>
<div class="wp-chart" id="chart-rd" data-kind="rd"></div>
<h2>Per tensor</h2>
<div class="wp-chart" id="chart-tensors" data-kind="tensors"></div>
<h2>Weight histograms and levels</h2>
<label><input type="checkbox" id="wp-log"> logarithmic counts</label>
<div id="wp-hists"></div>
<h2>Tensors</h2>
<div class="scroll"><table id="wp-table"></table></div>
<h2>Settings</h2>
<table id="wp-settings" style="width:auto"></table>
<script type="application/json" id="wp-data">${inlineJson(doc)}</script>
<script>${inline(u.js, 'script')}</script>
<script>${inline(PAGE, 'script')}</script>
</body>
</html>
`;
}
