/**
 * `gatehouse publish` takes its data inline, from standard input (`-`) or from a file (`@path`),
 * and says what is wrong with data it cannot send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { waitFor } from '@gatehouse/testkit';
import { MAX_DATA_BYTES, readData } from '../src/publish-data.js';
import { BIN, startChild, stopChild } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-cli-publish-'));

function publish(args: string[], input?: string) {
  return spawnSync(process.execPath, [BIN, 'publish', ...args], { encoding: 'utf8', input: input ?? '', timeout: 20_000 });
}

test('data from stdin and from a file reaches a subscriber', async () => {
  const { child, port } = await startChild(['--api-key', 'dev-key-123']);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  try {
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
    ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: 'public:demo' }));
    await waitFor('subscribed', () => frames.find((f) => f.op === 'subscribed'));
    const common = ['--url', `http://127.0.0.1:${port}`, '--api-key', 'dev-key-123'];
    const piped = publish(['public:demo', '-', ...common], '{"text":"from stdin",\n "n": 1}\n');
    assert.equal(piped.status, 0, piped.stderr);
    assert.equal(JSON.parse(piped.stdout).offset, 1);
    const path = join(dir, 'message.json');
    writeFileSync(path, JSON.stringify({ text: 'from a file', list: [1, 2, 3] }));
    const fromFile = publish(['public:demo', `@${path}`, ...common]);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    const pubs = await waitFor('both publications', () => {
      const got = frames.filter((f) => f.op === 'pub');
      return got.length === 2 ? got : undefined;
    });
    assert.deepEqual(pubs[0].data, { text: 'from stdin', n: 1 });
    assert.deepEqual(pubs[1].data, { text: 'from a file', list: [1, 2, 3] });
  } finally {
    ws.close();
    await stopChild(child);
  }
});

test('bad data is refused before anything is sent, saying what is wrong', () => {
  writeFileSync(join(dir, 'broken.json'), '{"text": "unterminated');
  writeFileSync(join(dir, 'empty.json'), '  \n');
  const cases: [string, string | undefined, RegExp][] = [
    ['-', '{"a":1', /^gatehouse publish: standard input is not valid JSON \(.*\): \{"a":1$/],
    ['-', '', /^gatehouse publish: standard input is empty; expected JSON/],
    [`@${join(dir, 'missing.json')}`, undefined, /^gatehouse publish: data file .*missing\.json does not exist$/],
    [`@${join(dir, 'broken.json')}`, undefined, /^gatehouse publish: data file .*broken\.json is not valid JSON/],
    [`@${join(dir, 'empty.json')}`, undefined, /data file .*empty\.json is empty/],
    [`@${dir}`, undefined, /data file .* is not a file/],
    ['@', undefined, /"@" must be followed by a file path/],
    ['{not json}', undefined, /^gatehouse publish: <json> is not valid JSON/],
  ];
  for (const [source, input, message] of cases) {
    // The URL goes nowhere: a refused argument must stop before any request.
    const out = publish(['public:demo', source, '--url', 'http://127.0.0.1:1', '--api-key', 'dev-key-123'], input);
    assert.equal(out.status, 2, `${source}: ${out.stderr}`);
    assert.match(out.stderr.trim(), message, source);
  }
});

test('standard input larger than any publication is refused without reading it all', async () => {
  let yielded = 0;
  async function* endless(): AsyncGenerator<Buffer> {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    for (;;) {
      yielded += chunk.length;
      yield chunk;
    }
  }
  await assert.rejects(readData('-', endless()), /standard input holds more than/);
  assert.ok(yielded <= MAX_DATA_BYTES + 1024 * 1024, `read ${yielded} bytes`);
});
