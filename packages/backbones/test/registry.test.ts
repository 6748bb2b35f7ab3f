/**
 * The registry: which adapter a URL names, every setting checked with a message naming it, the
 * settings reaching the adapter exactly, and the documented defaults being the adapters' own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { OptionsError } from '@gatehouse/server';
import {
  BACKBONE_SETTINGS,
  applyBackboneOption,
  backboneKind,
  backboneKindOf,
  backboneNames,
  checkSection,
  checkSettings,
  createBackbone,
  planBackbone,
  type SectionName,
} from '../src/index.js';

/** Asserts `fn` throws an OptionsError whose message matches `message`. */
function optionsError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof OptionsError && message.test(err.message));
}

describe('URLs', () => {
  test('each scheme names its adapter; memory and nothing mean memory', () => {
    assert.equal(backboneKind('memory'), 'memory');
    for (const [url, kind] of [
      ['redis://h:1', 'redis'],
      ['rediss://h:1', 'redis'],
      ['redis+cluster://h:1', 'redis'],
      ['nats://h:1', 'nats'],
      ['jetstream://h:1', 'jetstream'],
      ['kafka://h:1', 'kafka'],
    ] as const) {
      assert.equal(backboneKind(url), kind, url);
    }
    assert.equal(backboneKindOf([]), 'memory');
  });

  test('unknown schemes, mixed adapters and a repeated memory are refused', () => {
    optionsError(() => backboneKind('carrier-pigeon://x'), /"carrier-pigeon:\/\/x" is not supported; use memory, redis:\/\//);
    optionsError(() => backboneKind('localhost:6379'), /not supported/);
    optionsError(() => backboneKindOf(['redis://a:1', 'nats://b:2']), /must all name one backbone, got redis, nats/);
    optionsError(() => backboneKindOf(['nats://a:1', 'jetstream://b:2']), /must all name one backbone/);
    optionsError(() => backboneKindOf(['memory', 'memory']), /stands alone/);
    assert.equal(backboneKindOf(['redis://a:1', 'rediss://b:2']), 'redis', 'plain and TLS Redis shards may mix');
  });

  test('a namespace gives every name its own first token', () => {
    assert.deepEqual(backboneNames(undefined), {
      redisKeyPrefix: 'gh',
      natsSubjectPrefix: 'gatehouse',
      jetStream: 'GATEHOUSE',
      kafkaTopic: 'gatehouse',
    });
    assert.deepEqual(backboneNames('eu-1'), {
      redisKeyPrefix: 'gh-eu-1',
      natsSubjectPrefix: 'gatehouse-eu-1',
      jetStream: 'GATEHOUSE-eu-1',
      kafkaTopic: 'gatehouse-eu-1',
    });
    optionsError(() => backboneNames('Eu'), /backbone-namespace must be 1-32 characters/);
    optionsError(() => backboneNames('-x'), /backbone-namespace must be/);
    optionsError(() => backboneNames('x'.repeat(33)), /backbone-namespace must be/);
  });
});

describe('settings', () => {
  test('values are converted by kind, from a file or from text', () => {
    assert.deepEqual(checkSection('jetstream', { replicas: 3, storage: 'memory', maxAgeSeconds: '60' }), {
      replicas: 3,
      storage: 'memory',
      maxAgeSeconds: 60,
    });
    assert.deepEqual(checkSection('redis', { sharded: 'true' }), { sharded: true });
    assert.deepEqual(checkSection('kafka', { replicationFactor: '-1', createTopic: false }), { replicationFactor: -1, createTopic: false });
    const into: Record<string, Record<string, unknown>> = {};
    applyBackboneOption(into, 'jetstream.replicas=3');
    applyBackboneOption(into, 'jetstream.storage=memory');
    applyBackboneOption(into, 'nats.name=edge=1');
    assert.deepEqual(into, { jetstream: { replicas: 3, storage: 'memory' }, nats: { name: 'edge=1' } });
  });

  test('every mistake names the setting in full', () => {
    const where = 'config file g.yaml: ';
    optionsError(
      () => checkSection('jetstream', { replicas: 'three' }, where),
      /^config file g\.yaml: backbone\.jetstream\.replicas must be a whole number, got "three"$/,
    );
    optionsError(() => checkSection('jetstream', { replicas: 1.5 }), /backbone\.jetstream\.replicas must be a whole number/);
    optionsError(
      () => checkSection('jetstream', { storage: 'disk' }),
      /backbone\.jetstream\.storage must be one of file, memory, got "disk"/,
    );
    optionsError(() => checkSection('redis', { sharded: 'yes' }), /backbone\.redis\.sharded must be true or false/);
    optionsError(() => checkSection('nats', { name: '' }), /backbone\.nats\.name must be a non-empty string/);
    optionsError(() => checkSection('kafka', { partitons: 3 }), /unknown setting backbone\.kafka\.partitons \(known: topic, partitions/);
    optionsError(() => checkSection('kafka', [1]), /backbone\.kafka must be a mapping/);
    optionsError(() => checkSettings({ rabbit: {} }), /unknown backbone section "rabbit" \(known: redis, nats, jetstream, kafka\)/);
    optionsError(() => applyBackboneOption({}, 'replicas=3'), /backbone-option "replicas=3" must look like <section>\.<setting>=<value>/);
    optionsError(() => applyBackboneOption({}, 'rabbit.x=1'), /unknown section "rabbit"/);
    optionsError(() => applyBackboneOption({}, 'jetstream.replicas=x'), /backbone\.jetstream\.replicas must be a whole number/);
  });

  test('an object key that only looks like a setting is not one', () => {
    optionsError(() => checkSection('redis', JSON.parse('{"__proto__": 1}')), /unknown setting backbone\.redis\.__proto__/);
    optionsError(() => checkSection('redis', { toString: 1 }), /unknown setting backbone\.redis\.toString/);
  });
});

describe('plans', () => {
  test('the sections that apply reach the adapter, with the URLs and the namespace names', () => {
    const settings = {
      redis: { sharded: true, commandTimeoutMs: 750 },
      nats: { pingIntervalMs: 2_000 },
      jetstream: { replicas: 3, storage: 'memory' as const },
      kafka: { partitions: 16, replicationFactor: 3 },
    };
    assert.deepEqual(planBackbone(['jetstream://n1:4222', 'jetstream://n2:4222'], { ...settings, namespace: 'eu' }), {
      kind: 'jetstream',
      options: {
        pingIntervalMs: 2_000,
        replicas: 3,
        storage: 'memory',
        subjectPrefix: 'gatehouse-eu',
        stream: 'GATEHOUSE-eu',
        servers: ['jetstream://n1:4222', 'jetstream://n2:4222'],
      },
    });
    assert.deepEqual(planBackbone(['nats://n1:4222'], settings), {
      kind: 'nats',
      options: { pingIntervalMs: 2_000, servers: ['nats://n1:4222'] },
    });
    assert.deepEqual(planBackbone(['redis://r:6379'], settings), {
      kind: 'redis',
      options: { sharded: true, commandTimeoutMs: 750, urls: ['redis://r:6379'] },
    });
    assert.deepEqual(planBackbone(['kafka://k:9092'], { ...settings, namespace: 'eu' }), {
      kind: 'kafka',
      options: { partitions: 16, replicationFactor: 3, topic: 'gatehouse-eu', brokers: ['kafka://k:9092'] },
    });
    assert.deepEqual(planBackbone(['memory'], settings), { kind: 'memory' });
  });

  test('the malformed-message hook reaches every adapter', () => {
    const hook = () => {};
    for (const url of ['redis://r:1', 'nats://n:1', 'jetstream://n:1', 'kafka://k:1']) {
      const plan = planBackbone([url], { onMalformed: hook });
      assert.ok(plan.kind !== 'memory' && plan.options.onMalformed === hook, url);
    }
  });

  test('a namespace and an explicit name for the same thing contradict each other', () => {
    optionsError(
      () => planBackbone(['redis://r:1'], { namespace: 'eu', redis: { keyPrefix: 'x' } }),
      /backbone\.redis\.keyPrefix and backbone-namespace both/,
    );
    optionsError(() => planBackbone(['kafka://k:1'], { namespace: 'eu', kafka: { topic: 'x' } }), /backbone\.kafka\.topic/);
    assert.equal(
      (planBackbone(['redis://r:1'], { redis: { keyPrefix: 'x' } }) as { options: { keyPrefix: string } }).options.keyPrefix,
      'x',
    );
  });

  test('values of the wrong kind from code are refused like those from a file', () => {
    optionsError(
      () => planBackbone(['jetstream://n:1'], { jetstream: { replicas: '3' as unknown as number, storage: 'tape' as 'file' } }),
      /backbone\.jetstream\.storage must be one of/,
    );
  });
});

/** The resolved options an adapter exposes, to see what it was really given. */
function resolved(backbone: unknown): Record<string, unknown> {
  return (backbone as { options: Record<string, unknown> }).options;
}

describe('createBackbone', () => {
  const urls: Record<Exclude<SectionName, 'nats'>, string> = {
    redis: 'redis://127.0.0.1:6379',
    jetstream: 'jetstream://127.0.0.1:4222',
    kafka: 'kafka://127.0.0.1:9092',
  };

  test('settings reach the adapter as given (nothing is started)', async () => {
    const js = await createBackbone([urls.jetstream], {
      nats: { timeoutMs: 1234 },
      jetstream: { replicas: 3, storage: 'memory', maxMsgsPerSubject: 7 },
    });
    assert.equal(js.kind, 'jetstream');
    assert.equal(resolved(js)['replicas'], 3);
    assert.equal(resolved(js)['storage'], 'memory');
    assert.equal(resolved(js)['maxMsgsPerSubject'], 7);
    assert.equal(resolved(js)['timeoutMs'], 1234);
    const kafka = await createBackbone([urls.kafka], { namespace: 'eu', kafka: { partitions: 3, reconnectMaxMs: 900 } });
    assert.equal(resolved(kafka)['partitions'], 3);
    assert.equal(resolved(kafka)['reconnectMaxMs'], 900);
    assert.equal(resolved(kafka)['topic'], 'gatehouse-eu');
    const redis = await createBackbone([urls.redis], { redis: { sharded: true } });
    assert.equal(resolved(redis)['sharded'], true);
    assert.equal((await createBackbone(['memory'])).kind, 'memory');
    assert.equal((await createBackbone([])).kind, 'memory');
  });

  test("an adapter's range check comes back naming the setting", async () => {
    await assert.rejects(createBackbone([urls.jetstream], { jetstream: { replicas: 9 } }), (err: unknown) => {
      assert.ok(err instanceof OptionsError);
      assert.match(err.message, /^backbone\.jetstream\.replicas: .*"replicas" must be an integer from 1 to 5, got 9/);
      return true;
    });
    await assert.rejects(
      createBackbone([urls.jetstream], { nats: { pingIntervalMs: 1 } }),
      /^OptionsError: backbone\.nats\.pingIntervalMs: /,
    );
    await assert.rejects(
      createBackbone([urls.kafka], { kafka: { reconnectMinMs: 10, reconnectMaxMs: 5 } }),
      /backbone\.kafka\.reconnect(Max|Min)Ms: /,
    );
    await assert.rejects(
      createBackbone(['redis://127.0.0.1:6379/x']),
      (err: unknown) => err instanceof OptionsError && /^backbone \(redis\): .*database/.test(err.message),
    );
  });

  test("the documented defaults are the adapters' own", async () => {
    const built: Record<SectionName, unknown> = {
      redis: await createBackbone([urls.redis]),
      nats: await createBackbone(['nats://127.0.0.1:4222']),
      jetstream: await createBackbone([urls.jetstream]),
      kafka: await createBackbone([urls.kafka]),
    };
    for (const [section, table] of Object.entries(BACKBONE_SETTINGS) as [SectionName, Record<string, { default: string }>][]) {
      const options = resolved(built[section]);
      for (const [key, spec] of Object.entries(table)) {
        assert.equal(String(options[key]), spec.default, `backbone.${section}.${key}`);
      }
    }
  });
});

test('docs/backbones.md has a row for every setting with its default', () => {
  const docs = readFileSync(new URL('../../../../docs/backbones.md', import.meta.url), 'utf8');
  for (const [section, table] of Object.entries(BACKBONE_SETTINGS)) {
    for (const [key, spec] of Object.entries(table)) {
      const row = `| \`${key}\` | ${spec.default} | ${spec.meaning} |`;
      assert.ok(docs.includes(row), `docs/backbones.md lists backbone.${section}.${key}: ${row}`);
    }
  }
});
