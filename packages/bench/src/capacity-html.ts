/**
 * `gatehouse capacity --html`: the plan as one self-contained page (no script, nothing fetched),
 * like the bench's report: the warnings first, the text plan, and a chart of RAM per node against
 * connections per node with the headroom budget, so a reader sees how far the plan sits from the
 * point where a node no longer fits.
 */
import { nodeBytes } from './capacity-math.js';
import type { CapacityPlan } from './capacity-math.js';
import { esc, lineChart } from './html.js';

const GiB = 1024 ** 3;
/** Above this many process steps the curve is sampled evenly instead of drawn step by step. */
const MAX_STEPS = 200;

/** RAM per node (GiB) from 0 to `xMax` connections, with each added gateway process as a step. */
function ramCurve(plan: CapacityPlan, xMax: number): [number, number][] {
  const i = plan.input;
  const at = (c: number): [number, number] => [c, nodeBytes(i, c).bytes / GiB];
  const xs = new Set<number>([0, xMax]);
  const steps = Math.floor(xMax / i.connectionsPerProcess);
  if (steps <= MAX_STEPS) {
    for (let k = 1; k <= steps; k++) {
      xs.add(k * i.connectionsPerProcess);
      if (k * i.connectionsPerProcess + 1 <= xMax) xs.add(k * i.connectionsPerProcess + 1);
    }
  } else {
    for (let k = 1; k < 100; k++) xs.add(Math.round((xMax * k) / 100));
  }
  return [...xs].sort((a, b) => a - b).map(at);
}

/** The page: `text` is the plan as `capacityText` prints it, without the warnings. */
export function capacityHtml(plan: CapacityPlan, text: string): string {
  const lost = plan.oneNodeLost;
  const xMax = Math.ceil(Math.max(plan.connectionsPerNode, lost?.connectionsPerNode ?? 0) * 1.5);
  const budget = plan.nodeBytesWithHeadroom / GiB;
  const series = [
    { name: 'RAM per node', color: '#1f77b4', points: ramCurve(plan, xMax) },
    {
      name: 'RAM with headroom (the budget)',
      color: '#2ca02c',
      points: [
        [0, budget],
        [xMax, budget],
      ] as [number, number][],
    },
    {
      name: `this plan: ${plan.connectionsPerNode.toLocaleString('en-US')} per node`,
      color: '#9467bd',
      points: [
        [plan.connectionsPerNode, 0],
        [plan.connectionsPerNode, plan.nodeBytes / GiB],
      ] as [number, number][],
    },
  ];
  if (lost) {
    series.push({
      name: `one node lost: ${lost.connectionsPerNode.toLocaleString('en-US')} per node`,
      color: lost.fitsInHeadroom ? '#ff7f0e' : '#d62728',
      points: [
        [lost.connectionsPerNode, 0],
        [lost.connectionsPerNode, lost.nodeBytes / GiB],
      ],
    });
  }
  // The warnings have their own section; the input shows what the sample gave.
  const input = { ...plan.input, sample: plan.input.sample && { ...plan.input.sample, warnings: undefined } };
  const chart = lineChart('RAM per node by connections per node', 'connections per node', 'GiB', series);
  const warnings =
    plan.warnings.length === 0
      ? ''
      : `<h2>Warnings</h2>\n<ul class="warn">${plan.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>\n`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gatehouse capacity</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}svg{display:block;margin:1.5em 0}.warn{background:#fff3cd;border:1px solid #d39e00;padding:1em 2em}</style>
</head><body>
<h1>gatehouse capacity</h1>
${warnings}<h2>Plan</h2>
<pre>${esc(text)}</pre>
<h2>Chart</h2>
${chart}
<h2>Input</h2>
<pre>${esc(JSON.stringify(input, null, 2))}</pre>
</body></html>
`;
}
