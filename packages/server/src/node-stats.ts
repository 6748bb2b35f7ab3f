/**
 * This node's live figures for the server API's `info` and the admin UI: connects and deliveries
 * per second and the publish-to-delivery p99 over the last seconds, from the metrics' own counters.
 * Nothing runs in the background: each read takes a sample, and rates are measured against the
 * oldest sample kept (at most SAMPLES, at least a second apart, none older than WINDOW_MS).
 */
import type { GatewayMetrics } from './metrics.js';

const SAMPLES = 12;
const WINDOW_MS = 15_000;

interface Sample {
  at: number;
  connects: number;
  deliveries: number;
  /** Cumulative publish-to-delivery bucket counts, by upper bound in seconds (ascending). */
  buckets: [number, number][];
}

/** Rates over the sampled window; null until two samples a second apart exist. */
export interface NodeRates {
  connectsPerSecond: number | null;
  deliveriesPerSecond: number | null;
  /** Upper bound of the bucket holding the 99th percentile, ms; null without deliveries. */
  publishDeliveryP99Ms: number | null;
}

/** Samples the node's counters when asked. */
export class NodeStats {
  private readonly samples: Sample[] = [];

  constructor(private readonly metrics: GatewayMetrics) {}

  /** Takes a sample and answers the rates since the oldest one kept. */
  async rates(now = Date.now()): Promise<NodeRates> {
    const current = await this.sample(now);
    while (this.samples.length > 0 && now - (this.samples[0] as Sample).at > WINDOW_MS) this.samples.shift();
    const last = this.samples[this.samples.length - 1];
    if (!last || now - last.at >= 1000) {
      this.samples.push(current);
      if (this.samples.length > SAMPLES) this.samples.shift();
    }
    const base = this.samples[0];
    if (!base || current.at - base.at < 1000) return { connectsPerSecond: null, deliveriesPerSecond: null, publishDeliveryP99Ms: null };
    const seconds = (current.at - base.at) / 1000;
    return {
      connectsPerSecond: round((current.connects - base.connects) / seconds),
      deliveriesPerSecond: round((current.deliveries - base.deliveries) / seconds),
      publishDeliveryP99Ms: p99(base.buckets, current.buckets),
    };
  }

  private async sample(at: number): Promise<Sample> {
    const [connects, deliveries, hist] = await Promise.all([
      this.metrics.connectsTotal.get(),
      this.metrics.deliveries.get(),
      this.metrics.publishDelivery.get(),
    ]);
    const buckets: [number, number][] = [];
    for (const v of hist.values) {
      const le = v.labels['le'];
      if (v.metricName?.endsWith('_bucket') && le !== undefined) buckets.push([le === '+Inf' ? Infinity : Number(le), v.value]);
    }
    buckets.sort((a, b) => a[0] - b[0]);
    return { at, connects: connects.values[0]?.value ?? 0, deliveries: deliveries.values[0]?.value ?? 0, buckets };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** The 99th percentile's bucket bound between two cumulative snapshots, ms. */
function p99(before: [number, number][], after: [number, number][]): number | null {
  const total = (after[after.length - 1]?.[1] ?? 0) - (before[before.length - 1]?.[1] ?? 0);
  if (total <= 0) return null;
  const want = total * 0.99;
  for (let i = 0; i < after.length; i++) {
    const [le, count] = after[i] as [number, number];
    if (count - (before[i]?.[1] ?? 0) >= want) return Number.isFinite(le) ? le * 1000 : null;
  }
  return null;
}
