/**
 * `gatehouse bench presence`: what a large presence channel costs (docs/benchmarks.md).
 *
 * - Memory: the heap one node spends on the members of a channel, measured with a forced GC
 *   before and after, twice: members held by another node (learned from its lease, what every
 *   node of the fleet keeps) and members of this node's own connections (the book's entries; the
 *   connections themselves are not counted).
 * - Query time: a real gateway (in process, memory backbone) learns the members from a peer that
 *   speaks the real lease protocol on the same bus; a real WebSocket client subscribed to the
 *   channel asks `presence` and `presence_stats`, and an HTTP client asks `POST /api/presence`;
 *   each is timed from request to the whole answer, sequentially.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { Gateway, MemoryBackbone, MemoryBus, NAMESPACE_DEFAULTS, PresenceBook } from '@gatehouse/server';

const HELP = `gatehouse bench presence [--members <n, default 10000>] [--queries <n, default 200>] [--json <file>]

Measures a presence channel of n members: heap per member on a node that learns them from a peer's
lease and on the node holding them, and the time of presence queries (WebSocket presence and
presence_stats, HTTP POST /api/presence) against a real in-process gateway.`;

/** What the run measured. */
export interface PresenceBenchResult {
  members: number;
  remoteBytesPerMember: number;
  localBytesPerMember: number;
  presenceReplyBytes: number;
  wsPresenceMs: Quantiles;
  wsStatsMs: Quantiles;
  httpPresenceMs: Quantiles;
  /** Building and encoding the member list, as the first query after a change does. */
  encodeMs: Quantiles;
  node: string;
}

interface Quantiles {
  p50: number;
  p99: number;
  max: number;
}

function gcNow(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
}

function quantiles(samples: number[]): Quantiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round((s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) * 1000) / 1000;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

function member(i: number) {
  return { client: `peer-${i}`, user: `user-${i}`, info: { name: `Member ${i}` } };
}

/** Heap bytes per member of a book that learns `n` members from a peer's lease. */
async function remoteCost(n: number, gc: () => void): Promise<number> {
  const messages: { type: string; data: string }[] = [];
  const sender = new PresenceBook({ node: 'peer', intervalMs: 60_000, send: async (type, data) => void messages.push({ type, data }) });
  for (let i = 0; i < n; i++) sender.join('bench:room', member(i));
  await Promise.resolve();
  messages.length = 0;
  sender.sendLease();
  gc();
  const before = process.memoryUsage().heapUsed;
  const book = new PresenceBook({ node: 'me', intervalMs: 60_000, send: async () => {} });
  for (const m of messages) book.onControl({ type: m.type, from: 'peer', data: m.data });
  messages.length = 0;
  gc();
  const after = process.memoryUsage().heapUsed;
  if (book.stats('bench:room').clients !== n) throw new Error(`the book learned ${book.stats('bench:room').clients} of ${n} members`);
  return Math.round((after - before) / n);
}

/** Heap bytes per member of the node holding `n` members (book entries only). */
async function localCost(n: number, gc: () => void): Promise<number> {
  const infos = Array.from({ length: n }, (_, i) => member(i));
  gc();
  const before = process.memoryUsage().heapUsed;
  const book = new PresenceBook({ node: 'me', intervalMs: 60_000, send: async () => {} });
  for (const m of infos) book.join('bench:room', m);
  await new Promise((r) => setImmediate(r));
  gc();
  const after = process.memoryUsage().heapUsed;
  if (book.stats('bench:room').clients !== n) throw new Error('local join lost members');
  return Math.round((after - before) / n);
}

