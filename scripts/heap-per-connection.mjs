#!/usr/bin/env node
// Where an idle connection's memory goes: starts a gateway in this process (memory backbone, the
// anonymous "public" namespace), opens --connections WebSocket connections from a child process
// (each connected and subscribed to one channel), and prints, per connection: the V8 heap spaces'
// growth (committed and used; the young generation's growth is a per-process cost divided by the
// connections) and, from two heap snapshots (none and all connections open, after full GCs), the
// self sizes that grew, summed by object kind and constructor. The method behind the breakdown in
// docs/benchmarks.md ("Where the remaining distance to native lies").
//
//   node --expose-gc scripts/heap-per-connection.mjs [--connections 3000] [--top 30] [--keep <dir>]
//
// Loopback only; stops by itself. Needs a build (npx tsc -b). --keep writes the two snapshots there
// (open them in Chrome DevTools, Memory tab, "Comparison" view, for retainers).
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';

const CHANNEL = 'public:heap-probe';

if (process.argv[2] === '--clients') {
  // The child: opens the connections, reports ready, closes them when told.
  const { default: WebSocket } = await import('ws');
  const [url, n] = [process.argv[3], Number(process.argv[4])];
  const sockets = [];
  const open = () =>
    new Promise((resolve) => {
      const ws = new WebSocket(url);
      sockets.push(ws);
      ws.on('open', () => {
        ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
        ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: CHANNEL }));
      });
      ws.on('message', (d) => {
        const op = JSON.parse(String(d)).op;
        if (op === 'subscribed' || op === 'error') resolve();
      });
      ws.on('error', () => resolve());
    });
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, open));
  process.send?.('ready');
  process.on('message', () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  });
} else {
  await main();
}

async function main() {
  const { values } = parseArgs({
    options: { connections: { type: 'string', default: '3000' }, top: { type: 'string', default: '30' }, keep: { type: 'string' } },
  });
  const n = Number(values.connections);
  const top = Number(values.top);
  if (!(n >= 1 && n <= 15_000) || !(top >= 1)) throw new Error('--connections must be 1 to 15,000 and --top at least 1');
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  const { Gateway } = await import('@gatehouse/server');
  const gateway = new Gateway({
    host: '127.0.0.1',
    port: 0,
    apiKeys: [{ key: 'heap-probe-key' }],
    connectRate: 1_000_000,
    connectRatePerAddress: 1_000_000,
  });
  const { port } = await gateway.start();
  const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'heap-probe-'));
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      globalThis.gc();
      await sleep(200);
    }
  };
  try {
    await settle();
    const spaces0 = v8.getHeapSpaceStatistics();
    const rss0 = process.memoryUsage.rss();
    const before = v8.writeHeapSnapshot(join(dir, 'none.heapsnapshot'));
    const child = fork(new URL(import.meta.url), ['--clients', `ws://127.0.0.1:${port}/ws`, String(n)], { stdio: 'inherit' });
    await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the client process exited (${code})`)));
    });
    await sleep(1000);
    await settle();
    const spaces1 = v8.getHeapSpaceStatistics();
    const rss1 = process.memoryUsage.rss();
    const after = v8.writeHeapSnapshot(join(dir, 'all.heapsnapshot'));
    child.removeAllListeners('exit');
    child.send('stop');
    console.log(`${n} idle connections, per connection (Node ${process.version})`);
    console.log(`resident (with the snapshots' own growth, so only indicative): ${Math.round((rss1 - rss0) / n)} B`);
    console.log('V8 heap spaces, committed / used:');
    for (let i = 0; i < spaces1.length; i++) {
      const c = (spaces1[i].space_size - spaces0[i].space_size) / n;
      const u = (spaces1[i].space_used_size - spaces0[i].space_used_size) / n;
      if (Math.abs(c) >= 1 || Math.abs(u) >= 1) console.log(`  ${spaces1[i].space_name.padEnd(24)} ${Math.round(c)} / ${Math.round(u)} B`);
    }
    const grown = diff(tally(before), tally(after));
    console.log(`heap objects that grew (self size): ${Math.round(grown.reduce((a, [, b]) => a + b, 0) / n)} B in all`);
    for (const [key, bytes, count] of grown.slice(0, top)) {
      console.log(`  ${(bytes / n).toFixed(1).padStart(8)} B  ${(count / n).toFixed(2).padStart(6)} per connection  ${key}`);
    }
  } finally {
    await gateway.close();
    if (values.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

/** Self size and count per "type name" in a heap snapshot file. */
function tally(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const meta = snap.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += fields.length) {
    const type = types[nodes[i + ti]];
    const name = type.includes('string') ? '' : type === 'code' ? '' : String(snap.strings[nodes[i + ni]]).slice(0, 50);
    const key = `${type} ${name}`.trim();
    const cur = out.get(key) ?? [0, 0];
    cur[0] += nodes[i + si];
    cur[1] += 1;
    out.set(key, cur);
  }
  return out;
}

/** What grew from `a` to `b`, largest first: [key, bytes, count]. */
function diff(a, b) {
  const rows = [];
  for (const [key, [bytes, count]] of b) {
    const [b0, c0] = a.get(key) ?? [0, 0];
    if (bytes - b0 > 0) rows.push([key, bytes - b0, count - c0]);
  }
  return rows.sort((x, y) => y[1] - x[1]);
}
