/** `--pusher-app` and the config file's `pusher.apps` reach the gateway options, checked. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveOptions } from '@gatehouse/server';
import type { GatewayOptions } from '@gatehouse/server';
import { loadStartConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-cli-pusher-'));

test('--pusher-app and pusher.apps give apps, each with its own pusher-<id> namespace', () => {
  const flagged = loadStartConfig({ 'pusher-app': ['12:key-a:secret-0123', '13:key-b:secret:with:colons'] }, {});
  const o = resolveOptions(flagged.gateway as Partial<GatewayOptions>);
  assert.deepEqual(o.pusherApps, [
    { id: '12', key: 'key-a', secret: 'secret-0123' },
    { id: '13', key: 'key-b', secret: 'secret:with:colons' },
  ]);
  assert.ok(o.namespaces['pusher-12'] && o.namespaces['pusher-13']);
  assert.equal(o.namespaces['pusher-12'].anonymous, false);
  const path = join(dir, 'pusher.yaml');
  writeFileSync(path, 'pusher:\n  apps:\n    - { id: "7", key: file-key, secret: file-secret-01 }\n    - "8:other-key:other-secret-01"\n');
  const fromFile = resolveOptions(loadStartConfig({ config: path }, {}).gateway as Partial<GatewayOptions>);
  assert.deepEqual(
    fromFile.pusherApps.map((a) => a.key),
    ['file-key', 'other-key'],
  );
});

test('a malformed or duplicate Pusher app stops the start with a message naming it', () => {
  assert.throws(() => loadStartConfig({ 'pusher-app': ['no-colons'] }, {}), /id must be/);
  assert.throws(() => loadStartConfig({ 'pusher-app': ['1:k:short'] }, {}), /secret must be at least 8/);
  assert.throws(() => loadStartConfig({ 'pusher-app': ['1:k:secret-0123', '2:k:secret-0123'] }, {}), /share the key/);
});

test('pusher.apps objects take id, key and secret only: a webhookUrl there is refused, pointing at pusherWebhooks', () => {
  const path = join(dir, 'pusher-hook.yaml');
  writeFileSync(path, 'pusher:\n  apps:\n    - { id: "7", key: file-key, secret: file-secret-01, webhookUrl: "http://hooks.example/p" }\n');
  assert.throws(() => loadStartConfig({ config: path }, {}), /pusher\.apps\[0\] has an unknown field "webhookUrl".*pusherWebhooks/);
  const ok = join(dir, 'pusher-hook-ok.yaml');
  writeFileSync(
    ok,
    'pusher:\n  apps:\n    - { id: "7", key: file-key, secret: file-secret-01 }\npusherWebhooks: ["7=http://hooks.example/p"]\n',
  );
  const o = resolveOptions(loadStartConfig({ config: ok }, {}).gateway as Partial<GatewayOptions>);
  assert.equal(o.pusherApps[0]?.webhookUrl, 'http://hooks.example/p');
  assert.throws(
    () => resolveOptions({ pusherApps: [{ id: '7', key: 'k', secret: 'secret-0123', webhookUrl: 'ftp://x' }] }),
    /webhookUrl must be an http\(s\) URL/,
  );
});
