/**
 * Reading a server's own figures from its Prometheus `/metrics` text: the gateway's (prom-client)
 * and the raw baseline's (hand-written, same metric names), so one scraper serves both.
 */
import { request } from 'node:http';

/** One scrape: every sample, summed over label sets, by metric name. */
export type Samples = Map<string, number>;

/**
 * Parses the Prometheus text exposition format. Samples of one name with different labels are
 * summed (a counter split by reason, several nodes); comments and malformed lines are skipped.
 */
export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    if (space < 0) continue;
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    const rest = brace >= 0 && brace < space ? line.slice(line.indexOf('}', brace) + 1).trim() : line.slice(space + 1).trim();
    const value = Number(rest.split(/\s+/, 1)[0]);
    if (!Number.isFinite(value)) continue;
    out.set(name, (out.get(name) ?? 0) + value);
  }
  return out;
}

/** GETs `base/metrics` and parses it; rejects on a non-200 answer or after `timeoutMs`. */
export function scrape(base: string, timeoutMs = 60_000): Promise<Samples> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/metrics`, { method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${base}/metrics answered HTTP ${res.statusCode}`));
        else resolve(parseMetrics(Buffer.concat(chunks).toString('utf8')));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${base}/metrics did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The figures the bench reads, summed (or maxed) over every process of a target. */
export interface ServerFigures {
  /** process_cpu_seconds_total, summed. */
  cpuSeconds: number;
  /** process_resident_memory_bytes, summed. */
  rssBytes: number;
  /** nodejs_eventloop_lag_p99_seconds in ms, worst process (since that process's last scrape). */
  eventLoopLagP99Ms: number;
  /** nodejs_eventloop_lag_max_seconds in ms, worst process (since its last scrape). */
  eventLoopLagMaxMs: number;
  /** gatehouse_deliveries_total, summed. */
  deliveries: number;
  /** gatehouse_outbound_queue_max_bytes, worst process. */
  queueMaxBytes: number;
  /** gatehouse_connections, summed. */
  connections: number;
  /** gatehouse_admission_rejects_total, summed. */
  admissionRejects: number;
  /** gatehouse_slow_consumer_disconnects_total, summed. */
  slowConsumers: number;
  /**
   * write(2)/writev(2) calls the server processes made so far (syscw in /proc/<pid>/io), for
   * processes the bench started on this machine; null otherwise. Socket writes dominate it; HTTP
   * answers, IPC messages and logs add a little. The gateway's batched send uses send(2), which
   * syscw does not count: its calls (gatehouse_batched_sends_total) are added.
   */
  writeCalls: number | null;
  /** gatehouse_batch_delay_seconds: flushes adaptive batching held, and the seconds it held them, summed. */
  batchDelayedFlushes: number;
  batchDelaySeconds: number;
  /** When the scrape finished (performance.now()). */
  at: number;
}

/** Combines one scrape per process into the target's figures. */
export function combine(scrapes: Samples[], at: number, writeCalls: number | null = null): ServerFigures {
  const sum = (name: string) => scrapes.reduce((a, s) => a + (s.get(name) ?? 0), 0);
  const max = (name: string) => scrapes.reduce((a, s) => Math.max(a, s.get(name) ?? 0), 0);
  return {
    cpuSeconds: sum('process_cpu_seconds_total'),
    rssBytes: sum('process_resident_memory_bytes'),
    eventLoopLagP99Ms: max('nodejs_eventloop_lag_p99_seconds') * 1000,
    eventLoopLagMaxMs: max('nodejs_eventloop_lag_max_seconds') * 1000,
    deliveries: sum('gatehouse_deliveries_total'),
    queueMaxBytes: max('gatehouse_outbound_queue_max_bytes'),
    connections: sum('gatehouse_connections'),
    admissionRejects: sum('gatehouse_admission_rejects_total'),
    slowConsumers: sum('gatehouse_slow_consumer_disconnects_total'),
    writeCalls: writeCalls === null ? null : writeCalls + sum('gatehouse_batched_sends_total'),
    batchDelayedFlushes: sum('gatehouse_batch_delay_seconds_count'),
    batchDelaySeconds: sum('gatehouse_batch_delay_seconds_sum'),
    at,
  };
}
