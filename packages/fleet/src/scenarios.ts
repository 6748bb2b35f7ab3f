/**
 * Scenarios on a running fleet. Each one connects fresh clients to fresh channels, publishes at a
 * steady rate, causes its fault part way through, keeps publishing after the fleet recovered,
 * then publishes a marker per channel and route and waits (with a deadline) until every client
 * has them, so what is missing by then is lost, not late. The accountant then judges the records
 * and the scenario prints one JSON line of figures.
 */
import { waitFor } from '@gatehouse/testkit';
import { account, type Figures, type Incident } from './accountant.js';
import { ClientPool, type RecordingClient } from './clients.js';
import { backboneKind } from './direct.js';
import type { Fleet } from './fleet.js';
import { SteadyPublisher } from './publisher.js';
import type { PrivateServer } from './servers.js';
import { sleep } from './stats.js';

/** The load of a scenario. */
export interface LoadOptions {
  /** SDK clients, spread over the nodes by the balancer. */
  readonly clients: number;
  /** How many of them use HTTP streaming (POST commands, forwarded between nodes) instead of WebSocket. Default 0. */
  readonly streamClients?: number;
  /** Channels; each client subscribes to `perClient` of them (default all). */
  readonly channels: number;
  readonly perClient?: number;
  /** Publications per second over all channels. */
  readonly ratePerSecond: number;
  /** Length of the publishing phase without the fault, ms; publishing goes on for a third of it after the fault. */
  readonly durationMs: number;
  /** Deadline for clients to connect, and for the markers to arrive at the end. Default 30 s. */
  readonly settleTimeoutMs?: number;
  /** Print the figures line on stdout. Default true. */
  readonly print?: boolean;
}

/** What a fault reports back. */
export interface FaultOutcome {
  readonly incidents: Incident[];
  readonly extra?: Record<string, unknown>;
}

/** What a scenario hands its fault. */
export interface FaultContext {
  readonly fleet: Fleet;
  readonly pool: ClientPool;
  readonly publisher: SteadyPublisher;
  readonly settleTimeoutMs: number;
}

/** A fault: what the scenario does to the fleet part way through. */
export type Fault = (ctx: FaultContext) => Promise<FaultOutcome>;

/** The printed figures of one scenario, with its parameters. */
export interface ScenarioReport extends Figures {
  readonly scenario: string;
  readonly backbone: string;
  readonly nodes: number;
  readonly clients: number;
  /** Of those, clients on HTTP streaming. */
  readonly streamClients: number;
  readonly channels: number;
  readonly ratePerSecond: number;
  /** Length of the publishing phase, ms. */
  readonly publishingMs: number;
  /** Ticks the publisher dropped (a channel's queue full, or no route). */
  readonly skipped: number;
  /** Every client had every marker before the deadline. */
  readonly settled: boolean;
  /** Clients without every marker at the deadline. */
  readonly unsettledClients: number;
  /** For diagnosis: the first unsettled clients' connection events and last sequence per channel and route. */
  readonly unsettledSample: string[];
  /** "backbone down" reports in the nodes' logs during the scenario. */
  readonly backboneDown: number;
  /** Connections the clients lost, by close code (the clients' own close at the end excluded). */
  readonly disconnects: Record<string, number>;
  /** Accepted publications by route (`http:<node>`, `direct`). */
  readonly acceptedByRoute: Record<string, number>;
  readonly [extra: string]: unknown;
}

/** A finished scenario: its report and the clients' records (closed). */
export interface ScenarioResult {
  readonly report: ScenarioReport;
  readonly pool: ClientPool;
}

/** Runs `fault` (or nothing) under load on `fleet`. */
export async function runScenario(fleet: Fleet, name: string, load: LoadOptions, fault?: Fault): Promise<ScenarioResult> {
  const settleTimeoutMs = load.settleTimeoutMs ?? 30_000;
  const channels = Array.from({ length: load.channels }, (_, i) => fleet.channel(`${name}-${i}`));
  const pool = new ClientPool({
    count: load.clients,
    url: fleet.url,
    channels,
    ...(load.perClient ? { perClient: load.perClient } : {}),
    ...(load.streamClients ? { streams: load.streamClients } : {}),
    prefix: `${name}-`,
  });
  const publisher = new SteadyPublisher({ channels, ratePerSecond: load.ratePerSecond, routes: () => fleet.routes() });
  const downBefore = backboneDownReports(fleet);
  try {
    pool.connect();
    await waitFor(`${load.clients} clients connected and subscribed`, () => pool.settled, settleTimeoutMs, 20);
    const total = Math.max(1, Math.round((load.ratePerSecond * load.durationMs) / 1000));
    const startedAt = Date.now();
    publisher.start();
    let outcome: FaultOutcome = { incidents: [] };
    if (fault) {
      await waitFor('a third of the publications to go out', () => publisher.sent.length >= total / 3, load.durationMs * 3 + 10_000, 5);
      outcome = await fault({ fleet, pool, publisher, settleTimeoutMs });
    }
    // Keep publishing after the fault for a third of the duration, so recovery is under load too.
    const until = Math.max(total, publisher.sent.length + Math.round(total / 3));
    await waitFor(
      `${until} publications to go out`,
      () => publisher.sent.length + publisher.skipped >= until,
      load.durationMs * 3 + 10_000,
      5,
    );
    await publisher.stop();
    const publishingMs = Date.now() - startedAt;
    // Markers go out once every client is back and subscribed: on a backbone without history a
    // marker published while a client was still reconnecting is lost for it (and reported as a
    // gap), so the client could never reach it and the run would wait out its deadline.
    await waitFor('every client back and subscribed before the markers', () => pool.settled, settleTimeoutMs, 20).catch(() => {});
    const markers = (await publisher.markers(fleet.routes())).filter((m) => m.outcome === 'accepted');
    const done = (c: RecordingClient) =>
      c.settled && markers.every((m) => !c.channels.includes(m.channel) || c.reached(m.channel, m.route, m.seq));
    let settled = true;
    await waitFor('every client to be back and to have every marker', () => pool.clients.every(done), settleTimeoutMs, 20).catch(() => {
      settled = false;
    });
    const figures = account({ sent: publisher.sent, clients: pool.clients, sequenced: fleet.sequenced, incidents: outcome.incidents });
    const report: ScenarioReport = {
      scenario: name,
      backbone: backboneKind(fleet.options.backbone[0] as string),
      nodes: fleet.nodes.length,
      clients: load.clients,
      streamClients: load.streamClients ?? 0,
      channels: load.channels,
      ratePerSecond: load.ratePerSecond,
      publishingMs,
      ...figures,
      skipped: publisher.skipped,
      settled,
      unsettledClients: pool.clients.filter((c) => !done(c)).length,
      unsettledSample: pool.clients
        .filter((c) => !done(c))
        .slice(0, 3)
        .map((c) => describeClient(c, startedAt)),
      backboneDown: backboneDownReports(fleet) - downBefore,
      disconnects: countBy(pool.clients.flatMap((c) => c.events.flatMap((e) => (e.type === 'disconnected' ? [String(e.code)] : [])))),
      acceptedByRoute: countBy(publisher.sent.filter((x) => x.outcome === 'accepted').map((x) => x.route)),
      ...outcome.extra,
    };
    if (load.print !== false) console.log(JSON.stringify(report));
    return { report, pool };
  } finally {
    await publisher.stop();
    pool.close();
  }
}

