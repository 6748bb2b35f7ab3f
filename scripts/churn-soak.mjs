#!/usr/bin/env node
// Subscribe churn against one or two gateways on a backbone, seen by plain `ws` clients that do not
// deduplicate (what a Pusher client or an EventSource would show a user). It counts, per client and
// channel: duplicates (a publication already received, or one at or below the `subscribed` reply's
// position when nothing was recovered), publications out of order, publications outside a
// subscription, and, on backbones whose offsets rise by exactly one (memory, Redis), silent gaps: a
// skipped offset with no `gap` frame before it, split into those inside a recovery's replay and
// those after it.
//
//   node scripts/churn-soak.mjs [--backbone memory] [--minutes 4] [--connections 1000]
//        [--channels 50] [--reconnects 50] [--moves 100] [--rate 100] [--recover 0.5] [--nodes 1|2]
//        [--backbone-namespace <name>|none] [--port 18731] [--sample 15] [--cli <gatehouse.js>]
//
// A client is a logical one: its positions survive its reconnects. It holds two channels; a
// reconnect closes its socket, waits for the close, opens a new one and subscribes again; a move
// unsubscribes one channel and subscribes another. A share of the resubscribes and moves
// (--recover, half by default) carry `since`, the last position the client saw on that channel (a
// move with `since` returns to a channel the client held before). Publications go through each
// node's HTTP API in turn, each carrying a unique `s`. On a networked backbone two nodes run by default and a client
// reconnects to either, as behind a balancer. Prints one JSON line per sample and a summary; exits
// 1 when any duplicate, disorder, stray publication or silent gap was counted. Loopback only; stops
// by itself after --minutes. Needs a build (npx tsc -b).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const { values: v } = parseArgs({
  options: {
    backbone: { type: 'string', default: 'memory' },
    'backbone-namespace': { type: 'string' },
    minutes: { type: 'string', default: '4' },
    connections: { type: 'string', default: '1000' },
    channels: { type: 'string', default: '50' },
    reconnects: { type: 'string', default: '50' },
    moves: { type: 'string', default: '100' },
    rate: { type: 'string', default: '100' },
    recover: { type: 'string', default: '0.5' },
    nodes: { type: 'string' },
    port: { type: 'string', default: '18731' },
    sample: { type: 'string', default: '15' },
    cli: { type: 'string', default: fileURLToPath(new URL('../packages/cli/bin/gatehouse.js', import.meta.url)) },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log(
    'usage: node scripts/churn-soak.mjs [--backbone memory|redis://…|nats://…|jetstream://…|kafka://…] [--minutes 4] [--connections 1000]',
  );
  console.log(
    '       [--channels 50] [--reconnects 50] [--moves 100] [--rate 100] [--recover 0.5] [--nodes n] [--backbone-namespace name] [--port 18731] [--sample 15]',
  );
  process.exit(0);
}
const num = (k, min, max, fallback) => {
  const raw = v[k] ?? fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`--${k} must be a number from ${min} to ${max}, got ${raw}`);
    process.exit(2);
  }
  return n;
};
const backbone = v.backbone;
const networked = backbone !== 'memory';
const minutes = num('minutes', 0.1, 240);
const connections = num('connections', 1, 15000);
const channelCount = num('channels', 3, 10000);
const reconnectRate = num('reconnects', 0, 5000);
const moveRate = num('moves', 0, 10000);
const rate = num('rate', 0, 5000);
const recoverShare = num('recover', 0, 1);
const nodeCount = num('nodes', 1, 4, networked ? '2' : '1');
const basePort = num('port', 1024, 65530);
const sampleSeconds = num('sample', 1, 600);
if (!networked && nodeCount > 1) {
  console.error('--nodes above 1 needs a networked backbone (the memory backbone is one process)');
  process.exit(2);
}
// Offsets that rise by exactly one make a skipped offset visible; Kafka and JetStream skip.
const contiguous = backbone === 'memory' || backbone.startsWith('redis');
// `none` runs without a namespace, for a build that predates the flag.
const namespace = v['backbone-namespace'] ?? `churn-${randomBytes(4).toString('hex')}`;
const API_KEY = 'churn-soak-api-key-0123';
const SUBS_PER_CLIENT = 2;
const SEEN_WINDOW = 256;

// ---- gateways ----

