/**
 * The raw `ws` baseline: `node raw-ws-server.js '<ServerChildConfig JSON>'`. The least a
 * broadcast server can be while speaking enough of the Gatehouse protocol for the same load
 * clients and the same HTTP publisher: `connect` and `subscribe` are answered, `POST
 * /api/publish` stamps the accept time, and each publication goes to the channel's sockets in one
 * of three ways (see BaselineMode). Heartbeats are `ws` pings at the same interval as the
 * gateway's. `/metrics` exposes the figures the bench reads, under the gateway's metric names.
 *
 * No auth, no queues caps, no history, no admission control: that is the point of a baseline.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import { encodePub } from '@gatehouse/protocol';
import { baselineMetricsText } from './baseline-metrics.js';
import { announceReady, readChildConfig, serveChildControl } from './child-protocol.js';
import type { BaselineMode } from './child-protocol.js';
import { serverTextFrame } from './wire.js';

interface Peer {
  ws: WebSocket;
  socket: Duplex & { writableLength: number };
  channels: string[];
  alive: boolean;
  /** coalesce mode: frames queued in this tick. */
  queue: Buffer[] | undefined;
  queuedBytes: number;
}

const config = readChildConfig(process.argv);
const mode: BaselineMode = config.mode ?? 'send';
const peers = new Set<Peer>();
const channels = new Map<string, Set<Peer>>();
const offsets = new Map<string, number>();
let deliveries = 0;
let dirty: Peer[] = [];
let flushScheduled = false;
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 64 * 1024 });
const server = createServer(onRequest);

server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on('error', () => socket.destroy());
  if ((req.url ?? '/').split('?', 1)[0] !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
});

function onConnection(ws: WebSocket): void {
  const socket = (ws as unknown as { _socket: Peer['socket'] })._socket;
  const peer: Peer = { ws, socket, channels: [], alive: true, queue: undefined, queuedBytes: 0 };
  peers.add(peer);
  ws.on('message', (data: RawData) => onMessage(peer, data as Buffer));
  ws.on('pong', () => {
    peer.alive = true;
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    peers.delete(peer);
    for (const ch of peer.channels) channels.get(ch)?.delete(peer);
  });
}

function onMessage(peer: Peer, data: Buffer): void {
  peer.alive = true;
  let f: { op?: unknown; id?: unknown; channel?: unknown };
  try {
    f = JSON.parse(data.toString('utf8')) as typeof f;
  } catch {
    return;
  }
  if (f.op === 'connect') {
    peer.ws.send(JSON.stringify({ op: 'connected', id: f.id, client: `raw-${process.pid}`, node: `raw-${process.pid}`, heartbeat: 0 }));
  } else if (f.op === 'subscribe' && typeof f.channel === 'string') {
    const ch = f.channel;
    let set = channels.get(ch);
    if (!set) channels.set(ch, (set = new Set()));
    set.add(peer);
    if (!peer.channels.includes(ch)) peer.channels.push(ch);
    peer.ws.send(JSON.stringify({ op: 'subscribed', id: f.id, channel: ch, epoch: 'raw', offset: offsets.get(ch) ?? 0 }));
  }
}

function publish(channel: string, dataJson: string): number {
  const ts = performance.timeOrigin + performance.now();
  const offset = (offsets.get(channel) ?? 0) + 1;
  offsets.set(channel, offset);
  const subs = channels.get(channel);
  if (!subs) return offset;
  const text = encodePub(channel, 'raw', offset, ts, dataJson);
  if (mode === 'send') {
    for (const p of subs) p.ws.send(text);
  } else {
    const frame = serverTextFrame(text);
    if (mode === 'frame') {
      for (const p of subs) p.socket.write(frame);
    } else {
      for (const p of subs) {
        if (!p.queue) {
          p.queue = [];
          dirty.push(p);
        }
        p.queue.push(frame);
        p.queuedBytes += frame.length;
      }
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    }
  }
  deliveries += subs.size;
  return offset;
}

function flush(): void {
  flushScheduled = false;
  const list = dirty;
  dirty = [];
  for (const p of list) {
    const q = p.queue as Buffer[];
    p.socket.write(q.length === 1 ? (q[0] as Buffer) : Buffer.concat(q, p.queuedBytes));
    p.queue = undefined;
    p.queuedBytes = 0;
  }
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method === 'GET' && path === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(metricsText());
    return;
  }
  if (req.method === 'POST' && path === '/api/publish') {
    if (req.headers.authorization !== `apikey ${config.apiKey}`)
      return answer(res, 401, { error: { code: 'unauthorized', message: 'bad API key' } });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: { channel?: unknown; data?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        return answer(res, 400, { error: { code: 'bad_request', message: 'body is not JSON' } });
      }
      if (typeof body.channel !== 'string' || body.data === undefined) {
        return answer(res, 400, { error: { code: 'bad_request', message: '"channel" and "data" are required' } });
      }
      const offset = publish(body.channel, JSON.stringify(body.data));
      answer(res, 200, { channel: body.channel, epoch: 'raw', offset });
    });
    return;
  }
  answer(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function metricsText(): string {
  let queueMax = 0;
  for (const p of peers) queueMax = Math.max(queueMax, p.socket.writableLength + p.queuedBytes);
  return baselineMetricsText({ deliveries, queueMaxBytes: queueMax, connections: peers.size, lag });
}

const heartbeat = setInterval(() => {
  for (const p of peers) {
    if (!p.alive) {
      p.ws.terminate();
      continue;
    }
    p.alive = false;
    p.ws.ping();
  }
}, config.heartbeatMs);

await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port, config.host, () => resolve());
});
serveChildControl(async () => {
  clearInterval(heartbeat);
  for (const p of peers) p.ws.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
announceReady(config.host, (server.address() as AddressInfo).port);
