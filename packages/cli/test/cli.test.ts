import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { WebSocket } from 'ws';
import { parseRetryHint } from '@gatehouse/protocol';
import { waitFor } from '@gatehouse/testkit';
import { SETTINGS } from '../src/settings.js';
import { BIN, ROOT, startChild } from './helpers.js';

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

test('--help lists every start option with its default', () => {
  const out = run(['start', '--help']);
  assert.equal(out.status, 0);
  for (const s of SETTINGS) {
    assert.ok(out.stdout.includes(`--${s.flag}`), s.flag);
    assert.ok(out.stdout.includes(`default: ${s.defaultText}`), `${s.flag} default`);
  }
});

test('the README configuration table lists every setting', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const s of SETTINGS) {
    assert.match(
      readme,
      new RegExp(
        `\\| \`--${s.flag}\` \\| \`GATEHOUSE_${s.flag.toUpperCase().replace(/-/g, '_')}\` \\| ${s.defaultText.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\|`,
      ),
      s.flag,
    );
  }
});

test('bad configuration stops the start with a message naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-cli-'));
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--port', 'eighty'], {}, /port must be a whole number/],
    [['--heartbeat', '-1'], {}, /heartbeat/],
    [['--tls-cert', '/x.pem'], {}, /--tls-cert and --tls-key go together/],
    [['--bogus'], {}, /bogus/],
    [[], { GATEHOUSE_MAX_CONNECTIONS: 'many' }, /GATEHOUSE_MAX_CONNECTIONS/],
    [['--backbone', 'carrier-pigeon://x'], {}, /not supported/],
    [['--backbone-namespace', 'Prod.EU'], {}, /backbone-namespace must be/],
    [['--backbone-option', 'jetstream.replicas=three'], {}, /backbone\.jetstream\.replicas must be a whole number/],
    [
      ['--backbone', 'jetstream://127.0.0.1:4222', '--backbone-option', 'jetstream.replicas=9'],
      {},
      /backbone\.jetstream\.replicas: .*from 1 to 5/,
    ],
    [
      ['--workers', '2', '--backbone', 'kafka://127.0.0.1:9092', '--backbone-option', 'kafka.partitions=0'],
      {},
      /backbone\.kafka\.partitions: .*from 1 to/,
    ],
    [[], { GATEHOUSE_BACKBONE_OPTION: 'kafka.partitons=3' }, /GATEHOUSE_BACKBONE_OPTION: unknown setting backbone\.kafka\.partitons/],
  ];
  writeFileSync(join(dir, 'backbone.yaml'), 'backbone:\n  url: jetstream://127.0.0.1:4222\n  jetstream: { storage: tape }\n');
  cases.push([['--config', join(dir, 'backbone.yaml')], {}, /backbone\.jetstream\.storage must be one of file, memory/]);
  writeFileSync(join(dir, 'bad.yaml'), 'namespaces:\n  chat: { historySize: -3 }\n');
  cases.push([['--config', join(dir, 'bad.yaml')], {}, /namespaces\.chat\.historySize/]);
  writeFileSync(join(dir, 'unknown.yaml'), 'prot: 80\n');
  cases.push([['--config', join(dir, 'unknown.yaml')], {}, /unknown setting "prot"/]);
  for (const [args, env, message] of cases) {
    const out = run(['start', '--port', '0', ...args], env);
    assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`);
    assert.match(out.stderr, message);
  }
});

test('token prints a verifiable development JWT as its last line', async () => {
  const out = run([
    'token',
    '--sub',
    'alice',
    '--channels',
    'private:alice:*',
    '--publish',
    'private:alice:chat',
    '--secret',
    'dev-secret-123',
    '--ttl',
    '60',
  ]);
  assert.equal(out.status, 0, out.stderr);
  const jwt = out.stdout.trim().split('\n').pop() as string;
  const { payload } = await jwtVerify(jwt, new TextEncoder().encode('dev-secret-123'));
  assert.equal(payload.sub, 'alice');
  assert.deepEqual(payload['channels'], ['private:alice:*']);
  assert.deepEqual(payload['publish'], ['private:alice:chat']);
  assert.ok((payload.exp as number) - Date.now() / 1000 <= 61);
  assert.equal(run(['token', '--channels', 'x:*', '--secret', 's']).status, 2);
});

test('start, subscribe, publish with the CLI, then SIGTERM drains with the drain code and exits 0', async () => {
  const { child, port, logs } = await startChild(['--api-key', 'dev-key-123', '--drain-window', '1']);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const frames: any[] = [];
    let closed: { code: number; reason: string } | undefined;
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    ws.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
    ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: 'public:demo' }));
    await waitFor('subscribed', () => frames.find((f) => f.op === 'subscribed'));
    const pub = spawnSync(
      process.execPath,
      [BIN, 'publish', 'public:demo', '{"text":"hello"}', '--url', `http://127.0.0.1:${port}`, '--api-key', 'dev-key-123'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(pub.status, 0, pub.stderr);
    assert.equal(JSON.parse(pub.stdout.trim()).offset, 1);
    const got = await waitFor('the publication', () => frames.find((f) => f.op === 'pub'));
    assert.deepEqual(got.data, { text: 'hello' });
    const badKey = spawnSync(
      process.execPath,
      [BIN, 'publish', 'public:demo', '1', '--url', `http://127.0.0.1:${port}`, '--api-key', 'wrong-key-123'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.notEqual(badKey.status, 0);
    assert.match(badKey.stderr, /unauthorized|401/);

    // A peer that never answers the drain's close holds the drain open for the close timeout, so
    // readiness can be observed while the node drains instead of racing its exit.
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => {});
    silent.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise((r) => silent.once('data', r));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const ready = await waitFor(
      'readiness to drop',
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return res && res.status === 503 ? res : undefined;
      },
      5000,
    );
    assert.equal(ready.status, 503);
    const c = await waitFor('the drain close', () => closed, 10_000);
    assert.equal(c.code, 4200);
    assert.ok(parseRetryHint(c.reason) !== undefined, `retry hint in "${c.reason}"`);
    assert.equal(await exited, 0);
    assert.ok(
      logs.some((l) => l.includes('drain finished')),
      'drain logged',
    );
    assert.ok(!logs.some((l) => l.includes('dev-key-123')), 'API key never logged');
  } finally {
    child.kill('SIGKILL');
  }
});

test('bench and capacity are reachable through the gatehouse command and refuse bad parameters', () => {
  assert.equal(run(['bench', '--help']).status, 0);
  assert.equal(run(['capacity', '--help']).status, 0);
  const bad = run(['bench', 'fanout', '--connections', 'lots']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr + bad.stdout, /connections/);
  const plan = run(['capacity', '--connections-per-node', '10000', '--bytes-per-connection', '6000']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /RAM|memory/i);
});