const gateways = [];
let stopping = false;
for (let i = 0; i < nodeCount; i++) {
  const port = basePort + i;
  const args = [v.cli, 'start', '--host', '127.0.0.1', '--port', String(port), '--node-id', `churn-${i}`, '--api-key', API_KEY];
  args.push('--backbone', backbone, '--rebalance-per-round', '0', '--connect-rate', '100000', '--connect-rate-per-address', '100000');
  // The machine is shared: event-loop lag from other work must not turn into refused connects here.
  args.push('--admission-lag-ms', '600000');
  if (networked && namespace !== 'none') args.push('--backbone-namespace', namespace);
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
  });
  const g = { i, port, base: `http://127.0.0.1:${port}`, child, stderr: [] };
  // Keep the last lines only: a gateway that warns on every subscribe must not grow this process.
  createInterface({ input: child.stderr }).on('line', (line) => {
    g.stderr.push(line);
    if (g.stderr.length > 20) g.stderr.shift();
  });
  child.on('exit', (code) => {
    if (stopping) return;
    console.error(`gateway ${i} exited with ${code} during the soak:\n${g.stderr.join('\n')}`);
    process.exit(1);
  });
  gateways.push(g);
}
for (const g of gateways) {
  const deadline = Date.now() + 60_000;
  while (
    !(await fetch(`${g.base}/readyz`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > deadline) throw new Error(`gateway ${g.i} not ready within 60 s:\n${g.stderr.join('\n')}`);
    await sleep(100);
  }
}

// ---- accounting ----

const counts = {
  connects: 0,
  reconnects: 0,
  moves: 0,
  subscribes: 0,
  subscribesWithSince: 0,
  recovered: 0,
  notRecovered: 0,
  subscribed: 0,
  published: 0,
  publishErrors: 0,
  delivered: 0,
  duplicates: 0,
  duplicatesAtReply: 0,
  outOfOrder: 0,
  stray: 0,
  beforeReply: 0,
  silentGaps: 0,
  silentGapsInReplay: 0,
  missingOffsets: 0,
  epochChanges: 0,
  socketErrors: 0,
};
const gapsByReason = {};
const closesByCode = {};
const errorsByCode = {};
const violations = [];
const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);

/** Records a broken guarantee; the first few keep their details for the summary. */
function violation(kind, c, channel, detail) {
  counts[kind]++;
  if (violations.length < 20) violations.push({ kind, client: c.id, node: c.node, channel, ...detail });
}

/** The last `n` values added, for asking whether one was already seen. */
class Window {
  constructor(n) {
    this.n = n;
    this.set = new Set();
    this.ring = [];
  }
  has(x) {
    return this.set.has(x);
  }
  add(x) {
    this.set.add(x);
    this.ring.push(x);
    if (this.ring.length > this.n) this.set.delete(this.ring.shift());
  }
}

// ---- clients ----

const channelName = (n) => `public:churn-${n}`;
const clients = [];

/** A logical client; `positions` and `seen` outlive its connections. */
function makeClient(id) {
  return { id, node: id % nodeCount, conn: undefined, want: new Set(), positions: new Map(), seen: new Map(), closingByUs: false };
}

