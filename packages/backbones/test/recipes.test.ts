/**
 * The recipes in docs/backbones.md for publishing straight into each backbone, run as written (the
 * shell blocks marked `<!-- recipe:<name> -->`) against the shared servers, with a gateway on that
 * backbone and an SDK client subscribed: the client must receive what the recipe published, at the
 * position the backbone gave it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GatehouseClient, type Publication, type Subscription } from '@gatehouse/client';
import { Gateway } from '@gatehouse/server';
import { SERVICES, TcpRelay, binaryInstalled, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { createBackbone } from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const DOC = readFileSync(`${ROOT}docs/backbones.md`, 'utf8');
const CHANNEL = 'public:demo';
const run = promisify(execFile);

/** The shell block marked `<!-- recipe:<name> -->` in docs/backbones.md. */
function recipe(name: string): string {
  const m = new RegExp(`<!-- recipe:${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\n`).exec(DOC);
  assert.ok(m, `docs/backbones.md has the ${name} recipe`);
  return m[1] as string;
}

/** Runs a recipe as written, from the repository root (where the doc says to run it). */
async function runRecipe(name: string): Promise<string> {
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', recipe(name)], { cwd: ROOT, timeout: 60_000 });
  return stdout;
}

/** A gateway with the default settings on `urls`, and an SDK client (through a relay it can lose). */
class Setup {
  readonly pubs: Publication[] = [];
  readonly gaps: unknown[] = [];
  sub!: Subscription;
  private constructor(
    readonly gateway: Gateway,
    readonly relay: TcpRelay,
    readonly client: GatehouseClient,
  ) {}

  static async start(urls: string[]): Promise<Setup> {
    process.env['GATEHOUSE_LOG_LEVEL'] ??= 'silent';
    const gateway = new Gateway({ host: '127.0.0.1', port: 0 }, { backbone: await createBackbone(urls) });
    await gateway.start();
    const relay = await TcpRelay.start(gateway.port);
    const client = new GatehouseClient(`ws://127.0.0.1:${relay.port}/ws`, { backoff: { minMs: 20, maxMs: 200 } });
    const s = new Setup(gateway, relay, client);
    s.sub = client.subscribe(CHANNEL);
    s.sub.on('publication', (p) => s.pubs.push(p));
    s.sub.on('gap', (g) => s.gaps.push(g));
    client.connect();
    await waitFor('the client subscribed', () => s.sub.state === 'subscribed', 20_000);
    return s;
  }

  /** Waits for the client's next publication after the `seen` it had. */
  async next(seen: number, what: string): Promise<Publication> {
    return waitFor(what, () => this.pubs[seen], 30_000);
  }

  async close(): Promise<void> {
    this.client.close();
    await this.relay.close();
    await this.gateway.close();
  }
}

/** For the enclosing describe: a gateway on `urls` with a subscribed client, given to tests by the getter. */
function gatewayOn(urls: string[]): () => Setup {
  let s: Setup | undefined;
  before(async () => {
    s = await Setup.start(urls);
  });
  after(() => s?.close());
  return () => s as Setup;
}

const redisUrl = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const redisSkip = await serviceSkipReason('redis', 'the Redis publishing recipe');

describe('the redis-cli recipe', { skip: redisSkip ?? false }, () => {
  // The recipe writes the default prefix's keys of public:demo: start from none.
  before(() =>
    run('redis-cli', ['-h', SERVICES.redis.host, '-p', String(SERVICES.redis.port), 'DEL', 'gh:{public:demo}:pos', 'gh:{public:demo}:log']),
  );
  const setup = gatewayOn([redisUrl]);

  test('a client receives it at the offset the script printed, and recovers one it missed', async () => {
    const s = setup();
    const [epoch, offset] = (await runRecipe('redis')).trim().split('\n');
    assert.equal(offset, '1', 'a new channel starts at offset 1');
    const first = await s.next(0, "the recipe's publication");
    assert.deepEqual([first.epoch, first.offset, first.data], [epoch, 1, { text: 'hello from redis-cli' }]);

    // A hand-made PUBLISH with a position of its own is dropped: no made-up epoch reaches the
    // client, and offset 2 stays free for the next real publication.
    const fake = JSON.stringify({ v: 1, channel: CHANNEL, epoch: 'made-up', offset: 2, ts: Date.now(), data: { text: 'by hand' } });
    await run('redis-cli', ['-h', SERVICES.redis.host, '-p', String(SERVICES.redis.port), 'PUBLISH', 'gh:{public:demo}', fake]);

    // Away while the recipe publishes again: the reconnect recovers it from the stream.
    s.relay.accepting = false;
    s.relay.cut();
    await waitFor('the client to notice', () => s.client.state !== 'connected');
    const [, second] = (await runRecipe('redis')).trim().split('\n');
    assert.equal(second, '2');
    s.relay.accepting = true;
    const recovered = await s.next(1, 'the missed publication, recovered');
    assert.deepEqual([recovered.epoch, recovered.offset, recovered.data], [epoch, 2, { text: 'hello from redis-cli' }]);
    assert.deepEqual(s.gaps, [], 'no gap: nothing was lost and no epoch changed');
    assert.equal(s.pubs.length, 2, 'the hand-made PUBLISH was not delivered');
  });
});

const natsUrl = `${SERVICES.nats.host}:${SERVICES.nats.port}`;
const natsSkip = await serviceSkipReason('nats', 'the NATS publishing recipes');

describe('the bash recipe for NATS core', { skip: natsSkip ?? false }, () => {
  const setup = gatewayOn([`nats://${natsUrl}`]);

  test('a client receives what the recipe published, unsequenced', async () => {
    const s = setup();
    assert.equal((await runRecipe('nats')).trim(), 'published');
    const got = await s.next(0, "the recipe's publication");
    assert.deepEqual([got.epoch, got.offset, got.data], ['', 0, { text: 'hello from bash' }]);
  });
});

describe('the bash recipe for JetStream', { skip: natsSkip ?? false }, () => {
  const setup = gatewayOn([`jetstream://${natsUrl}`]);

  test('a client receives it at the sequence the stream acknowledged', async () => {
    const s = setup();
    const ack = JSON.parse(await runRecipe('jetstream')) as { stream: string; seq: number };
    assert.equal(ack.stream, 'GATEHOUSE');
    const got = await s.next(0, "the recipe's publication");
    assert.deepEqual([got.offset, got.data], [ack.seq, { text: 'hello from bash' }]);
  });
});

const kafkaSkip = await serviceSkipReason(
  'kafka',
  'the Kafka publishing recipe',
  async () => existsSync(`${ROOT}.services/kafka/lib`) && (await binaryInstalled('java')),
);

describe('the Java recipe for Kafka', { skip: kafkaSkip ?? false }, () => {
  const setup = gatewayOn([`kafka://${SERVICES.kafka.host}:${SERVICES.kafka.port}`]);

  test('a client receives it at the offset the producer printed', async () => {
    const s = setup();
    const [partition, offset] = (await runRecipe('kafka')).trim().split(' ').map(Number);
    assert.ok(Number.isInteger(partition) && Number.isInteger(offset), 'the recipe printed "<partition> <offset>"');
    const got = await s.next(0, "the recipe's publication");
    assert.deepEqual([got.offset, got.data], [offset, { text: 'hello from Java' }]);
  });
});
