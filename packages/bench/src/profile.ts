/**
 * Reads V8 CPU profiles (`node --cpu-prof` output) and ranks functions by self time, so a bench
 * run with --profile ends with the gateway's hot spots instead of a file to open elsewhere.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
}

/** A function and its share of the sampled (non-idle) time. */
export interface HotSpot {
  function: string;
  location: string;
  selfPercent: number;
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('/node_modules/');
  if (nm >= 0) return clean.slice(nm + '/node_modules/'.length);
  const pk = clean.lastIndexOf('/packages/');
  if (pk >= 0) return clean.slice(pk + '/packages/'.length);
  return clean.startsWith('node:') ? clean : clean.split('/').slice(-2).join('/');
}

/** Self time by function over one or more profiles, largest first; `(idle)` is left out. */
export function hotSpots(profiles: CpuProfile[], top = 25): HotSpot[] {
  const byKey = new Map<string, { fn: string; loc: string; n: number }>();
  let total = 0;
  for (const prof of profiles) {
    const counts = new Map<number, number>();
    if (prof.samples && prof.samples.length > 0) {
      for (const id of prof.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
    } else {
      for (const n of prof.nodes) counts.set(n.id, n.hitCount ?? 0);
    }
    for (const node of prof.nodes) {
      const n = counts.get(node.id) ?? 0;
      if (n === 0 || node.callFrame.functionName === '(idle)') continue;
      const fn = node.callFrame.functionName || '(anonymous)';
      const loc = node.callFrame.url ? `${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}` : '';
      const key = `${fn}\u0000${loc}`;
      const e = byKey.get(key);
      if (e) e.n += n;
      else byKey.set(key, { fn, loc, n });
      total += n;
    }
  }
  return [...byKey.values()]
    .sort((a, b) => b.n - a.n)
    .slice(0, top)
    .map((e) => ({ function: e.fn, location: e.loc, selfPercent: total === 0 ? 0 : Math.round((e.n / total) * 1000) / 10 }));
}

/** Reads profiles from disk. */
export function readProfiles(files: string[]): CpuProfile[] {
  return files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
}
