#!/usr/bin/env node
// A recovery storm: N clients recover a long history at the same moment, as after a deploy. For
// each gateway build given, this starts a gateway on loopback with a namespace that keeps the
// whole history, publishes it over the HTTP API, then opens N plain `ws` connections at once, each
// subscribing with `since` at the start of that history. It measures the gateway's resident memory
// growth (the peak of /metrics `process_resident_memory_bytes`, sampled every 100 ms, minus the
// level before the storm; the kernel's high-water mark VmHWM beside it, which no sample can miss)
// and the time until every client received the whole history, with the outcomes: `recovered`
// true/false, subscribe errors, closes by code.
//
//   node scripts/recovery-storm.mjs [--build after=packages/cli/bin/gatehouse.js] [--build before=…]
//        [--clients 50,100,200] [--rounds 2] [--publications 2000] [--size 200] [--port 18741]
//        [--deadline 180] [--backbone memory]
//
// Builds alternate inside each round (before, after, before, after…), one fresh gateway process
// per measurement. Prints one JSON line per measurement and a summary by build and N. Exits 1 when
// a gateway could not start or a measurement broke order (a client saw offsets out of sequence).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const { values: v } = parseArgs({
  options: {
    build: { type: 'string', multiple: true },
    clients: { type: 'string', default: '50,100,200' },
    rounds: { type: 'string', default: '2' },
    publications: { type: 'string', default: '2000' },
    size: { type: 'string', default: '200' },
    port: { type: 'string', default: '18741' },
    deadline: { type: 'string', default: '180' },
    backbone: { type: 'string', default: 'memory' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log('usage: node scripts/recovery-storm.mjs [--build name=path/to/gatehouse.js]... [--clients 50,100,200] [--rounds 2]');
  console.log('       [--publications 2000] [--size 200] [--port 18741] [--deadline 180] [--backbone memory]');
  process.exit(0);
}
const fail = (msg) => {
  console.error(msg);
  process.exit(2);
};
const num = (k, min, max) => {
  const n = Number(v[k]);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${k} must be an integer from ${min} to ${max}, got ${v[k]}`);
  return n;
};
const rounds = num('rounds', 1, 20);
const publications = num('publications', 1, 100_000);
const size = num('size', 1, 60_000);
const port = num('port', 1024, 65535);
const deadlineMs = num('deadline', 5, 3600) * 1000;
const sizes = v.clients.split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 5000) fail(`--clients takes integers from 1 to 5000, got ${s}`);
  return n;
});
const builds = (v.build ?? [`after=${fileURLToPath(new URL('../packages/cli/bin/gatehouse.js', import.meta.url))}`]).map((b) => {
  const eq = b.indexOf('=');
  if (eq < 1) fail(`--build takes name=path/to/gatehouse.js, got ${b}`);
  return { name: b.slice(0, eq), cli: b.slice(eq + 1) };
});

const API_KEY = 'storm-api-key-0123';
const CHANNEL = 'storm:history';
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-storm-'));
const config = join(dir, 'gatehouse.json');
// One namespace that keeps the whole history for as long as the run lasts.
writeFileSync(config, JSON.stringify({ namespaces: { storm: { historySize: publications, historyTtlSeconds: 3600, anonymous: true } } }));
const MiB = 2 ** 20;

function startGateway(build) {
  const args = [
    build.cli,
    'start',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--config',
    config,
    '--api-key',
    API_KEY,
    '--backbone',
    v.backbone,
  ];
  // Every client connects in the same instant; the machine is shared, so lag from other work must
  // not refuse them either. Queue and replay admission stay at their defaults: they are measured.
  args.push(
    '--connect-rate',
    '100000',
    '--connect-rate-per-address',
    '100000',
    '--admission-lag-ms',
    '600000',
    '--rebalance-per-round',
    '0',
  );
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
  });
  const stderr = [];
  child.stderr.on('data', (d) => {
    stderr.push(d.toString());
    if (stderr.length > 50) stderr.shift();
  });
  return { child, stderr, exited: new Promise((resolve) => child.on('exit', resolve)) };
}

const base = `http://127.0.0.1:${port}`;
async function rssFromMetrics() {
  const text = await fetch(`${base}/metrics`).then((r) => r.text());
  return Number(text.match(/^process_resident_memory_bytes(?:\{[^}]*\})? ([0-9.e+]+)$/m)?.[1] ?? NaN);
}
/** The kernel's view of the process: current RSS and its high-water mark, in bytes. */
function procStatus(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(text.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function publishHistory() {
  const pad = 'p'.repeat(Math.max(0, size - 20));
  let first;
  let next = 0;
  // A few requests in flight; offsets come from the gateway, so arrival order does not matter.
  const worker = async () => {
    while (next < publications) {
      const n = next++;
      const r = await fetch(`${base}/api/publish`, {
        method: 'POST',
        headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ channel: CHANNEL, data: { n, pad } }),
      });
      const body = await r.json();
      if (!r.ok) throw new Error(`publish ${n} failed: ${r.status} ${JSON.stringify(body)}`);
      if (!first || body.offset < first.offset) first = { epoch: body.epoch, offset: body.offset };
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return first;
}

/** N clients at once, each recovering from just before `first`; resolves when all are settled. */
function storm(n, first) {
  const since = { epoch: first.epoch, offset: first.offset - 1 };
  const last = first.offset + publications - 1;
  const t0 = performance.now();
  const out = { recoveredTrue: 0, recoveredFalse: 0, complete: 0, outOfOrder: 0, closes: {}, errors: {}, doneMs: [] };
  let settled = 0;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ...out, timedOut: n - settled }), deadlineMs);
    const settle = () => {
      if (++settled === n) {
        clearTimeout(timer);
        resolve({ ...out, timedOut: 0 });
      }
    };
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      let expect = first.offset;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        settle();
      };
      ws.on('open', () => {
        ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
        ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: CHANNEL, since }));
      });
      ws.on('message', (raw) => {
        const s = raw.toString();
        if (s.startsWith('{"op":"ping"')) return ws.send('{"op":"pong"}');
        if (s.startsWith('{"op":"pub"')) {
          // Only the offset is needed; parsing 2,000 x N frames whole would take CPU from the gateway.
          const at = s.indexOf('"offset":') + 9;
          const offset = parseInt(s.slice(at, s.indexOf(',', at)), 10);
          if (offset !== expect) out.outOfOrder++;
          expect = offset + 1;
          if (offset === last && !done) {
            out.complete++;
            out.doneMs.push(performance.now() - t0);
            ws.close(1000);
            finish();
          }
          return;
        }
        const f = JSON.parse(s);
        if (f.op === 'subscribed') {
          if (f.recovered === true) out.recoveredTrue++;
          else {
            out.recoveredFalse++;
            ws.close(1000);
            finish();
          }
        } else if (f.op === 'error') {
          out.errors[f.code] = (out.errors[f.code] ?? 0) + 1;
          ws.close(1000);
          finish();
        }
      });
      ws.on('error', () => {});
      ws.on('close', (code) => {
        if (!done) out.closes[code] = (out.closes[code] ?? 0) + 1;
        finish();
      });
    }
  });
}

