/**
 * The start-up summary and the two log formats: JSON lines off a terminal (what collectors and
 * the other suites parse), readable lines on one, either forced by --log-format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { waitFor } from '@gatehouse/testkit';
import { loadStartConfig } from '../src/config.js';
import { createLogger, prettyLine, startupSummary } from '../src/logging.js';
import { BIN, startChild, stopChild } from './helpers.js';

/** A stand-in for stdout that keeps what is written. */
function output(isTTY: boolean): { write(text: string): void; isTTY: boolean; text: string } {
  return {
    isTTY,
    text: '',
    write(text: string) {
      this.text += text;
    },
  };
}

test('a record prints as one readable line, many fields one a line, an error with its stack', () => {
  const line = prettyLine(
    JSON.stringify({
      level: 30,
      time: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      pid: 1,
      hostname: 'h',
      msg: 'gateway listening',
      port: 8080,
      host: '0.0.0.0',
    }),
    false,
  );
  assert.equal(line, '03:04:05.006 INFO  gateway listening port=8080 host=0.0.0.0\n');
  const summary = prettyLine(JSON.stringify({ level: 30, time: 0, msg: 'ready', a: 'x y', b: '2', c: '3', d: '4', e: '5', f: '6' }), false);
  assert.match(summary, /ready\n {4}a {2}x y\n {4}b {2}2\n/);
  const err = new Error('boom');
  const failed = prettyLine(
    JSON.stringify({ level: 50, time: 0, msg: 'shutdown failed', err: { type: 'Error', message: err.message, stack: err.stack } }),
    false,
  );
  assert.match(failed, /^00:00:00\.000 ERROR shutdown failed err=boom\n {4}Error: boom\n {8}at /);
  assert.equal(prettyLine('not json', false), 'not json\n');
});

test('auto is JSON off a terminal and readable lines on one; a format can be forced either way', () => {
  const pipe = output(false);
  createLogger('info', 'auto', pipe).info({ port: 1 }, 'hello');
  assert.equal(JSON.parse(pipe.text).msg, 'hello');
  const tty = output(true);
  createLogger('info', 'auto', tty, {}).info({ port: 1 }, 'hello');
  assert.match(tty.text, /^\d\d:\d\d:\d\d\.\d{3} \x1b\[32mINFO \x1b\[0m hello port=1\n$/);
  const plain = output(true);
  createLogger('info', 'auto', plain, { NO_COLOR: '1' }).info('hello');
  assert.doesNotMatch(plain.text, /\x1b/);
  const forcedJson = output(true);
  createLogger('info', 'json', forcedJson).info('hello');
  assert.equal(JSON.parse(forcedJson.text).msg, 'hello');
  const forcedPretty = output(false);
  createLogger('info', 'pretty', forcedPretty).info('hello');
  assert.match(forcedPretty.text, /INFO {2}hello\n$/);
});

test('readable lines redact secrets as JSON lines do', () => {
  const out = output(true);
  createLogger('info', 'pretty', out).info({ token: 'eyJ-secret-token', req: { authorization: 'apikey dev-key-123' } }, 'connect');
  assert.doesNotMatch(out.text, /eyJ-secret-token|dev-key-123/);
  assert.match(out.text, /\[redacted\]/);
});

test('the summary says where to connect, the backbone, the API, token auth and origins', () => {
  const open = startupSummary(loadStartConfig({}, {}), '0.0.0.0', 8080);
  assert.equal(open['listening'], 'ws://localhost:8080/ws (bound to 0.0.0.0: every interface)');
  assert.equal(open['backbone'], 'memory');
  assert.match(open['publishApi'] as string, /^off/);
  assert.match(open['tokenAuth'] as string, /^off/);
  assert.match(open['allowedOrigins'] as string, /^any/);
  const config = loadStartConfig(
    {
      'api-key': ['dev-key-123', 'other-key-456'],
      'token-secret': 'dev-secret-123',
      'allowed-origin': ['https://app.example.com'],
      backbone: ['redis://user:hunter22@10.0.0.5:6379'],
      'backbone-namespace': 'eu',
    },
    {},
  );
  const closed = startupSummary(config, '127.0.0.1', 9000);
  assert.equal(closed['listening'], 'ws://127.0.0.1:9000/ws');
  assert.equal(closed['publishApi'], 'on: POST http://127.0.0.1:9000/api/publish (2 keys)');
  assert.equal(closed['tokenAuth'], 'on: HS256 secret');
  assert.equal(closed['allowedOrigins'], 'https://app.example.com');
  assert.equal(closed['backbone'], 'redis://user:***@10.0.0.5:6379 (namespace eu)');
  assert.doesNotMatch(JSON.stringify(closed), /hunter22|dev-key-123|dev-secret-123/);
});

test('a started node logs its summary as one JSON record when stdout is a pipe', async () => {
  const { child, port, logs } = await startChild(['--api-key', 'dev-key-123', '--allowed-origin', 'https://app.example.com']);
  try {
    const line = await waitFor('the summary', () => logs.find((l) => l.includes('"gatehouse ready"')));
    const summary = JSON.parse(line);
    assert.equal(summary.listening, `ws://127.0.0.1:${port}/ws`);
    assert.equal(summary.backbone, 'memory');
    assert.match(summary.publishApi, /^on: /);
    assert.match(summary.tokenAuth, /^off/);
    assert.equal(summary.allowedOrigins, 'https://app.example.com');
    assert.ok(!logs.some((l) => l.includes('dev-key-123')), 'API key never logged');
  } finally {
    await stopChild(child);
  }
});

test('on a terminal the node writes readable lines without being asked', async (t) => {
  // script(1) gives the child a pseudo-terminal, as an interactive shell would.
  if (!existsSync('/usr/bin/script')) return t.skip('script(1) from util-linux is not installed');
  const command = `exec ${process.execPath} ${BIN} start --port 0 --host 127.0.0.1 --drain-window 0`;
  const child = spawn('/usr/bin/script', ['-qfec', command, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  try {
    await waitFor('the summary on the terminal', () => /gatehouse ready/.test(text) && /allowedOrigins/.test(text), 15_000);
    assert.match(text, /\d\d:\d\d:\d\d\.\d{3} INFO {2}gateway listening .*port=\d+/);
    assert.match(text, /INFO {2}gatehouse ready\r?\n {4}listening +ws:\/\/127\.0\.0\.1:\d+\/ws/);
    assert.doesNotMatch(text, /"level":/);
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await waitFor('script to exit', () => (child.exitCode !== null || child.signalCode !== null ? true : undefined), 10_000).catch(() =>
      child.kill('SIGKILL'),
    );
    await exited;
  }
});
