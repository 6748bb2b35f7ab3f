#!/usr/bin/env node
// A soak of one gateway: connect/disconnect churn, subscribe/unsubscribe churn, steady publishing
// and a few slow consumers, for a bounded time, against a gateway this script starts on loopback.
// It samples the gateway's resident memory and heap from /metrics and prints one JSON line per
// sample and a summary: whether heap and RSS stayed flat (the last window's minimum against the
// first window's after warm-up).
//
//   node scripts/soak.mjs [--minutes 30] [--connections 1000] [--channels 50] [--rate 100]
//                         [--churn 20] [--moves 50] [--slow 5] [--backbone memory] [--sample 15]
//
// Needs a build (npm run build). Stops by itself; every socket targets 127.0.0.1.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const { values: v } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    connections: { type: 'string', default: '1000' },
    channels: { type: 'string', default: '50' },
    rate: { type: 'string', default: '100' },
    churn: { type: 'string', default: '20' },
    moves: { type: 'string', default: '50' },
    slow: { type: 'string', default: '5' },
    backbone: { type: 'string', default: 'memory' },
    sample: { type: 'string', default: '15' },
    port: { type: 'string', default: '18480' },
  },
});
const num = (k, min, max) => {
  const n = Number(v[k]);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`--${k} must be a number from ${min} to ${max}, got ${v[k]}`);
    process.exit(2);
  }
  return n;
};
const minutes = num('minutes', 0.1, 240);
const connections = num('connections', 1, 15000);
const channels = num('channels', 1, 10000);
const rate = num('rate', 0, 10000);
const churn = num('churn', 0, 1000);
const moves = num('moves', 0, 10000);
const slowCount = num('slow', 0, 100);
const sampleSeconds = num('sample', 1, 600);
const port = num('port', 1024, 65535);
const API_KEY = 'soak-api-key-0123';

const bin = fileURLToPath(new URL('../packages/cli/bin/gatehouse.js', import.meta.url));
const gateway = spawn(
  process.execPath,
  [
    bin,
    'start',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--api-key',
    API_KEY,
    '--backbone',
    v.backbone,
    '--connect-rate',
    '5000',
    '--connect-rate-per-address',
    '5000',
    '--max-queue-bytes',
    '262144',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' } },
);
let stopping = false;
gateway.on('exit', (code) => {
  if (!stopping) {
    console.error(`gateway exited with ${code} during the soak`);
    process.exit(1);
  }
});
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  if (i > 100) throw new Error('gateway did not become ready');
  const ok = await fetch(`${base}/readyz`).then(
    (r) => r.ok,
    () => false,
  );
  if (ok) break;
  await sleep(100);
}

const channel = (i) => `public:soak-${i}`;
const counts = { connects: 0, closes: 0, moves: 0, published: 0, publishErrors: 0, received: 0, errors: 0 };

/**
 * One client: subscribes to two channels. A slow one subscribes to every channel (up to 100) and
 * stops reading a second later: the gateway cuts it (queue full, or heartbeats unanswered). A
 * paused socket never sees that close, so the soak replaces each slow client after SLOW_LIFE_MS.
 */
const SLOW_LIFE_MS = 70_000;
function client(slow = false) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const c = { ws, subs: new Set(), nextId: 1, open: false, born: Date.now() };
  ws.on('open', () => {
    c.open = true;
    counts.connects++;
    ws.send(JSON.stringify({ op: 'connect', id: c.nextId++, v: 1 }));
    if (slow) for (let k = 0; k < Math.min(channels, 100); k++) subscribe(c, k);
    else for (let k = 0; k < 2; k++) subscribe(c, Math.floor(Math.random() * channels));
    if (slow) setTimeout(() => ws.pause(), 1000);
  });
  ws.on('message', (data) => {
    const s = data.toString();
    if (s.startsWith('{"op":"ping"')) ws.send('{"op":"pong"}');
    else if (s.startsWith('{"op":"pub"')) counts.received++;
  });
  ws.on('close', () => {
    c.open = false;
    counts.closes++;
  });
  ws.on('error', () => counts.errors++);
  return c;
}

function subscribe(c, n) {
  if (c.subs.has(n)) return;
  c.subs.add(n);
  c.ws.send(JSON.stringify({ op: 'subscribe', id: c.nextId++, channel: channel(n) }));
}