/** One line about a client: its connection events (ms from `t0`) and how far each channel and route got. */
function describeClient(c: RecordingClient, t0: number): string {
  const events = c.events
    .filter((e) => e.type === 'connected' || e.type === 'disconnected' || e.type === 'gap')
    .map(
      (e) => `${e.type}@${e.t - t0}${e.type === 'connected' ? `:${e.node}` : e.type === 'disconnected' ? `:${e.code}` : `:${e.reason}`}`,
    );
  const last = [...c.lastSeq].map(([k, v]) => `${k.replace('\u0000', '/')}=${v}`);
  return `${c.id} state=${c.client.state} ${events.join(' ')} last ${last.join(' ')}`;
}

function countBy(keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
}

/** "backbone down" lines in every node's log so far (nodes that ended included while held). */
function backboneDownReports(fleet: Fleet): number {
  return fleet.allNodes().reduce((n, node) => n + node.backboneDownReports, 0);
}

/** No fault: publications through every node and straight into the backbone. */
export function steady(fleet: Fleet, load: LoadOptions): Promise<ScenarioResult> {
  return runScenario(fleet, 'steady', load);
}

/** SIGKILL of the node holding the most clients, while the publisher runs. */
export function killOne(fleet: Fleet, load: LoadOptions): Promise<ScenarioResult> {
  return runScenario(fleet, 'kill', load, async ({ pool }) => {
    const counts = pool.byNode();
    const running = fleet.nodes.map((n, i) => ({ i, n })).filter(({ n }) => n.running);
    const victim = running.reduce((a, b) => ((counts.get(b.n.nodeId)?.length ?? 0) > (counts.get(a.n.nodeId)?.length ?? 0) ? b : a));
    const clientsOnVictim = counts.get(victim.n.nodeId)?.length ?? 0;
    const incident = await fleet.kill(victim.i);
    return { incidents: [incident], extra: { killed: victim.n.nodeId, clientsOnKilled: clientsOnVictim } };
  });
}

/**
 * A backbone restart: SIGKILL of the (private) server, held down until every node reports not
 * ready and for `downMs` more, then started again; waits until every node is ready again.
 * Reports how long the nodes took to turn unready, how long the server took to start, and how
 * long the nodes took to be ready once it answered.
 */
export function backboneRestart(fleet: Fleet, server: PrivateServer, load: LoadOptions, downMs = 1000): Promise<ScenarioResult> {
  return runScenario(fleet, 'backbone-restart', load, async ({ fleet: f }) => {
    const at = Date.now();
    await server.kill();
    await f.waitReady(503, 60_000);
    const notReadyAfterMs = Date.now() - at;
    await sleep(downMs);
    const restartAt = Date.now();
    await server.restart();
    const serverBackAt = Date.now();
    await f.waitReady(200, 120_000);
    return {
      incidents: [{ at, kind: 'backbone' }],
      extra: {
        notReadyAfterMs,
        downMs: restartAt - at,
        serverStartMs: serverBackAt - restartAt,
        readyAgainAfterMs: Date.now() - serverBackAt,
        nodesRunning: f.nodes.filter((n) => n.running).length,
      },
    };
  });
}

/**
 * A rolling restart: SIGTERM one node at a time, wait for it to drain and exit, start it again,
 * and wait until every client is back before the next one.
 */
export function rollingRestart(fleet: Fleet, load: LoadOptions): Promise<ScenarioResult> {
  return runScenario(fleet, 'rolling-restart', load, async ({ fleet: f, pool, settleTimeoutMs }) => {
    const incidents: Incident[] = [];
    const drainMs: number[] = [];
    for (let i = 0; i < f.nodes.length; i++) {
      const incident = await f.drain(i);
      incidents.push(incident);
      drainMs.push(Date.now() - incident.at);
      await f.restart(i);
      await waitFor(`every client back after restarting ${incident.node}`, () => pool.settled, settleTimeoutMs, 20);
    }
    return { incidents, extra: { drainMs } };
  });
}
