/**
 * The `/metrics` text of the raw baselines: the figures the bench reads, under the gateway's metric
 * names, so one scraper reads every server.
 */
import type { IntervalHistogram } from 'node:perf_hooks';

/** What a baseline knows about itself at scrape time. */
export interface BaselineFigures {
  deliveries: number;
  queueMaxBytes: number;
  connections: number;
  /** Event-loop delay since the previous scrape (reset here, as prom-client does). */
  lag: IntervalHistogram;
}

/** The Prometheus text exposition of `f` plus the process's CPU and resident memory. */
export function baselineMetricsText(f: BaselineFigures): string {
  const cpu = process.cpuUsage();
  const lines = [
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    `process_resident_memory_bytes ${process.memoryUsage.rss()}`,
    `nodejs_eventloop_lag_p99_seconds ${f.lag.percentile(99) / 1e9}`,
    `nodejs_eventloop_lag_max_seconds ${f.lag.max / 1e9}`,
    `gatehouse_deliveries_total ${f.deliveries}`,
    `gatehouse_outbound_queue_max_bytes ${f.queueMaxBytes}`,
    `gatehouse_connections ${f.connections}`,
  ];
  f.lag.reset();
  return lines.join('\n') + '\n';
}
