/**
 * The backbone part of `gatehouse start`'s configuration: the config file's `backbone:` mapping,
 * `--backbone-option` and GATEHOUSE_BACKBONE_OPTION merge setting by setting, every mistake names
 * its key, and the settings reach the adapter on a real JetStream server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { loadStartConfig } from '../src/config.js';
import { startChild, stopChild } from './helpers.js';
import { deleteStreamsContaining, streamConfig } from './jetstream.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-cli-config-'));

/** Writes `text` to a config file named `name` and returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('the backbone mapping sets URLs, namespace and adapter sections', () => {
  const config = loadStartConfig(
    {
      config: file(
        'full.yaml',
        [
          'backbone:',
          '  url: [jetstream://10.0.0.5:4222, jetstream://10.0.0.6:4222]',
          '  namespace: staging',
          '  nats: { pingIntervalMs: 5000 }',
          '  jetstream: { replicas: 3, storage: memory }',
          '  kafka: { partitions: 16 }',
        ].join('\n'),
      ),
    },
    {},
  );
  assert.deepEqual(config.backbone, ['jetstream://10.0.0.5:4222', 'jetstream://10.0.0.6:4222']);
  assert.equal(config.backboneNamespace, 'staging');
  assert.deepEqual(config.backboneSettings, {
    nats: { pingIntervalMs: 5000 },
    jetstream: { replicas: 3, storage: 'memory' },
    kafka: { partitions: 16 },
  });
});

test('a plain backbone URL in the file still works, as one URL or a list', () => {
  assert.deepEqual(loadStartConfig({ config: file('one.yaml', 'backbone: redis://10.0.0.5:6379\n') }, {}).backbone, [
    'redis://10.0.0.5:6379',
  ]);
  const json = file('list.json', JSON.stringify({ backbone: ['redis://a:6379', 'redis://b:6379'], backboneNamespace: 'eu' }));
  const config = loadStartConfig({ config: json }, {});
  assert.deepEqual(config.backbone, ['redis://a:6379', 'redis://b:6379']);
  assert.equal(config.backboneNamespace, 'eu');
  assert.deepEqual(config.backboneSettings, {});
});

test('file, environment and flags merge setting by setting; later sources win', () => {
  const config = loadStartConfig(
    {
      config: file('merge.yaml', 'backbone:\n  url: jetstream://n:4222\n  jetstream: { replicas: 3, maxAgeSeconds: 60, storage: file }\n'),
      'backbone-option': ['jetstream.storage=memory'],
    },
    { GATEHOUSE_BACKBONE_OPTION: 'jetstream.maxAgeSeconds=120, nats.name=edge' },
  );
  assert.deepEqual(config.backboneSettings, { jetstream: { replicas: 3, maxAgeSeconds: 120, storage: 'memory' }, nats: { name: 'edge' } });
});

test('every backbone mistake names its key', () => {
  const cases: [string, RegExp][] = [
    ['backbone:\n  urll: redis://x:1\n', /unknown setting backbone\.urll \(known: url, namespace, redis, nats, jetstream, kafka\)/],
    [
      'backbone:\n  url: jetstream://n:1\n  jetstream: { replicas: three }\n',
      /backbone\.jetstream\.replicas must be a whole number, got "three"/,
    ],
    ['backbone:\n  url: kafka://k:1\n  kafka: { partitons: 3 }\n', /unknown setting backbone\.kafka\.partitons/],
    ['backbone:\n  url: redis://r:1\n  redis: 5\n', /backbone\.redis must be a mapping/],
    ['backbone:\n  url: carrier-pigeon://x\n', /"carrier-pigeon:\/\/x" is not supported/],
    ['backbone:\n  url: redis://r:1\n  namespace: Prod\n', /^config file .*: backbone\.namespace must be 1-32 characters/],
    ['backboneNamespace: a\nbackbone:\n  namespace: b\n', /backboneNamespace and backbone\.namespace both set/],
    [
      'backbone:\n  url: redis://r:1\n  namespace: eu\n  redis: { keyPrefix: x }\n',
      /backbone\.redis\.keyPrefix and backbone-namespace both/,
    ],
  ];
  for (const [i, [text, message]] of cases.entries()) {
    const path = file(`bad-${i}.yaml`, text);
    assert.throws(
      () => loadStartConfig({ config: path }, {}),
      (err: unknown) => err instanceof Error && message.test(err.message),
      text,
    );
  }
  assert.throws(
    () => loadStartConfig({ 'backbone-option': ['jetstream.replicas'] }, {}),
    /--backbone-option: "jetstream\.replicas" must look like <section>\.<setting>=<value>/,
  );
});

const skip = await serviceSkipReason('nats', 'CLI backbone settings on JetStream');
describe('a gateway started with JetStream settings', { skip: skip ?? false }, () => {
  test('creates its stream as the settings say', async () => {
    const run = randomBytes(3).toString('hex');
    const ns = `cfg${run}`;
    const settings = file(
      `js-${run}.yaml`,
      `backbone:\n  url: jetstream://${SERVICES.nats.host}:${SERVICES.nats.port}\n  namespace: ${ns}\n  jetstream: { storage: memory }\n`,
    );
    const { child } = await startChild(['--config', settings, '--backbone-option', 'jetstream.maxMsgsPerSubject=7']);
    try {
      const config = await streamConfig(`GATEHOUSE-${ns}`);
      assert.ok(config, `stream GATEHOUSE-${ns} exists`);
      assert.equal(config.storage, 'memory');
      assert.equal(config.max_msgs_per_subject, 7);
      assert.equal(config.num_replicas, 1);
    } finally {
      await stopChild(child);
      await deleteStreamsContaining(ns);
    }
  });
});
