/**
 * The reconnect storm drill: N SDK clients in several worker processes, each worker leaving from
 * its own set of 127.0.0.x source addresses, connected to the gateway(s) directly. Then every
 * connection is lost at once: cut by the clients' network (`drop`) or by a SIGKILL and restart of
 * the gateways on the same ports (`kill`). Measured: the time until every client is back and
 * subscribed again, each client's time, the refusals the clients saw and the gateways counted by
 * reason, and the peak event-loop lag the gateways reported on /metrics during the storm. Run it
 * with admission on (the gateway's defaults) and effectively off to compare.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpPublisher } from '@gatehouse/publisher';
import { freePort, waitFor } from '@gatehouse/testkit';
import { GatewayNode } from './node.js';
import { percentiles, sleep, type Percentiles } from './stats.js';
import type { FromStormWorker, StormWorkerReport, ToStormWorker } from './storm-worker.js';

const WORKER = fileURLToPath(new URL('./storm-worker.js', import.meta.url));

/** Flags that turn admission effectively off: a connect rate no storm here reaches, and no lag refusals. */
export const ADMISSION_OFF = ['--connect-rate', '100000', '--admission-lag-ms', '600000'];

/** Options of a storm. */
export interface StormOptions {
  /** SDK clients. Default 15000. */
  readonly clients?: number;
  /** Client worker processes. Default 6. */
  readonly workers?: number;
  /** Gateway processes (clients are spread over them). Default 1. */
  readonly nodes?: number;
  /** Channels the clients subscribe to (one each). Default 10. */
  readonly channels?: number;
  /** `on`: the gateway's admission defaults; `off`: `ADMISSION_OFF`. Default on. */
  readonly admission?: 'on' | 'off';
  /** More `gatehouse start` flags (e.g. `--connect-rate 2000`). */
  readonly gatewayArgs?: readonly string[];
  /** `drop`: the clients' sockets are cut; `kill`: the gateways are SIGKILLed and restarted. Default drop. */
  readonly cause?: 'drop' | 'kill';
  /** Backbone URL; `memory` (the default) only with one node. */
  readonly backbone?: string;
  /** Source addresses (127.0.0.2 on). Default one per 50 clients, so the per-address limit never bites. */
  readonly addresses?: number;
  /** Connects per second while the clients first connect. Default 800. */
  readonly rampPerSecond?: number;
  /** Deadline for everyone to be back, seconds. Default 180. */
  readonly timeoutS?: number;
  /** Server heartbeat, seconds. Default 25. */
  readonly heartbeatS?: number;
  /** Print the figures line. Default true. */
  readonly print?: boolean;
}

/** The printed figures of a storm. */
export interface StormReport {
  readonly drill: 'storm';
  readonly clients: number;
  readonly workers: number;
  readonly nodes: number;
  readonly sourceAddresses: number;
  readonly cause: 'drop' | 'kill';
  readonly admission: 'on' | 'off';
  readonly gatewayArgs: string[];
  /** Time for the first connects (at the ramp rate), ms. */
  readonly initialConnectMs: number;
  /** From the storm until the last client was subscribed again, ms (null: not everyone came back). */
  readonly allBackMs: number | null;
  /** Per client, from the storm to subscribed again. */
  readonly backMs: Percentiles;
  readonly notBack: number;
  /** Refusals the clients saw (close 4100-4199, HTTP 429/503). */
  readonly refusalsSeen: number;
  /** `gatehouse_admission_rejects_total` during the storm, by reason, summed over the nodes. */
  readonly serverRejects: Record<string, number>;
  /** Worst `nodejs_eventloop_lag_max_seconds` of any node over the storm, ms. */
  readonly peakLagMs: number | null;
  /** Worst `nodejs_eventloop_lag_p99_seconds` of any node over the storm, ms. */
  readonly peakLagP99Ms: number | null;
  /** /metrics scrapes that failed or timed out during the storm (a busy node answers late). */
  readonly scrapeFailures: number;
  /** Clients that received a probe publication after they were back. */
  readonly probed: number;
  /** Time from SIGKILL until every gateway listened again (`kill` only), ms. */
  readonly restartMs?: number;
}