function open(c) {
  const g = gateways[c.node];
  const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws`);
  const conn = { ws, open: false, nextId: 1, pending: new Map(), subs: new Map() };
  c.conn = conn;
  ws.on('open', () => {
    conn.open = true;
    counts.connects++;
    ws.send(JSON.stringify({ op: 'connect', id: conn.nextId++, v: 1 }));
    for (const channel of c.want) subscribe(c, channel, Math.random() < recoverShare);
  });
  ws.on('message', (raw) => onFrame(c, conn, raw.toString()));
  ws.on('error', () => counts.socketErrors++);
  ws.on('close', (code) => {
    conn.open = false;
    if (stopping) return;
    if (c.closingByUs) {
      // Every frame of the old connection has been read: its positions are final, reconnect now.
      c.closingByUs = false;
      open(c);
      return;
    }
    bump(closesByCode, String(code));
    setTimeout(() => !stopping && open(c), 250 + Math.random() * 750);
  });
}

/** Subscribes `channel`, with `since` at the client's last position there when `recover` is set. */
function subscribe(c, channel, recover) {
  const conn = c.conn;
  const id = conn.nextId++;
  const pos = c.positions.get(channel);
  const since = recover && pos && pos.epoch !== '' ? pos : undefined;
  conn.subs.set(channel, {
    state: 'pending',
    since,
    replyEpoch: '',
    replyOffset: 0,
    recovered: false,
    last: undefined,
    replayEnd: 0,
    gapNoticed: false,
  });
  conn.pending.set(id, { op: 'subscribe', channel });
  counts.subscribes++;
  if (since) counts.subscribesWithSince++;
  conn.ws.send(JSON.stringify(since ? { op: 'subscribe', id, channel, since } : { op: 'subscribe', id, channel }));
}

function onFrame(c, conn, text) {
  if (text.startsWith('{"op":"ping"')) {
    conn.ws.send('{"op":"pong"}');
    return;
  }
  const f = JSON.parse(text);
  switch (f.op) {
    case 'pub':
      return onPub(c, conn, f);
    case 'subscribed': {
      conn.pending.delete(f.id);
      const sub = conn.subs.get(f.channel);
      if (!sub || sub.state !== 'pending') return violation('stray', c, f.channel, { reply: f });
      counts.subscribed++;
      sub.state = 'active';
      sub.replyEpoch = f.epoch;
      sub.replyOffset = f.offset;
      if (f.recovered === true) {
        counts.recovered++;
        sub.recovered = true;
        sub.last = sub.since;
        sub.replayEnd = f.offset;
      } else {
        if (sub.since) counts.notRecovered++;
        // Nothing replayed: the reply's position is where this client now stands.
        sub.last = { epoch: f.epoch, offset: f.offset };
        if (f.epoch !== '') c.positions.set(f.channel, sub.last);
      }
      return;
    }
    case 'ok': {
      const p = conn.pending.get(f.id);
      conn.pending.delete(f.id);
      if (p?.op === 'unsubscribe') conn.subs.delete(p.channel);
      return;
    }
    case 'error': {
      bump(errorsByCode, f.code);
      const p = conn.pending.get(f.id);
      conn.pending.delete(f.id);
      if (p?.op === 'subscribe') {
        conn.subs.delete(p.channel);
        c.want.delete(p.channel);
      }
      return;
    }
    case 'gap': {
      bump(gapsByReason, f.reason);
      const sub = conn.subs.get(f.channel);
      if (sub) sub.gapNoticed = true;
      return;
    }
  }
}

function onPub(c, conn, f) {
  const sub = conn.subs.get(f.channel);
  if (!sub) return violation('stray', c, f.channel, { offset: f.offset });
  if (sub.state === 'pending') return violation('beforeReply', c, f.channel, { offset: f.offset });
  // Publications between an unsubscribe and its `ok` are still read and counted, as any client
  // would: a later subscribe with `since` starts from them.
  let seen = c.seen.get(f.channel);
  if (!seen) c.seen.set(f.channel, (seen = new Window(SEEN_WINDOW)));
  const detail = {
    offset: f.offset,
    epoch: f.epoch,
    s: f.data?.s,
    reply: sub.replyOffset,
    since: sub.since?.offset,
    last: sub.last?.offset,
    recovered: sub.recovered,
  };
  if (seen.has(f.data?.s)) return violation('duplicates', c, f.channel, detail);
  seen.add(f.data?.s);
  counts.delivered++;
  if (f.epoch === '') return; // unsequenced (NATS core): nothing more to check by position
  const last = sub.last;
  if (!last || f.epoch !== last.epoch) {
    if (last && last.epoch !== '') counts.epochChanges++;
  } else if (!sub.recovered && f.epoch === sub.replyEpoch && f.offset <= sub.replyOffset) {
    if (f.offset === sub.replyOffset) counts.duplicatesAtReply++;
    return violation('duplicates', c, f.channel, detail);
  } else if (f.offset === last.offset) {
    return violation('duplicates', c, f.channel, detail);
  } else if (f.offset < last.offset) {
    return violation('outOfOrder', c, f.channel, detail);
  } else if (contiguous && f.offset !== last.offset + 1 && !sub.gapNoticed) {
    counts.missingOffsets += f.offset - last.offset - 1;
    if (sub.recovered && last.offset < sub.replayEnd) counts.silentGapsInReplay++;
    violation('silentGaps', c, f.channel, detail);
  }
  sub.gapNoticed = false;
  sub.last = { epoch: f.epoch, offset: f.offset };
  c.positions.set(f.channel, sub.last);
}

/** Unsubscribes one held channel (when it holds its share) and subscribes one it does not hold. */
function move(c) {
  const conn = c.conn;
  if (!conn?.open) return false;
  if (c.want.size >= SUBS_PER_CLIENT) {
    const active = [...c.want].filter((ch) => conn.subs.get(ch)?.state === 'active');
    if (active.length === 0) return false;
    const leave = active[Math.floor(Math.random() * active.length)];
    const id = conn.nextId++;
    conn.subs.get(leave).state = 'leaving';
    conn.pending.set(id, { op: 'unsubscribe', channel: leave });
    c.want.delete(leave);
    conn.ws.send(JSON.stringify({ op: 'unsubscribe', id, channel: leave }));
  }
  // Half the moves return to a channel seen before and recover from where the client left it
  // (or learn it cannot: history is 100 per channel). A channel still leaving is not taken again
  // until its `ok`, so replies never cross.
  const recover = Math.random() < recoverShare;
  const known = recover ? [...c.positions.keys()] : [];
  for (let tries = 0; tries < 10; tries++) {
    const channel =
      known.length > 0 ? known[Math.floor(Math.random() * known.length)] : channelName(Math.floor(Math.random() * channelCount));
    if (c.want.has(channel) || conn.subs.has(channel)) continue;
    c.want.add(channel);
    subscribe(c, channel, recover);
    counts.moves++;
    return true;
  }
  return false;
}

function reconnect(c) {
  if (!c.conn?.open || c.closingByUs) return false;
  c.closingByUs = true;
  // Behind a balancer a reconnect may land on any node.
  c.node = Math.floor(Math.random() * nodeCount);
  counts.reconnects++;
  c.conn.ws.close(1000);
  return true;
}

// ---- publishing ----

let inflight = 0;
let sequence = 0;
let publishTurn = 0;
const pad = 'x'.repeat(160);
function publish() {
  if (inflight >= 1000) {
    counts.publishErrors++;
    return;
  }
  const g = gateways[publishTurn++ % gateways.length];
  const body = JSON.stringify({ channel: channelName(Math.floor(Math.random() * channelCount)), data: { s: ++sequence, pad } });
  inflight++;
  fetch(`${g.base}/api/publish`, {
    method: 'POST',
    headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
    body,
  })
    .then(
      async (r) => {
        await r.arrayBuffer();
        if (r.ok) counts.published++;
        else counts.publishErrors++;
      },
      () => counts.publishErrors++,
    )
    .finally(() => inflight--);
}

/** A node's resident memory, used heap and memory outside the heap (Buffers), in MiB, from its /metrics. */
async function memory(g) {
  const text = await fetch(`${g.base}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
  const read = (name) => Math.round(Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm'))?.[1] ?? NaN) / 2 ** 20);
  return {
    rss: read('process_resident_memory_bytes'),
    heap: read('nodejs_heap_size_used_bytes'),
    external: read('nodejs_external_memory_bytes'),
  };
}

// ---- the run ----

for (let i = 0; i < connections; i++) {
  const c = makeClient(i);
  while (c.want.size < SUBS_PER_CLIENT) c.want.add(channelName(Math.floor(Math.random() * channelCount)));
  clients.push(c);
  open(c);
  if (i % 200 === 199) await sleep(100);
}

const started = Date.now();
const endAt = started + minutes * 60_000;
const done = { reconnects: 0, moves: 0, publishes: 0 };
let nextSample = started + sampleSeconds * 1000;
const pick = () => clients[Math.floor(Math.random() * clients.length)];
/** Runs `act` until `target` actions are done; a stalled tick catches up at most one second's worth. */
const catchUp = (key, target, perSecond, act) => {
  let budget = Math.min(target - done[key], Math.max(1, perSecond));
  for (let tries = 0; budget > 0 && tries < budget * 4; tries++) {
    if (act()) {
      done[key]++;
      budget--;
    }
  }
};
while (Date.now() < endAt) {
  const elapsed = (Date.now() - started) / 1000;
  catchUp('reconnects', Math.floor(elapsed * reconnectRate), reconnectRate, () => reconnect(pick()));
  catchUp('moves', Math.floor(elapsed * moveRate), moveRate, () => move(pick()));
  catchUp('publishes', Math.floor(elapsed * rate), rate, () => (publish(), true));
  if (Date.now() >= nextSample) {
    nextSample += sampleSeconds * 1000;
    const mem = await Promise.all(gateways.map(memory));
    const openNow = clients.filter((c) => c.conn?.open).length;
    const rssMiB = mem.map((m) => m.rss);
    const heapMiB = mem.map((m) => m.heap);
    const externalMiB = mem.map((m) => m.external);
    console.log(JSON.stringify({ t: Math.round((Date.now() - started) / 1000), open: openNow, rssMiB, heapMiB, externalMiB, ...counts }));
  }
  await sleep(20);
}

// Let the publications in flight land before the sockets go.
const settle = Date.now() + 10_000;
while (inflight > 0 && Date.now() < settle) await sleep(50);
stopping = true;
for (const c of clients) c.conn?.ws.terminate();
const memoryMiB = await Promise.all(gateways.map(memory));
for (const g of gateways) g.child.kill('SIGTERM');

const broken = counts.duplicates + counts.outOfOrder + counts.stray + counts.beforeReply + counts.silentGaps;
const summary = {
  backbone,
  namespace: networked ? namespace : undefined,
  nodes: nodeCount,
  minutes,
  params: {
    connections,
    channels: channelCount,
    reconnectsPerSecond: reconnectRate,
    movesPerSecond: moveRate,
    publicationsPerSecond: rate,
    recoverShare,
  },
  contiguousChecked: contiguous,
  counts,
  gapsByReason,
  closesByCode,
  errorsByCode,
  memoryMiB,
  violations,
  ok: broken === 0,
};
console.log(JSON.stringify({ summary }));
process.exit(broken === 0 ? 0 : 1);
