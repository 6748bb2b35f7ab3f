/**
 * Subscribe churn under steady publishing, end to end on the real Redis: clients that are not the
 * SDK (plain WebSocket frames, no deduplication) subscribe and unsubscribe over and over while a
 * second node publishes, and nothing at or below the offset a `subscribed` reply announced may
 * reach them after that reply. One client stays subscribed throughout, so the channel is already
 * live on the gateway when the others come (the case a fresh channel does not exercise).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { Backbone } from '@gatehouse/backbone-kit';
import { Gateway } from '@gatehouse/server';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { createBackbone } from '../src/index.js';

type Frame = Record<string, unknown>;

/** A WebSocket client speaking raw protocol frames and keeping every frame in arrival order. */
class RawClient {
  readonly frames: Frame[] = [];
  private nextId = 1;
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as Frame));
    ws.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const c = new RawClient(ws);
    const reply = await c.request({ op: 'connect', v: 1 });
    assert.equal(reply['op'], 'connected', `connect answered ${JSON.stringify(reply)}`);
    return c;
  }

  /** Sends a request and resolves with its reply and the reply's index in `frames`. */
  async request(frame: Frame): Promise<Frame & { at: number }> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ ...frame, id }));
    // Wrapped: waitFor takes a falsy answer (index 0) for "not yet".
    const { at } = await waitFor(
      `reply to ${String(frame['op'])} #${id}`,
      () => {
        const i = this.frames.findIndex((f) => f['id'] === id);
        return i >= 0 ? { at: i } : undefined;
      },
      10_000,
    );
    return { ...(this.frames[at] as Frame), at };
  }

  close(): void {
    this.ws.terminate();
  }
}

const redis = SERVICES.redis;
const skip = await serviceSkipReason('redis', 'subscribe churn on Redis');
const CLIENTS = 4;
const ROUNDS = 60;
const PUBLISHERS = 4;

describe('a gateway on Redis under subscribe churn', { skip: skip ?? false }, () => {
  const namespace = `churn-${randomBytes(4).toString('hex')}`;
  const channel = 'public:churn';
  let gateway: Gateway;
  let publisher: Backbone;

  before(async () => {
    process.env['GATEHOUSE_LOG_LEVEL'] ??= 'silent';
    const urls = [`redis://${redis.host}:${redis.port}`];
    gateway = new Gateway({ host: '127.0.0.1', port: 0 }, { backbone: await createBackbone(urls, { namespace }) });
    await gateway.start();
    publisher = await createBackbone(urls, { namespace });
    await publisher.start({ onPublication: () => {}, onStateChange: () => {}, onControl: () => {} });
  });

  after(async () => {
    await publisher?.close();
    await gateway?.close();
    // Every key of this run's namespace (its channel's position and log) goes with it.
    const cli = ['-h', redis.host, '-p', String(redis.port)];
    const { stdout } = await promisify(execFile)('redis-cli', [...cli, '--scan', '--pattern', `gh-${namespace}:*`]);
    const keys = stdout.split('\n').filter(Boolean);
    if (keys.length > 0) await promisify(execFile)('redis-cli', [...cli, 'DEL', ...keys]);
  });

  test('no client receives a publication at or below the offset of its `subscribed` reply', async () => {
    const anchor = await RawClient.connect(gateway.port);
    await anchor.request({ op: 'subscribe', channel });
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => RawClient.connect(gateway.port)));

    let publishing = true;
    let published = 0;
    const publishLoop = async (): Promise<void> => {
      while (publishing) {
        await publisher.publish(channel, JSON.stringify({ n: published++ }), { historySize: 100, historyTtlSeconds: 60 });
      }
    };
    const loops = Array.from({ length: PUBLISHERS }, publishLoop);

    /** One subscription's window: the offset announced and the frames that followed until `unsubscribe` was answered. */
    const windows: { client: RawClient; offset: number; from: number; to: number }[] = [];
    const churn = async (c: RawClient): Promise<void> => {
      for (let i = 0; i < ROUNDS; i++) {
        const sub = await c.request({ op: 'subscribe', channel });
        assert.equal(sub['op'], 'subscribed', `subscribe answered ${JSON.stringify(sub)}`);
        const unsub = await c.request({ op: 'unsubscribe', channel });
        windows.push({ client: c, offset: sub['offset'] as number, from: sub.at + 1, to: unsub.at });
      }
    };
    try {
      await Promise.all(clients.map(churn));
    } finally {
      publishing = false;
      await Promise.all(loops);
    }

    const offsets = windows.map((w) => w.offset);
    assert.ok(Math.max(...offsets) > Math.min(...offsets), `publications were made during the churn (${published} published)`);
    const late: string[] = [];
    for (const w of windows) {
      const pubs = w.client.frames.slice(w.from, w.to).filter((f) => f['op'] === 'pub' && f['channel'] === channel);
      const dup = pubs.filter((p) => (p['offset'] as number) <= w.offset);
      if (dup.length > 0) late.push(`subscribed at ${w.offset}, then ${dup.map((p) => p['offset']).join(',')}`);
    }
    anchor.close();
    for (const c of clients) c.close();
    assert.equal(
      late.length,
      0,
      `${late.length} of ${windows.length} subscribes got a publication their reply already counted: ${late.slice(0, 5).join('; ')}`,
    );
  });
});
