/**
 * A load worker process (forked by the coordinator). It holds its share of the connections,
 * opens them at the ramp rate it is given, and reports its counters over IPC every 500 ms and
 * on request. It exits when told to, or when the coordinator goes away.
 */
import { performance } from 'node:perf_hooks';
import { LeanConnection, LoadStats, SdkConnection, subscribeFrameFor } from './load.js';
import type { Endpoint, LoadConnection, LoadReport } from './load.js';
import { PusherConnection, pusherSubscribeFrameFor } from './pusher-load.js';
import { StreamConnection } from './stream-load.js';

/** One channel and how many of this worker's connections subscribe to it. */
export interface PlanEntry {
  channel: string;
  count: number;
}

/** Messages from the coordinator. */
export type ToWorker =
  | {
      type: 'start';
      mode: 'lean' | 'sdk';
      endpoints: Endpoint[];
      /** Added to the connection index when picking an endpoint, so workers spread evenly. */
      endpointOffset: number;
      plan: PlanEntry[];
      sourceAddresses: string[];
      rampPerSecond: number;
      /** Attempts allowed in flight (started, not yet subscribed or failed). */
      maxPending: number;
    }
  | { type: 'report'; seq: number; detail?: boolean }
  | { type: 'storm'; cause: 'drop' | 'kill' }
  | { type: 'stop'; seq: number }
  | { type: 'exit' };

/** Messages to the coordinator. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'report'; seq: number | undefined; report: LoadReport }
  | { type: 'stopped'; seq: number; report: LoadReport }
  | { type: 'error'; message: string };

const REPORT_MS = 500;
const RAMP_TICK_MS = 20;
const STOP_GRACE_MS = 3000;

let stats = new LoadStats(0);
let conns: LoadConnection[] = [];
let rampTimer: NodeJS.Timeout | undefined;

function send(msg: FromWorker): void {
  if (process.connected) process.send?.(msg);
}

function start(msg: Extract<ToWorker, { type: 'start' }>): void {
  stats = new LoadStats(msg.plan.length);
  conns = [];
  const current = stats;
  stats.retry = (failed) => {
    const timer = setTimeout(
      () => {
        if (current.stopping) return;
        // The same kind of connection again (v1 or Pusher).
        const Again = failed.constructor as typeof LeanConnection;
        conns.push(
          new Again(current, failed.channelIndex, failed.subscribeFrame, failed.endpoint, failed.localAddress, failed.attempt + 1),
        );
      },
      1000 + Math.random() * 1000,
    );
    timer.unref();
  };
  const total = msg.plan.reduce((a, p) => a + p.count, 0);
  const pusher = msg.endpoints[0]?.path.startsWith('/app/') === true;
  const frames = msg.plan.map((p) => (pusher ? pusherSubscribeFrameFor(p.channel) : subscribeFrameFor(p.channel)));
  let entry = 0;
  let leftInEntry = msg.plan[0]?.count ?? 0;
  let k = 0;
  const t0 = performance.now();
  const step = () => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * msg.rampPerSecond) + 1);
    while (k < due && stats.started - stats.subscribed - stats.failed - stats.dropped - stats.retries < msg.maxPending) {
      while (leftInEntry === 0) leftInEntry = msg.plan[++entry]?.count ?? 0;
      leftInEntry--;
      const endpoint = msg.endpoints[(k + msg.endpointOffset) % msg.endpoints.length] as Endpoint;
      const local = msg.sourceAddresses.length > 0 ? msg.sourceAddresses[k % msg.sourceAddresses.length] : undefined;
      const channel = (msg.plan[entry] as PlanEntry).channel;
      conns.push(
        msg.mode === 'sdk'
          ? new SdkConnection(stats, entry, channel, endpoint, local)
          : endpoint.path === '/ws'
            ? new LeanConnection(stats, entry, frames[entry] as Buffer, endpoint, local)
            : endpoint.path.startsWith('/app/')
              ? new PusherConnection(stats, entry, frames[entry] as Buffer, endpoint, local)
              : new StreamConnection(stats, entry, channel, endpoint, local),
      );
      k++;
    }
    if (k >= total) {
      clearInterval(rampTimer);
      rampTimer = undefined;
    }
  };
  rampTimer = setInterval(step, RAMP_TICK_MS);
  step();
}

async function stop(seq: number): Promise<void> {
  clearInterval(rampTimer);
  rampTimer = undefined;
  stats.stopping = true;
  for (const c of conns) c.stop();
  const deadline = Date.now() + STOP_GRACE_MS;
  while (conns.some((c) => !c.gone) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const c of conns) if (!c.gone) c.drop();
  const report = stats.report();
  conns = [];
  send({ type: 'stopped', seq, report });
}

process.on('message', (msg: ToWorker) => {
  try {
    switch (msg.type) {
      case 'start':
        start(msg);
        return;
      case 'report': {
        const report = stats.report();
        if (msg.detail) {
          const states: Record<string, number> = {};
          for (const c of conns) states[c.stateName] = (states[c.stateName] ?? 0) + 1;
          report.states = states;
        }
        send({ type: 'report', seq: msg.seq, report });
        return;
      }
      case 'storm':
        stats.stormAt = performance.now();
        if (msg.cause === 'drop') for (const c of conns) c.drop();
        return;
      case 'stop':
        void stop(msg.seq);
        return;
      case 'exit':
        process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: (err as Error).stack ?? String(err) });
  }
});

// The coordinator went away: nothing left to report to, so drop everything and leave.
process.on('disconnect', () => {
  for (const c of conns) c.drop();
  process.exit(0);
});

setInterval(() => send({ type: 'report', seq: undefined, report: stats.report() }), REPORT_MS);
send({ type: 'ready' });
