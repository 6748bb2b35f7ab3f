/**
 * The raw uWebSockets.js baseline: `node raw-uws-server.js '<ServerChildConfig JSON>'`. The same
 * least-a-broadcast-server-can-be as raw-ws-server.ts, on uWebSockets.js's native server: the
 * `connect` and `subscribe` frames are answered, a subscription is a uWebSockets.js topic, and
 * `POST /api/publish` stamps the accept time and hands the publication to the topic's `publish`
 * (framed once, written by the native code to every subscriber). Heartbeats are WebSocket pings at
 * the gateway's interval. `/metrics` exposes the figures the bench reads, under the gateway's
 * metric names. It exits with a message when no uWebSockets.js build loads (see uws-load.ts).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { encodePub } from '@gatehouse/protocol';
import { baselineMetricsText } from './baseline-metrics.js';
import { announceReady, readChildConfig, serveChildControl } from './child-protocol.js';
import { loadUws } from './uws-load.js';

interface UwsSocket {
  send(message: string, isBinary?: boolean): number;
  subscribe(topic: string): boolean;
  ping(message?: string): number;
  end(code?: number): void;
  close(): void;
  getBufferedAmount(): number;
  getUserData(): { alive?: boolean };
}

const config = readChildConfig(process.argv);
const loaded = loadUws();
if ('skipped' in loaded) {
  console.error(loaded.skipped);
  process.exit(3);
}
const uws = loaded.uws;
const peers = new Set<UwsSocket>();
const offsets = new Map<string, number>();
let deliveries = 0;
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

const app = uws.App();
app.ws('/ws', {
  compression: uws.DISABLED,
  maxPayloadLength: 64 * 1024,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  maxBackpressure: 16 * 1024 * 1024,
  open: (ws: UwsSocket) => {
    ws.getUserData().alive = true;
    peers.add(ws);
  },
  message: (ws: UwsSocket, message: ArrayBuffer) => onMessage(ws, Buffer.from(message).toString('utf8')),
  pong: (ws: UwsSocket) => {
    ws.getUserData().alive = true;
  },
  close: (ws: UwsSocket) => {
    peers.delete(ws);
  },
});

function onMessage(ws: UwsSocket, text: string): void {
  ws.getUserData().alive = true;
  let f: { op?: unknown; id?: unknown; channel?: unknown };
  try {
    f = JSON.parse(text) as typeof f;
  } catch {
    return;
  }
  if (f.op === 'connect') {
    ws.send(JSON.stringify({ op: 'connected', id: f.id, client: `uws-${process.pid}`, node: `uws-${process.pid}`, heartbeat: 0 }));
  } else if (f.op === 'subscribe' && typeof f.channel === 'string') {
    ws.subscribe(f.channel);
    ws.send(JSON.stringify({ op: 'subscribed', id: f.id, channel: f.channel, epoch: 'raw', offset: offsets.get(f.channel) ?? 0 }));
  }
}

function publish(channel: string, dataJson: string): number {
  const ts = performance.timeOrigin + performance.now();
  const offset = (offsets.get(channel) ?? 0) + 1;
  offsets.set(channel, offset);
  deliveries += app.numSubscribers(channel);
  app.publish(channel, encodePub(channel, 'raw', offset, ts, dataJson), false);
  return offset;
}

app.post('/api/publish', (res, req) => {
  const authorized = req.getHeader('authorization') === `apikey ${config.apiKey}`;
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const chunks: Buffer[] = [];
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
    if (!isLast || aborted) return;
    let status = '200 OK';
    let body: unknown;
    if (!authorized) {
      status = '401 Unauthorized';
      body = { error: { code: 'unauthorized', message: 'bad API key' } };
    } else {
      let pub: { channel?: unknown; data?: unknown } | undefined;
      try {
        pub = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof pub;
      } catch {
        pub = undefined;
      }
      if (!pub || typeof pub.channel !== 'string' || pub.data === undefined) {
        status = '400 Bad Request';
        body = { error: { code: 'bad_request', message: '"channel" and "data" are required' } };
      } else {
        body = { channel: pub.channel, epoch: 'raw', offset: publish(pub.channel, JSON.stringify(pub.data)) };
      }
    }
    res.cork(() => {
      res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body));
    });
  });
});

app.get('/metrics', (res) => {
  let queueMax = 0;
  for (const p of peers) queueMax = Math.max(queueMax, p.getBufferedAmount());
  const text = baselineMetricsText({ deliveries, queueMaxBytes: queueMax, connections: peers.size, lag });
  res.writeStatus('200 OK').writeHeader('content-type', 'text/plain; version=0.0.4').end(text);
});

app.any('/*', (res) => {
  res
    .writeStatus('404 Not Found')
    .writeHeader('content-type', 'application/json')
    .end('{"error":{"code":"not_found","message":"no route"}}');
});

const heartbeat = setInterval(() => {
  for (const p of peers) {
    const data = p.getUserData();
    if (!data.alive) {
      p.close();
      continue;
    }
    data.alive = false;
    p.ping();
  }
}, config.heartbeatMs);

const listenSocket = await new Promise<unknown>((resolve, reject) => {
  app.listen(config.host, config.port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${config.host}:${config.port}`))));
});
serveChildControl(async () => {
  clearInterval(heartbeat);
  for (const p of [...peers]) p.close();
  uws.us_listen_socket_close(listenSocket);
});
announceReady(config.host, uws.us_socket_local_port(listenSocket));
