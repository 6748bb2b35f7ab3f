/**
 * A produce request the broker wrote but whose answer never came back (the broker died after
 * writing, or the network cut): the publish rejects, and it may be in the log. What must not
 * happen is what the fleet's broker-restart scenario found: the client library does not advance
 * its idempotence sequence after a failure, so the next batch carried the same sequence, the broker
 * took it for a retry of the written one, answered with that one's offset and dropped it: a publish
 * acknowledged and never delivered. A proxy the broker advertises sits between the backbone and
 * the broker and swallows the broker's answers on demand.
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { PublishOptions } from '@gatehouse/server';
import { serviceSkipReason, withDeadline } from '@gatehouse/testkit';
import { createKafkaBackbone, type KafkaBackbone } from '../src/index.js';
import { freePort, PrivateBroker, privateBrokerAvailable } from './private-broker.js';
import { Recorder, uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: lost-answer.test (needs Java and .services/kafka/lib)', async () => privateBrokerAvailable());
const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 3600 };

/** A TCP proxy that can stop passing the broker's answers on (requests still go through). */
class AnswerEater {
  private readonly sockets = new Set<Socket>();
  private eating = false;
  private constructor(private readonly server: Server) {}

  static async start(port: number, target: () => number): Promise<AnswerEater> {
    const server = createServer();
    const proxy = new AnswerEater(server);
    server.on('connection', (client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: target() });
      proxy.track(client);
      proxy.track(upstream);
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => {
        if (!proxy.eating) client.write(d);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return proxy;
  }

  /** From now on, answers are dropped. */
  eat(): void {
    this.eating = true;
  }

  /** Cuts every connection (their byte streams lost answers midway) and passes answers again. */
  restore(): void {
    for (const s of this.sockets) s.destroy();
    this.eating = false;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }
}

describe('KafkaBackbone when a produce answer is lost', { skip: skip ?? false }, () => {
  let broker: PrivateBroker;
  let proxy: AnswerEater;
  let pub: KafkaBackbone;
  let sub: KafkaBackbone;
  const recPub = new Recorder();
  const recSub = new Recorder();

  before(async () => {
    const proxyPort = await freePort();
    let brokerPort = 0;
    proxy = await AnswerEater.start(proxyPort, () => brokerPort);
    broker = await PrivateBroker.create({ advertisedPort: proxyPort });
    brokerPort = broker.port;
    const opts = { topic: uniqueTopic('lost-answer'), partitions: 1, fetchMaxWaitMs: 200, reconnectMinMs: 50, reconnectMaxMs: 500, requestTimeoutMs: 1500 };
    pub = createKafkaBackbone([broker.address], opts);
    sub = createKafkaBackbone([broker.address], opts);
    await Promise.all([pub.start(recPub), sub.start(recSub)]);
  });

  after(async () => {
    await Promise.allSettled([pub?.close(), sub?.close()]);
    await proxy?.close();
    await broker?.destroy();
  });

  test('the next publish is written and delivered, not taken for a retry of the unanswered one', async () => {
    const ch = uniqueChannel('lost-answer');
    await sub.subscribe(ch);
    const first = await pub.publish(ch, '"first"', KEEP);
    await recSub.waitCount(ch, 1, 'subscriber', WAIT);

    proxy.eat();
    // The broker writes it (and each retry is a duplicate to it); no answer reaches the client.
    await withDeadline('the unanswered publish to reject', assert.rejects(pub.publish(ch, '"unanswered"', KEEP)), 30_000);
    // Their fetches go unanswered too: both report 'down' before the answers flow again, so the
    // 'up' waited for below is the one after the cut, not the one from before it.
    await Promise.all([recPub.state('down', 'publisher', 30_000), recSub.state('down', 'subscriber', 30_000)]);
    proxy.restore();
    await Promise.all([recPub.state('up', 'publisher', 60_000), recSub.state('up', 'subscriber', 60_000)]);

    const third = await pub.publish(ch, '"third"', KEEP);
    const got = await recSub.waitCount(ch, 3, 'subscriber', WAIT);
    assert.deepEqual(got.map((p) => p.data), ['"first"', '"unanswered"', '"third"'], 'the unanswered one was written; the next one too');
    assert.equal(got[2]?.offset, third.offset, 'the acknowledged offset is the one delivered');
    assert.ok(third.offset > (got[1]?.offset ?? Infinity) && (got[1]?.offset ?? 0) > first.offset);
  });
});