function move(c) {
  if (!c.open || c.subs.size === 0) return;
  const [first] = c.subs;
  c.subs.delete(first);
  c.ws.send(JSON.stringify({ op: 'unsubscribe', id: c.nextId++, channel: channel(first) }));
  subscribe(c, Math.floor(Math.random() * channels));
  counts.moves++;
}

let pool = [];
let slow = [];
for (let i = 0; i < connections; i++) {
  pool.push(client());
  if (i % 200 === 199) await sleep(100);
}
for (let i = 0; i < slowCount; i++) slow.push(client(true));

async function metrics() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (name) => Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm'))?.[1] ?? NaN);
  return {
    rss: read('process_resident_memory_bytes'),
    heap: read('nodejs_heap_size_used_bytes'),
    connections: read('gatehouse_connections'),
    slowConsumerCuts: read('gatehouse_slow_consumer_disconnects_total'),
    heartbeatCuts: read('gatehouse_disconnects_total\\{code="4301"[^}]*\\}'),
  };
}

const payload = JSON.stringify({ text: 'x'.repeat(200) });
const big = JSON.stringify({ blob: 'y'.repeat(4000) });
const started = Date.now();
const endAt = started + minutes * 60_000;
const samples = [];
let nextSample = started;
while (Date.now() < endAt) {
  const t0 = Date.now();
  // Publishing, spread over the second in ten slices.
  for (let slice = 0; slice < 10; slice++) {
    const n = Math.round(rate / 10);
    const batch = [];
    for (let i = 0; i < n; i++) {
      const body = JSON.stringify({
        channel: channel(Math.floor(Math.random() * channels)),
        data: JSON.parse(i % 10 === 0 ? big : payload),
      });
      batch.push(
        fetch(`${base}/api/publish`, {
          method: 'POST',
          headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
          body,
        }).then(
          (r) => (r.ok ? counts.published++ : counts.publishErrors++),
          () => counts.publishErrors++,
        ),
      );
    }
    await Promise.all(batch);
    await sleep(Math.max(0, t0 + (slice + 1) * 100 - Date.now()));
  }
  // Connect/disconnect churn: close some, open as many.
  for (let i = 0; i < churn && pool.length > 0; i++) {
    const j = Math.floor(Math.random() * pool.length);
    if (!pool[j].open) continue;
    pool[j].ws.close();
    pool[j] = client();
  }
  // Subscription moves.
  for (let i = 0; i < moves; i++) move(pool[Math.floor(Math.random() * pool.length)]);
  // Slow consumers come back after their life (and stop reading again).
  slow = slow.map((c) => {
    if (Date.now() - c.born < SLOW_LIFE_MS) return c;
    c.ws.terminate();
    return client(true);
  });
  pool = pool.map((c) => (c.open || c.ws.readyState === WebSocket.CONNECTING ? c : client()));
  if (Date.now() >= nextSample) {
    nextSample += sampleSeconds * 1000;
    const m = await metrics();
    const s = { t: Math.round((Date.now() - started) / 1000), ...m, ...counts };
    samples.push(s);
    console.log(JSON.stringify(s));
  }
}

stopping = true;
for (const c of [...pool, ...slow]) c.ws.terminate();
gateway.kill('SIGTERM');

// Flatness: minimum heap and RSS in the first and the last fifth of the run, after a warm-up fifth.
const fifth = Math.max(1, Math.floor(samples.length / 5));
const first = samples.slice(fifth, 2 * fifth);
const last = samples.slice(-fifth);
const min = (xs, k) => Math.min(...xs.map((s) => s[k]));
const summary = {
  minutes,
  params: { connections, channels, rate, churn, moves, slow: slowCount, backbone: v.backbone },
  counts,
  slowConsumerCuts: samples[samples.length - 1]?.slowConsumerCuts,
  heartbeatCuts: samples[samples.length - 1]?.heartbeatCuts,
  heapMiB: { early: +(min(first, 'heap') / 2 ** 20).toFixed(1), late: +(min(last, 'heap') / 2 ** 20).toFixed(1) },
  rssMiB: { early: +(min(first, 'rss') / 2 ** 20).toFixed(1), late: +(min(last, 'rss') / 2 ** 20).toFixed(1) },
};
summary.heapGrowth = +(summary.heapMiB.late / summary.heapMiB.early).toFixed(3);
summary.rssGrowth = +(summary.rssMiB.late / summary.rssMiB.early).toFixed(3);
console.log(JSON.stringify({ summary }));
process.exit(0);