async function measure(build, round, n) {
  const gw = startGateway(build);
  try {
    const ready = Date.now() + 60_000;
    while (
      !(await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (Date.now() > ready) throw new Error(`gateway ${build.name} not ready:\n${gw.stderr.join('')}`);
      await sleep(100);
    }
    const first = await publishHistory();
    // The level before the storm: the mean of five scrapes over half a second.
    const before = [];
    for (let i = 0; i < 5; i++) {
      before.push(await rssFromMetrics());
      await sleep(100);
    }
    const rssBefore = before.reduce((a, b) => a + b, 0) / before.length;
    const statusBefore = procStatus(gw.child.pid);
    let peak = rssBefore;
    let samples = 0;
    let worstGapMs = 0;
    let sampling = true;
    // One scrape at a time, every 100 ms: a busy gateway answers late, and the gaps are reported.
    const sampler = (async () => {
      let prev = performance.now();
      while (sampling) {
        const rss = await rssFromMetrics().catch(() => NaN);
        const now = performance.now();
        worstGapMs = Math.max(worstGapMs, now - prev);
        prev = now;
        if (Number.isFinite(rss)) {
          samples++;
          peak = Math.max(peak, rss);
        }
        await sleep(Math.max(0, 100 - (performance.now() - now)));
      }
    })();
    const result = await storm(n, first);
    sampling = false;
    await sampler;
    const statusAfter = procStatus(gw.child.pid);
    const sorted = result.doneMs.sort((a, b) => a - b);
    const line = {
      build: build.name,
      round,
      clients: n,
      rssBeforeMiB: +(rssBefore / MiB).toFixed(1),
      rssPeakMiB: +(peak / MiB).toFixed(1),
      growthMiB: +((peak - rssBefore) / MiB).toFixed(1),
      hwmBeforeMiB: +(statusBefore.hwm / MiB).toFixed(1),
      hwmAfterMiB: +(statusAfter.hwm / MiB).toFixed(1),
      // A busy gateway answers few scrapes in a storm of a second or two; the high-water mark
      // misses nothing (when the storm set it: above the mark before).
      hwmGrowthMiB: statusAfter.hwm > statusBefore.hwm ? +((statusAfter.hwm - rssBefore) / MiB).toFixed(1) : null,
      allReceivedMs: result.complete === n ? Math.round(sorted[sorted.length - 1]) : null,
      p50ReceivedMs: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]) : null,
      complete: result.complete,
      recovered: { true: result.recoveredTrue, false: result.recoveredFalse },
      errors: result.errors,
      closes: result.closes,
      timedOut: result.timedOut,
      outOfOrder: result.outOfOrder,
      samples,
      worstSampleGapMs: Math.round(worstGapMs),
      load1: +loadavg()[0].toFixed(2),
    };
    console.log(JSON.stringify(line));
    return line;
  } finally {
    gw.child.kill('SIGTERM');
    const killer = setTimeout(() => gw.child.kill('SIGKILL'), 45_000);
    await gw.exited;
    clearTimeout(killer);
  }
}

const lines = [];
try {
  for (let round = 1; round <= rounds; round++) {
    for (const n of sizes) {
      // Alternate which build goes first, so neither always runs on the machine the other warmed.
      const order = round % 2 === 1 ? builds : [...builds].reverse();
      for (const build of order) lines.push(await measure(build, round, n));
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const summary = {};
for (const b of builds) {
  summary[b.name] = {};
  for (const n of sizes) {
    const mine = lines.filter((l) => l.build === b.name && l.clients === n);
    summary[b.name][n] = {
      growthMiB: mine.map((l) => l.growthMiB),
      hwmGrowthMiB: mine.map((l) => l.hwmGrowthMiB),
      allReceivedMs: mine.map((l) => l.allReceivedMs),
      complete: mine.map((l) => l.complete),
    };
  }
}
console.log(JSON.stringify({ summary, publications, size, node: process.version }));
process.exit(lines.some((l) => l.outOfOrder > 0) ? 1 : 0);
