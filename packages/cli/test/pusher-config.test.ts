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
