/**
 * The HTML report: one self-contained file (no script, no stylesheet or font from elsewhere) with
 * the summary table and inline SVG charts drawn here: the latency distribution, connections over
 * time and deliveries per second over time, gateway and baselines on the same axes.
 */
import { bucketHighMs, bucketLowMs } from './histogram.js';
import type { BenchDocument } from './report.js';
import { textSummary } from './report.js';
import type { TargetResult } from './run.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

/** Text made safe to put in HTML, attribute values included. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a < 0.01) return v.toExponential(0);
  return `${+v.toFixed(2)}`;
}

/** A line chart as an SVG element; `logX` plots x on a base-10 log scale. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[], logX = false): string {
  const W = 720;
  const H = 300;
  const L = 70;
  const R = 20;
  const T = 30;
  const B = 50;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0));
  if (all.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="80" role="img"><text x="10" y="30" font-size="14">${esc(title)}: nothing recorded</text></svg>`;
  }
  const tx = (x: number) => (logX ? Math.log10(x) : x);
  let x0 = Math.min(...all.map(([x]) => tx(x)));
  let x1 = Math.max(...all.map(([x]) => tx(x)));
  if (x1 === x0) x1 = x0 + 1;
  if (!logX) x0 = Math.min(0, x0);
  if (logX) {
    x0 = Math.floor(x0);
    x1 = Math.ceil(x1);
  }
  let y1 = Math.max(...all.map(([, y]) => y));
  if (y1 <= 0) y1 = 1;
  const yStep = niceStep(y1, 5);
  y1 = Math.ceil(y1 / yStep) * yStep;
  const px = (x: number) => L + ((tx(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => T + (1 - y / y1) * (H - T - B);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" font-family="sans-serif" font-size="11">`,
  );
  parts.push(
    `<title>${esc(title)}</title><text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  for (let y = 0; y <= y1 + yStep / 2; y += yStep) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/><text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${fmtTick(y)}</text>`,
    );
  }
  if (logX) {
    for (let e = x0; e <= x1; e++) {
      const x = Math.pow(10, e);
      parts.push(
        `<line x1="${px(x)}" x2="${px(x)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${fmtTick(x)}</text>`,
      );
    }
  } else {
    const xStep = niceStep(x1 - x0, 8);
    for (let x = Math.ceil(x0 / xStep) * xStep; x <= x1 + 1e-9; x += xStep) {
      parts.push(
        `<line x1="${px(x)}" x2="${px(x)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${fmtTick(x)}</text>`,
      );
    }
  }
  parts.push(
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`,
  );
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(
    `<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(yLabel)}</text>`,
  );
  for (const [i, s] of series.entries()) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0));
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(
      `<rect x="${L + 10}" y="${T + 6 + i * 16}" width="12" height="4" fill="${s.color}"/><text x="${L + 28}" y="${T + 11 + i * 16}">${esc(s.name)}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Share of deliveries per latency band (log-spaced bands, 10 per decade), in percent. */
function latencyShape(r: TargetResult): [number, number][] {
  const h = r.latencyHistogram;
  if (h.count === 0) return [];
  const bands = new Map<number, number>();
  for (const [i, c] of h.buckets) {
    const mid = Math.sqrt(Math.max(bucketLowMs(i), 0.0005) * bucketHighMs(i));
    const band = Math.round(Math.log10(mid) * 10);
    bands.set(band, (bands.get(band) ?? 0) + c);
  }
  return [...bands.entries()].sort((a, b) => a[0] - b[0]).map(([b, c]) => [Math.pow(10, b / 10), (c / h.count) * 100]);
}

/** The whole report. */
export function htmlReport(doc: BenchDocument): string {
  const results: TargetResult[] = [
    doc.gateway,
    ...Object.values(doc.baselines ?? (doc.baseline ? { first: doc.baseline } : {})).filter((r): r is TargetResult => r !== undefined),
  ];
  const series = (f: (r: TargetResult) => [number, number][]) =>
    results.map((r, i) => ({ name: r.target, color: COLORS[i % COLORS.length] as string, points: f(r) }));
  const charts = [
    lineChart('Latency distribution (publish stamp to arrival)', 'latency, ms (log scale)', '% of deliveries', series(latencyShape), true),
    lineChart(
      'Connections over time',
      'seconds since the phase started',
      'open connections',
      series((r) => r.series.map((p) => [p.t, p.open])),
    ),
    lineChart(
      'Throughput over time',
      'seconds since the phase started',
      'deliveries per second',
      series((r) => r.series.map((p) => [p.t, p.deliveriesPerSecond])),
    ),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gatehouse bench ${esc(doc.scenario)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}svg{display:block;margin:1.5em 0}</style>
</head><body>
<h1>gatehouse bench ${esc(doc.scenario)}</h1>
<p>${esc(doc.startedAt)} on ${doc.machine.cores} cores (${esc(doc.machine.cpuModel)}), Node ${esc(doc.machine.node)}, ${esc(doc.machine.platform)} ${esc(doc.machine.kernel)}</p>
<h2>Summary</h2>
<pre>${esc(textSummary(doc))}</pre>
<h2>Charts</h2>
${charts.join('\n')}
<h2>Parameters</h2>
<pre>${esc(JSON.stringify(doc.params, null, 2))}</pre>
</body></html>
`;
}