/** Runs the bench; resolves with its result. */
export async function runPresenceBench(n: number, queries: number): Promise<PresenceBenchResult> {
  const gc = gcNow();
  const remoteBytesPerMember = await remoteCost(n, gc);
  const localBytesPerMember = await localCost(n, gc);
  const bus = new MemoryBus();
  const apiKey = 'bench-presence-key';
  // The gateway logs through pino at GATEHOUSE_LOG_LEVEL: quiet unless asked otherwise.
  const level = process.env['GATEHOUSE_LOG_LEVEL'];
  process.env['GATEHOUSE_LOG_LEVEL'] = level ?? 'silent';
  const gw = new Gateway(
    {
      port: 0,
      host: '127.0.0.1',
      apiKeys: [{ key: apiKey }],
      // Queries back to back are above the default 100 messages per second of one connection.
      maxMessagesPerSecond: 1_000_000,
      announceIntervalMs: 500,
      namespaces: { bench: { ...NAMESPACE_DEFAULTS, anonymous: true, presence: true } },
    },
    { backbone: new MemoryBackbone({ bus }) },
  );
  if (level === undefined) delete process.env['GATEHOUSE_LOG_LEVEL'];
  await gw.start();
  const peerBackbone = new MemoryBackbone({ bus });
  const peer = new PresenceBook({
    node: 'bench-peer',
    intervalMs: 500,
    send: (type, data) => peerBackbone.sendControl({ type, from: 'bench-peer', data }),
  });
  await peerBackbone.start({ onPublication: () => {}, onStateChange: () => {}, onControl: (m) => peer.onControl(m) });
  let ws: WebSocket | undefined;
  try {
    for (let i = 0; i < n; i++) peer.join('bench:room', member(i));
    peer.start();
    const deadline = Date.now() + 30_000;
    while (gw.presence.stats('bench:room').clients < n) {
      if (Date.now() > deadline) throw new Error(`the gateway learned ${gw.presence.stats('bench:room').clients} of ${n} members in 30 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`);
    const socket = ws;
    const replies = new Map<number, { at: number; resolve: (size: number) => void }>();
    socket.on('message', (d: Buffer) => {
      // The reply's id is near its start: no need to parse 700 kB to find it (the client's parse is not the server's cost).
      const head = d.subarray(0, 64).toString();
      if (head.startsWith('{"op":"error"')) throw new Error(`the gateway answered ${d.toString().slice(0, 200)}`);
      const m = /"id":(\d+)/.exec(head);
      if (m) replies.get(Number(m[1]))?.resolve(d.length);
    });
    await new Promise((r, j) => socket.once('open', r).once('error', j));
    let id = 0;
    const ask = (frame: Record<string, unknown>) =>
      new Promise<{ ms: number; size: number }>((resolve) => {
        const at = performance.now();
        const n2 = ++id;
        replies.set(n2, { at, resolve: (size) => resolve({ ms: performance.now() - at, size }) });
        socket.send(JSON.stringify({ ...frame, id: n2 }));
      });
    await ask({ op: 'connect', v: 1 });
    await ask({ op: 'subscribe', channel: 'bench:room' });
    const wsPresence: number[] = [];
    const wsStats: number[] = [];
    const http: number[] = [];
    let presenceReplyBytes = 0;
    for (let i = 0; i < queries; i++) {
      const r = await ask({ op: 'presence', channel: 'bench:room' });
      wsPresence.push(r.ms);
      presenceReplyBytes = r.size;
      wsStats.push((await ask({ op: 'presence_stats', channel: 'bench:room' })).ms);
      const at = performance.now();
      const res = await fetch(`http://127.0.0.1:${gw.port}/api/presence`, {
        method: 'POST',
        headers: { authorization: `apikey ${apiKey}`, 'content-type': 'application/json' },
        body: '{"channel":"bench:room"}',
      });
      await res.arrayBuffer();
      http.push(performance.now() - at);
    }
    const encode: number[] = [];
    for (let i = 0; i < Math.min(queries, 50); i++) {
      const at = performance.now();
      JSON.stringify(gw.presence.members('bench:room'));
      encode.push(performance.now() - at);
    }
    return {
      encodeMs: quantiles(encode),
      members: n,
      remoteBytesPerMember,
      localBytesPerMember,
      presenceReplyBytes,
      wsPresenceMs: quantiles(wsPresence),
      wsStatsMs: quantiles(wsStats),
      httpPresenceMs: quantiles(http),
      node: process.version,
    };
  } finally {
    ws?.terminate();
    peer.stop();
    await peerBackbone.close();
    await gw.close();
  }
}

/** `gatehouse bench presence ...`; resolves with the exit code. */
export async function presenceBenchMain(argv: string[], out: (t: string) => void = (t) => process.stdout.write(t + '\n')): Promise<number> {
  if (argv.includes('--help')) {
    out(HELP);
    return 0;
  }
  const flag = (name: string, fallback: number): number => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = Number(argv[i + 1]);
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
    return v;
  };
  const r = await runPresenceBench(flag('members', 10_000), flag('queries', 200));
  out(
    [
      `presence of one channel with ${r.members} members (${r.node})`,
      `  heap per member, learned from a peer's lease: ${r.remoteBytesPerMember} B`,
      `  heap per member, this node's own (book entries): ${r.localBytesPerMember} B`,
      `  presence reply: ${r.presenceReplyBytes} B`,
      `  WebSocket presence       p50 ${r.wsPresenceMs.p50} ms  p99 ${r.wsPresenceMs.p99} ms  max ${r.wsPresenceMs.max} ms`,
      `  WebSocket presence_stats p50 ${r.wsStatsMs.p50} ms  p99 ${r.wsStatsMs.p99} ms  max ${r.wsStatsMs.max} ms`,
      `  HTTP POST /api/presence  p50 ${r.httpPresenceMs.p50} ms  p99 ${r.httpPresenceMs.p99} ms  max ${r.httpPresenceMs.max} ms`,
      `  member list encode (first query after a change) p50 ${r.encodeMs.p50} ms  max ${r.encodeMs.max} ms`,
    ].join('\n'),
  );
  const json = argv.indexOf('--json');
  if (json >= 0 && argv[json + 1]) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(argv[json + 1] as string, JSON.stringify(r, null, 2) + '\n');
  }
  return 0;
}
