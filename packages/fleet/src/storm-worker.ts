/**
 * A storm worker process (forked by the storm coordinator): it holds its share of the SDK
 * clients, each leaving from one of the 127.0.0.x source addresses it was given, and tells the
 * coordinator how many are back. On `storm` it notes the moment and, for a `drop`, cuts every
 * socket at once the way a network blip would; each client then reconnects by itself. It exits
 * when told to, or when the coordinator goes away.
 */
import WebSocket from 'ws';
import { GatehouseClient, type WebSocketConstructor } from '@gatehouse/client';

/** Messages from the coordinator. */
export type ToStormWorker =
  | {
      type: 'start';
      /** `ws://` URLs of the nodes; client k uses endpoints[(offset + k) % n]. */
      endpoints: string[];
      offset: number;
      count: number;
      channels: string[];
      addresses: string[];
      rampPerSecond: number;
    }
  | { type: 'storm'; at: number; cut: boolean }
  | { type: 'report' }
  | { type: 'exit' };

/** What a worker reports. */
export interface StormWorkerReport {
  /** Clients connected with their channel confirmed on the current connection. */
  settled: number;
  /** Clients that received a publication after the storm (the probe). */
  probed: number;
  /** Per client back after the storm (subscribed again): ms from the storm; -1 while not back. */
  backMs: number[];
  /** Failed attempts after the storm the server refused (close 4100-4199, or HTTP 429/503). */
  refusals: number;
  /** Every disconnect after the storm (the cut itself included). */
  disconnects: number;
}

/** Messages to the coordinator. */
export type FromStormWorker = { type: 'report'; report: StormWorkerReport } | { type: 'error'; message: string };

const REFUSED_HTTP = /Unexpected server response: (429|503)/;

interface Slot {
  client: GatehouseClient;
  channel: string;
  settled: boolean;
  back: number;
  probed: boolean;
}

const sockets = new Set<WebSocket>();
const slots: Slot[] = [];
let stormAt = 0;
let refusals = 0;
let disconnects = 0;
let rampTimer: NodeJS.Timeout | undefined;

function send(msg: FromStormWorker): void {
  if (process.connected) process.send?.(msg);
}

/** A `ws` that leaves from `localAddress` and is remembered, so a drop can cut it. */
function trackedWs(localAddress: string): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { localAddress });
      sockets.add(this);
      this.once('close', () => sockets.delete(this));
    }
  } as unknown as WebSocketConstructor;
}

function start(msg: Extract<ToStormWorker, { type: 'start' }>): void {
  for (let k = 0; k < msg.count; k++) {
    const global = msg.offset + k;
    const endpoint = msg.endpoints[global % msg.endpoints.length] as string;
    const address = msg.addresses[k % msg.addresses.length] as string;
    const channel = msg.channels[global % msg.channels.length] as string;
    const client = new GatehouseClient(endpoint, { WebSocket: trackedWs(address) });
    const slot: Slot = { client, channel, settled: false, back: -1, probed: false };
    client.on('subscribed', () => {
      slot.settled = true;
      if (stormAt > 0 && slot.back < 0) slot.back = Date.now() - stormAt;
    });
    client.on('disconnected', (e) => {
      slot.settled = false;
      if (stormAt === 0) return;
      disconnects++;
      if ((e.code >= 4100 && e.code < 4200) || REFUSED_HTTP.test(e.reason)) refusals++;
    });
    client.on('publication', () => {
      if (stormAt > 0) slot.probed = true;
    });
    client.on('error', () => {});
    client.subscribe(channel);
    slots.push(slot);
  }
  // Connect at the ramp rate, so the first connects are not a storm of their own.
  let next = 0;
  const t0 = performance.now();
  rampTimer = setInterval(() => {
    const due = Math.min(slots.length, Math.floor(((performance.now() - t0) / 1000) * msg.rampPerSecond) + 1);
    for (; next < due; next++) (slots[next] as Slot).client.connect();
    if (next >= slots.length) clearInterval(rampTimer);
  }, 10);
}

function report(): StormWorkerReport {
  return {
    settled: slots.filter((s) => s.settled).length,
    probed: slots.filter((s) => s.probed).length,
    backMs: slots.map((s) => s.back),
    refusals,
    disconnects,
  };
}

function exit(): void {
  clearInterval(rampTimer);
  for (const s of slots) s.client.close();
  // Let the close frames go out, then leave whatever is left.
  setTimeout(() => process.exit(0), 500).unref();
}

process.on('message', (msg: ToStormWorker) => {
  try {
    switch (msg.type) {
      case 'start':
        start(msg);
        break;
      case 'storm':
        stormAt = msg.at;
        if (msg.cut) for (const ws of sockets) ws.terminate();
        break;
      case 'report':
        send({ type: 'report', report: report() });
        break;
      case 'exit':
        exit();
        break;
    }
  } catch (err) {
    send({ type: 'error', message: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
