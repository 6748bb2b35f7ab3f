/**
 * What the Redis restart drill runs into, made deterministic: a gateway and one SDK client over a
 * scripted backbone. The node misses a publication while its backbone reconnects, then receives
 * the next one (its pub/sub link came back first) while history is still out of reach. Once the
 * backbone is up the hole is in history, so the client must get it, with no gap.
 *
 * The hub once gave up at the first failed history read (turning it into a 'backbone' gap and
 * moving the channel past the hole); it now keeps the fill pending and retries it on 'up'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatehouseClient, type GapEvent, type Publication as ClientPublication } from '@gatehouse/client';
import { BackboneUnavailableError, Gateway } from '@gatehouse/server';
import type {
  Backbone,
  BackboneHandler,
  BackboneState,
  ControlMessage,
  ControlRecord,
  HistoryResult,
  Publication,
  PublishOptions,
} from '@gatehouse/server';
import { waitFor } from '@gatehouse/testkit';

/** A sequenced, durable backbone whose delivery, outages and history the test drives by hand. */
class ScriptedBackbone implements Backbone {
  readonly kind = 'scripted';
  readonly capabilities = { sequenced: true, history: true, contiguousOffsets: true, durable: true, shared: true, durableRecords: false };
  state: BackboneState = 'connecting';
  readonly log: Publication[] = [];
  private handler: BackboneHandler | undefined;
  private reachable = true;

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    this.state = 'up';
  }

  /** Stores a publication (as another node's publish would) without delivering it here. */
  store(channel: string, data: string): Publication {
    const pub = { channel, epoch: 'e1', offset: this.log.filter((p) => p.channel === channel).length + 1, ts: Date.now(), data };
    this.log.push(pub);
    return pub;
  }

  /** Hands a stored publication to this node (its pub/sub link delivered it). */
  deliver(pub: Publication): void {
    this.handler?.onPublication(pub);
  }

  down(): void {
    this.reachable = false;
    this.state = 'down';
    this.handler?.onStateChange('down', new Error('scripted outage'));
  }

  up(): void {
    this.reachable = true;
    this.state = 'up';
    this.handler?.onStateChange('up');
  }

  async publish(channel: string, data: string, _o: PublishOptions): Promise<Publication> {
    if (!this.reachable) throw new BackboneUnavailableError('scripted backbone is down');
    const pub = this.store(channel, data);
    this.deliver(pub);
    return pub;
  }

  async subscribe(): Promise<void> {
    if (!this.reachable) throw new BackboneUnavailableError('scripted backbone is down');
  }

  async unsubscribe(): Promise<void> {}

  async history(channel: string, after: { epoch: string; offset: number } | undefined): Promise<HistoryResult> {
    // The command link is the one still reconnecting: reads fail while the backbone is down.
    if (!this.reachable) throw new BackboneUnavailableError('scripted backbone is unreachable');
    const mine = this.log.filter((p) => p.channel === channel);
    const offset = mine.at(-1)?.offset ?? 0;
    return { epoch: 'e1', offset, publications: after ? mine.filter((p) => p.offset > after.offset) : [], complete: true };
  }

  /** A fleet of one: control messages come straight back, and only while reachable. */
  async sendControl(msg: ControlMessage): Promise<void> {
    if (!this.reachable) throw new BackboneUnavailableError('scripted backbone is down');
    this.handler?.onControl(msg);
  }

  /** Keeps no records (`durableRecords` false), as NATS core. */
  async putRecord(_kind: string, _record: ControlRecord): Promise<void> {}

  async records(_kind: string): Promise<ControlRecord[]> {
    return [];
  }

  async close(): Promise<void> {
    this.state = 'closed';
  }
}

test('a hole seen while the backbone reconnects is filled from history once it is up, with no gap', async () => {
  const backbone = new ScriptedBackbone();
  // The gateway's default logger reads its level from here.
  process.env['GATEHOUSE_LOG_LEVEL'] = 'silent';
  const gw = new Gateway(
    {
      port: 0,
      host: '127.0.0.1',
      namespaces: { fleet: { anonymous: true, historySize: 100, historyTtlSeconds: 60, subscribe: 'claims' } },
    },
    { backbone },
  );
  await gw.start();
  const client = new GatehouseClient(`ws://127.0.0.1:${gw.port}/ws`);
  const got: ClientPublication[] = [];
  const gaps: GapEvent[] = [];
  try {
    const sub = client.subscribe('fleet:hole');
    sub.on('publication', (p) => got.push(p));
    sub.on('gap', (g) => gaps.push(g));
    client.connect();
    await waitFor('subscribed', () => sub.state === 'subscribed');
    backbone.deliver(backbone.store('fleet:hole', '1'));
    await waitFor('publication 1', () => got.length === 1);

    backbone.down();
    backbone.store('fleet:hole', '2'); // published elsewhere while this node's link was down
    backbone.deliver(backbone.store('fleet:hole', '3')); // the pub/sub link is back first
    backbone.up();
    backbone.deliver(backbone.store('fleet:hole', '4'));

    await waitFor('publication 4', () => got.some((p) => p.offset === 4));
    assert.deepEqual(gaps, [], 'the hole was in history: no gap');
    assert.deepEqual(
      got.map((p) => p.offset),
      [1, 2, 3, 4],
    );
  } finally {
    client.close();
    await gw.close();
  }
});