function address(i: number): string {
  // 127.0.0.2 - 127.0.0.254, then 127.0.1.x and so on: every one a loopback address on Linux.
  return `127.0.${Math.floor(i / 253)}.${2 + (i % 253)}`;
}

/** Runs one storm; every process it starts is gone when it settles. */
export async function runStorm(o: StormOptions = {}): Promise<StormReport> {
  const clients = o.clients ?? 15_000;
  const workers = Math.max(1, Math.min(o.workers ?? 6, clients));
  const nodeCount = o.nodes ?? 1;
  const backbone = o.backbone ?? 'memory';
  if (backbone === 'memory' && nodeCount > 1) throw new TypeError('nodes > 1 needs a shared backbone (--backbone redis://..., nats://...)');
  const cause = o.cause ?? 'drop';
  const admission = o.admission ?? 'on';
  const addresses = Math.max(1, o.addresses ?? Math.ceil(clients / 50));
  const ramp = o.rampPerSecond ?? 800;
  const timeoutMs = (o.timeoutS ?? 180) * 1000;
  const runId = randomBytes(3).toString('hex');
  const channels = Array.from({ length: o.channels ?? 10 }, (_, i) => `storm:${runId}-${i}`);
  const gatewayArgs = [...(admission === 'off' ? ADMISSION_OFF : []), ...(o.gatewayArgs ?? [])];
  const apiKey = `storm-${randomBytes(8).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-storm-'));
  const configFile = join(dir, 'gatehouse.json');
  writeFileSync(
    configFile,
    JSON.stringify({ namespaces: { storm: { anonymous: true, historySize: 10, historyTtlSeconds: 60, subscribe: 'claims' } } }),
  );

  let nodes: GatewayNode[] = [];
  const children: ChildProcess[] = [];
  const reports = new Map<ChildProcess, StormWorkerReport>();
  try {
    const ports = await Promise.all(Array.from({ length: nodeCount }, () => freePort()));
    const spec = (i: number) => ({
      nodeId: `storm-${runId}-${i}`,
      backbone: [backbone],
      apiKey,
      configFile,
      heartbeatS: o.heartbeatS ?? 25,
      drainWindowS: 1,
      port: ports[i] as number,
      extraArgs: gatewayArgs,
    });
    nodes = await Promise.all(ports.map((_, i) => GatewayNode.start(spec(i))));
    const endpoints = nodes.map((n) => `ws://127.0.0.1:${n.port}/ws`);

    // Workers, each with its own addresses and an even share of the clients.
    const all = Array.from({ length: addresses }, (_, i) => address(i));
    let offset = 0;
    for (let w = 0; w < workers; w++) {
      const count = Math.floor(clients / workers) + (w < clients % workers ? 1 : 0);
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      child.on('message', (msg: FromStormWorker) => {
        if (msg.type === 'report') reports.set(child, msg.report);
        else console.error(`storm worker ${w}: ${msg.message}`);
      });
      const mine = all.filter((_, i) => i % workers === w);
      const start: ToStormWorker = {
        type: 'start',
        endpoints,
        offset,
        count,
        channels,
        addresses: mine.length > 0 ? mine : [address(w % addresses)],
        rampPerSecond: ramp / workers,
      };
      child.send(start);
      offset += count;
    }
    const sum = async (f: (r: StormWorkerReport) => number): Promise<number> => {
      reports.clear();
      for (const c of children) c.send({ type: 'report' } satisfies ToStormWorker);
      await waitFor('every storm worker to report', () => reports.size === children.length || undefined, 30_000, 20);
      let n = 0;
      for (const r of reports.values()) n += f(r);
      return n;
    };

    const t0 = Date.now();
    await waitFor(
      `${clients} clients connected and subscribed`,
      async () => (await sum((r) => r.settled)) === clients,
      (clients / ramp) * 1000 + 120_000,
      500,
    );
    const initialConnectMs = Date.now() - t0;

    // A scrape before the storm resets the lag maxima and gives the baseline of the counters.
    const before = await Promise.all(nodes.map((n) => n.metrics().catch(() => new Map<string, number>())));
    let peakLag = 0;
    let peakP99 = 0;
    let scrapeFailures = 0;
    const rejects = new Map<string, number>();
    const addRejects = (m: Map<string, number>, sign: number) => {
      for (const [k, v] of m) {
        const r = /^gatehouse_admission_rejects_total\{.*reason="([^"]+)"/.exec(k);
        if (r) rejects.set(r[1] as string, (rejects.get(r[1] as string) ?? 0) + sign * v);
      }
    };
    if (cause === 'drop') for (const m of before) addRejects(m, -1);

    const stormAt = Date.now();
    for (const c of children) c.send({ type: 'storm', at: stormAt, cut: cause === 'drop' } satisfies ToStormWorker);
    let restartMs: number | undefined;
    if (cause === 'kill') {
      await Promise.all(nodes.map((n) => n.kill()));
      nodes = await Promise.all(nodes.map((_, i) => GatewayNode.start(spec(i))));
      restartMs = Date.now() - stormAt;
    }
    let last: Map<string, number>[] = [];
    const scrape = async () => {
      last = await Promise.all(
        nodes.map((n) =>
          n.metrics(2000).catch(() => {
            scrapeFailures++;
            return new Map<string, number>();
          }),
        ),
      );
      for (const m of last) {
        peakLag = Math.max(peakLag, (m.get('nodejs_eventloop_lag_max_seconds') ?? 0) * 1000);
        peakP99 = Math.max(peakP99, (m.get('nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000);
      }
    };
    let backMs: number[] = [];
    const deadline = stormAt + timeoutMs;
    for (;;) {
      await scrape();
      await sum(() => 0);
      backMs = [...reports.values()].flatMap((r) => r.backMs);
      if (backMs.every((x) => x >= 0) || Date.now() > deadline) break;
      await sleep(250);
    }
    const refusalsSeen = [...reports.values()].reduce((n, r) => n + r.refusals, 0);
    const back = backMs.filter((x) => x >= 0);
    const notBack = backMs.length - back.length;
    await scrape();
    addRejects(new Map([...last.flatMap((m) => [...m])].filter(([k]) => k.startsWith('gatehouse_admission_rejects_total{'))), 1);

    // A probe on every channel through every node: clients that are back really receive.
    for (const n of nodes) {
      const p = new HttpPublisher({ url: n.base, apiKey, retries: 3, timeoutMs: 10_000 });
      for (const ch of channels) await p.publish(ch, { probe: true }).catch(() => {});
      await p.close();
    }
    let probed = 0;
    await waitFor(
      'every client that is back to receive the probe',
      async () => (probed = await sum((r) => r.probed)) >= back.length,
      30_000,
      250,
    ).catch(() => {});

    const report: StormReport = {
      drill: 'storm',
      clients,
      workers,
      nodes: nodeCount,
      sourceAddresses: addresses,
      cause,
      admission,
      gatewayArgs,
      initialConnectMs,
      allBackMs: notBack === 0 && back.length > 0 ? Math.max(...back) : null,
      backMs: percentiles(back),
      notBack,
      refusalsSeen,
      serverRejects: Object.fromEntries([...rejects].filter(([, v]) => v > 0)),
      peakLagMs: peakLag > 0 ? Math.round(peakLag) : null,
      peakLagP99Ms: peakP99 > 0 ? Math.round(peakP99) : null,
      scrapeFailures,
      probed,
      ...(restartMs !== undefined ? { restartMs } : {}),
    };
    if (o.print !== false) console.log(JSON.stringify(report));
    return report;
  } finally {
    for (const c of children) {
      if (c.connected) c.send({ type: 'exit' } satisfies ToStormWorker);
    }
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? undefined
          : new Promise<void>((resolve) => {
              const t = setTimeout(() => c.kill('SIGKILL'), 5000);
              c.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
            }),
      ),
    );
    await Promise.allSettled(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  }
}
