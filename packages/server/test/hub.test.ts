/**
 * Hub unit tests: sessions on fake transports, publications from the real in-process backbone, and
 * a scripted wrapper around it where a test needs what a network backbone does by itself (lose a
 * pub/sub message, go down and up, read history slowly or fail to read it).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { waitFor } from '@gatehouse/testkit';
import type { StreamPosition } from '@gatehouse/protocol';
import type {
  Backbone,
  BackboneCapabilities,
  BackboneHandler,
  BackboneState,
  ControlMessage,
  ControlRecord,
  HistoryResult,
  Publication,
  PublishOptions,
} from '../src/backbone.js';
import { BackboneUnavailableError } from '../src/backbone.js';
import { Hub } from '../src/hub.js';
import { HIGH_WATER_BYTES } from '../src/outbound.js';
import type { HubOptions } from '../src/hub.js';
import { MemoryBackbone } from '../src/memory-backbone.js';
import { Session, SessionState } from '../src/session.js';
import type { SessionHandler } from '../src/session.js';
import { FAKE_FRAMING, FakeTransport, JsonFraming, idleMetrics } from './fake-transport.js';
import type { FakeFrame } from './fake-transport.js';

const CH = 'ns:room';
const KEEP: PublishOptions = { historySize: 100_000, historyTtlSeconds: 0 };
/** Close code the stub slow-consumer handler uses (the gateway's slow-consumer code). */
const SLOW_CODE = 4300;

/** One turn of the event loop: a flush scheduled with setImmediate has run after it. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The memory backbone as a network backbone behaves: deliveries can be lost (a dropped pub/sub
 * message) or stop while it is down, history reads can be held or fail, and a test can hand the
 * hub any publication. Publishing always reaches the memory bus, as a publish by another node
 * would while this one is cut off.
 */
class ScriptedBackbone implements Backbone {
  readonly kind = 'scripted';
  readonly capabilities: BackboneCapabilities;
  readonly inner = new MemoryBackbone();
  /** Deliveries this returns true for never reach the hub. */
  lose: (p: Publication) => boolean = () => false;
  /** When set, history reads wait for it; `snapshotFirst` reads the bus before waiting. */
  hold: Promise<void> | undefined;
  snapshotFirst = false;
  /** When set, history reads reject with it. */
  historyError: Error | undefined;
  /** When set, channel subscriptions reject with it. */
  subscribeError: Error | undefined;
  historyReads = 0;
  private current: BackboneState = 'connecting';
  private handler: BackboneHandler | undefined;

  constructor(capabilities: Partial<BackboneCapabilities> = {}) {
    this.capabilities = { ...this.inner.capabilities, ...capabilities };
  }

  get state(): BackboneState {
    return this.current;
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    await this.inner.start({
      onPublication: (p) => {
        if (this.current === 'up' && !this.lose(p)) handler.onPublication(p);
      },
      onStateChange: (s) => this.setState(s),
      onControl: (m) => handler.onControl(m),
    });
  }

  /** Reports `state` to the hub; while not up, deliveries are dropped. */
  setState(state: BackboneState): void {
    this.current = state;
    this.handler?.onStateChange(state);
  }

  /** Hands `p` to the hub as if it had arrived from the backbone. */
  deliver(p: Publication): void {
    this.handler?.onPublication(p);
  }

  publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    return this.inner.publish(channel, data, options);
  }

  async subscribe(channel: string): Promise<void> {
    if (this.subscribeError) throw this.subscribeError;
    return this.inner.subscribe(channel);
  }

  unsubscribe(channel: string): Promise<void> {
    return this.inner.unsubscribe(channel);
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    this.historyReads++;
    const early = this.hold && this.snapshotFirst ? this.inner.history(channel, after, limit) : undefined;
    if (this.hold) await this.hold;
    if (this.historyError) throw this.historyError;
    return early ?? this.inner.history(channel, after, limit);
  }

  sendControl(msg: ControlMessage): Promise<void> {
    return this.inner.sendControl(msg);
  }

  putRecord(kind: string, record: ControlRecord): Promise<void> {
    return this.inner.putRecord(kind, record);
  }

  records(kind: string): Promise<ControlRecord[]> {
    return this.inner.records(kind);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A promise with its resolve, to hold a history read until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const stubHandler: SessionHandler = { onMessage() {}, onPing() {}, onClose() {}, onError() {} };

const backbones: Backbone[] = [];
after(async () => {
  for (const b of backbones) await b.close();
});

/** A hub over `backbone` (started here), with sessions on fake transports. */
class Harness {
  readonly hub: Hub;
  readonly metrics = idleMetrics('hub-test');
  /** Every onSlowConsumer call, in order. */
  readonly slow: Session[] = [];
  private nextId = 1;

  private constructor(
    readonly backbone: Backbone,
    options: Partial<HubOptions>,
  ) {
    this.hub = new Hub({
      backbone,
      metrics: this.metrics,
      log: pino({ level: 'silent' }),
      maxQueueBytes: 1 << 30,
      maxQueueMessages: 1_000_000,
      channelLingerMs: 10,
      coalesceMs: 0,
      replayCacheBytes: 1 << 20,
      historyLimit: () => 100_000,
      // What the gateway does: close the session, which stops everything queued for it.
      onSlowConsumer: (s) => {
        this.slow.push(s);
        if (s.state === SessionState.Closing) return;
        s.state = SessionState.Closing;
        s.clearQueued();
        s.transport.close(SLOW_CODE, 'slow consumer');
      },
      ...options,
    });
  }

  static async start<B extends Backbone>(backbone: B, options: Partial<HubOptions> = {}): Promise<Harness & { backbone: B }> {
    const h = new Harness(backbone, options);
    backbones.push(backbone);
    await backbone.start({
      onPublication: (p) => h.hub.onPublication(p),
      onStateChange: (s) => h.hub.onStateChange(s),
      onControl: () => {},
    });
    return h as Harness & { backbone: B };
  }

  /** An open session on a fresh fake transport. */
  session(framing = FAKE_FRAMING): { s: Session; t: FakeTransport } {
    const t = new FakeTransport(framing);
    const s = new Session(t, stubHandler);
    t.listen(s);
    s.state = SessionState.Open;
    return { s, t };
  }

  /** Subscribes and waits until the `subscribed` reply (and any replay) was written. */
  async subscribe(x: { s: Session; t: FakeTransport }, channel = CH, since?: StreamPosition): Promise<FakeFrame> {
    await this.hub.subscribe(x.s, channel, this.nextId++, since);
    return waitFor(`subscribed to ${channel}`, () => x.t.framesOf('subscribed', channel)[0]);
  }

  /** Publishes `n` publications to `channel` in one tick (so they share one flush). */
  publishMany(n: number, channel = CH, options = KEEP): Promise<Publication[]> {
    return Promise.all(Array.from({ length: n }, (_, i) => this.backbone.publish(channel, JSON.stringify({ i }), options)));
  }

  async counter(name: string): Promise<number> {
    const m = await this.metrics.registry.getSingleMetric(name)?.get();
    return m?.values.reduce((n, v) => n + v.value, 0) ?? 0;
  }
}

/** A hub over `backbone` with one session subscribed to CH. */
async function oneSubscriber<B extends Backbone>(backbone: B, options: Partial<HubOptions> = {}) {
  const h = await Harness.start(backbone, options);
  const x = h.session();
  await h.subscribe(x);
  return { h, x, bb: h.backbone };
}

/** Publishes one publication and waits until `x` got it (the channel's position is then known). */
async function firstDelivered(h: Harness, x: { t: FakeTransport }): Promise<Publication> {
  const [p] = await h.publishMany(1);
  await waitFor('the first publication', () => x.t.offsets(CH).length === 1);
  return p as Publication;
}

/**
 * After publication 1: loses 2 and holds the history read that 3 starts (the fill); resolves once
 * that read began. Open the returned gate to let it answer.
 */
async function holeWithHeldFill(h: Harness & { backbone: ScriptedBackbone }) {
  const bb = h.backbone;
  bb.lose = (p) => p.offset === 2;
  const hold = gate();
  bb.hold = hold.promise;
  const reads = bb.historyReads;
  await h.publishMany(2);
  await waitFor('the fill to read history', () => bb.historyReads === reads + 1);
  return hold;
}

/**
 * Publishes one publication after another from offset `from` until `x` has something queued (the
 * hub stopped holding the channel back). Returns the last offset published.
 */
async function publishUntilQueued(h: Harness, x: { s: Session }, from: number): Promise<number> {
  let published = from - 1;
  while (x.s.queuedCount === 0) {
    assert.ok(published < 1_000_000, 'the resync buffer never stopped growing');
    await h.backbone.publish(CH, String(++published), KEEP);
  }
  return published;
}

/** The ops and positions a transport received on `channel`, as short strings, in order. */
function story(t: FakeTransport, channel = CH): string[] {
  return t.frames
    .filter((f) => f['channel'] === channel && f['op'] !== 'subscribed')
    .map((f) => (f['op'] === 'pub' ? `pub ${f['offset']}` : `${f['op']} ${f['reason'] ?? ''}`.trim()));
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

// ---- fan-out ----

test('fan-out frames a publication once per framing and every session gets one write per flush', async () => {
  const h = await Harness.start(new MemoryBackbone());
  const other = new JsonFraming(8);
  const a = [h.session(), h.session(), h.session()];
  const b = [h.session(other), h.session(other)];
  const all = [...a, ...b];
  for (const x of all) await h.subscribe(x);
  for (const x of all) x.t.clearWrites();

  const publishing = h.publishMany(3);
  for (const x of all) assert.equal(x.t.writes.length, 0, 'nothing is written before the flush');
  await publishing;
  await waitFor('every session written to', () => all.every((x) => x.t.writes.length > 0));
  await turn();

  for (const x of all) {
    assert.equal(x.t.writes.length, 1, 'one write per session for the three publications');
    assert.equal(x.t.writes[0]?.many, true, 'written with writeMany');
    assert.deepEqual(x.t.offsets(CH), [1, 2, 3]);
  }
  for (let i = 0; i < 3; i++) {
    const [first, ...rest] = a.map((x) => x.t.writes[0]?.chunks[i]);
    for (const c of rest) assert.equal(c, first, `publication ${i + 1}: the same Buffer for every session of framing 7`);
    const [firstB, ...restB] = b.map((x) => x.t.writes[0]?.chunks[i]);
    for (const c of restB) assert.equal(c, firstB, `publication ${i + 1}: the same Buffer for every session of framing 8`);
    assert.notEqual(first, firstB, 'each framing builds its own bytes');
    assert.deepEqual(first, firstB, 'both framings here carry the same JSON');
  }
  assert.equal(await h.counter('gatehouse_deliveries_total'), 15);
});

test('replies are queued in order with publications and share their write', async () => {
  const { h, x } = await oneSubscriber(new MemoryBackbone());
  x.t.clearWrites();
  await h.backbone.publish(CH, '1', KEEP);
  h.hub.send(x.s, JSON.stringify({ op: 'ok', id: 9 }));
  await h.backbone.publish(CH, '2', KEEP);
  await waitFor('a write', () => x.t.writes.length > 0);
  await turn();
  assert.equal(x.t.writes.length, 1);
  assert.deepEqual(
    x.t.frames.map((f) => f['op']),
    ['pub', 'ok', 'pub'],
  );
});

test('a session whose transport is no longer writable gets nothing written, and others still do', async () => {
  const h = await Harness.start(new MemoryBackbone());
  const gone = h.session();
  const here = h.session();
  await h.subscribe(gone);
  await h.subscribe(here);
  gone.t.writable = false;
  gone.t.clearWrites();
  await h.publishMany(2);
  await waitFor('the other session written to', () => here.t.offsets(CH).length === 2);
  await turn();
  assert.equal(gone.t.writes.length, 0, 'no write to a closing transport (the fake throws on one)');
});

// ---- subscriptions ----

test('a failed backbone subscription is rolled back, and the next subscriber tries again', async () => {
  const h = await Harness.start(new ScriptedBackbone());
  const bb = h.backbone;
  const x = h.session();
  bb.subscribeError = new BackboneUnavailableError('down');
  await assert.rejects(h.hub.subscribe(x.s, CH, 1, undefined), BackboneUnavailableError);
  assert.deepEqual(x.s.channels, [], 'the session is not left subscribed');
  assert.equal(x.s.recovering?.size ?? 0, 0, 'nothing waits for the failed channel');
  assert.equal(h.hub.channelCount, 0, 'no dead channel left behind');
  bb.subscribeError = undefined;
  await h.subscribe(x);
  await firstDelivered(h, x);
  assert.equal(h.hub.channelCount, 1);
});

test('the backbone subscription lingers after the last local subscriber leaves, and a return within it keeps it', async () => {
  const h = await Harness.start(new ScriptedBackbone(), { channelLingerMs: 50 });
  const bus = h.backbone.inner.bus;
  const x = h.session();
  await h.subscribe(x);
  assert.equal(h.hub.unsubscribe(x.s, CH), true);
  assert.equal(h.hub.unsubscribe(x.s, CH), false, 'a second unsubscribe is refused');
  assert.ok(bus.subscribers.has(CH), 'still subscribed on the backbone while it lingers');
  await h.subscribe(x);
  await firstDelivered(h, x);
  h.hub.removeSession(x.s);
  assert.deepEqual(x.s.channels, []);
  await waitFor('the backbone unsubscribe after the linger', () => !bus.subscribers.has(CH));
  assert.equal(h.hub.channelCount, 0);
  x.t.clearWrites();
  await h.publishMany(1);
  await turn();
  assert.equal(x.t.writes.length, 0, 'a removed session gets nothing');
});

// ---- gaps on a contiguous backbone ----

test('an offset jump is filled from history before anything newer is delivered', async () => {
  const { h, x } = await oneSubscriber(new ScriptedBackbone());
  await firstDelivered(h, x);
  const hold = await holeWithHeldFill(h);
  await h.publishMany(2); // 4 and 5 arrive while history is read
  await turn();
  assert.deepEqual(x.t.offsets(CH), [1], 'nothing after the hole is delivered before it is filled');
  hold.open();
  await waitFor('five publications', () => x.t.offsets(CH).length >= 5);
  await turn();
  assert.deepEqual(
    story(x.t),
    range(1, 5).map((o) => `pub ${o}`),
  );
});

test('a hole history cannot fill is reported as a gap, then delivery continues', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  bb.lose = (p) => p.offset === 2;
  // History keeps only the newest publication: 2 is gone from it by the time 3 arrives.
  await h.publishMany(3, CH, { historySize: 1, historyTtlSeconds: 0 });
  await h.publishMany(1, CH, { historySize: 1, historyTtlSeconds: 0 });
  await waitFor('publication 4', () => x.t.offsets(CH).includes(4));
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'gap history', 'pub 3', 'pub 4']);
});

test('a failing history read while the backbone is up reports a backbone gap, then delivery continues', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  bb.lose = (p) => p.offset === 2;
  bb.historyError = new Error('history read failed');
  await h.publishMany(3);
  await waitFor('publication 3', () => x.t.offsets(CH).includes(3));
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'gap backbone', 'pub 3']);
});

/** A hole whose fill never answers, then publications until the hub stops waiting for it. */
async function overflowResync() {
  const { h, x } = await oneSubscriber(new ScriptedBackbone());
  await firstDelivered(h, x);
  const hold = await holeWithHeldFill(h);
  x.t.clearWrites();
  const published = await publishUntilQueued(h, x, 4);
  await waitFor('the buffered publications written', () => x.t.writes.length > 0);
  await turn();
  return { h, x, published, hold };
}

test('the resync buffer is bounded: past its limit the hole is reported at once and what waited is delivered', async () => {
  const { h, x, published, hold } = await overflowResync();
  assert.equal(story(x.t)[0], 'gap history', 'the gap comes first');
  const delivered = x.t.offsets(CH);
  assert.equal(delivered[0], 3, 'then what waited, from the publication that revealed the hole');
  assert.deepEqual(delivered, range(3, 3 + delivered.length - 1), 'in order, without holes');
  assert.ok(delivered.length >= 1_000, `the buffer held ${delivered.length} publications before giving up`);
  // The history read answering late changes nothing.
  hold.open();
  await turn();
  await turn();
  assert.equal(story(x.t).filter((e) => e.startsWith('gap')).length, 1);
  // A newer publication reveals anything still missing, which history fills.
  h.backbone.hold = undefined;
  await h.backbone.publish(CH, '"next"', KEEP);
  await waitFor('the next publication', () => x.t.offsets(CH).includes(published + 1));
  await turn();
  assert.deepEqual(x.t.offsets(CH), range(3, published + 1));
});

test('the publication that overflows the resync buffer is delivered after what waited, without waiting for a newer one', async () => {
  const { x, published } = await overflowResync();
  const delivered = x.t.offsets(CH);
  assert.equal(delivered[delivered.length - 1], published, `publication ${published} overflowed the buffer and was not delivered`);
});

test('on a backbone without contiguous offsets, the publication that overflows the resync buffer after an outage is not lost', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone({ contiguousOffsets: false }));
  await firstDelivered(h, x);
  bb.setState('down');
  await h.publishMany(1); // 2: missed during the outage
  bb.hold = gate().promise; // the fill after the outage never answers
  bb.setState('up');
  x.t.clearWrites();
  const overflowed = await publishUntilQueued(h, x, 3);
  await bb.publish(CH, 'null', KEEP);
  await waitFor('the publication after the overflow', () => x.t.offsets(CH).includes(overflowed + 1));
  await turn();
  assert.ok(x.t.offsets(CH).includes(overflowed), `publication ${overflowed} was dropped without a gap after it`);
});

test('a new epoch is reported as an epoch gap, and delivery continues in it', async () => {
  const bb = new MemoryBackbone();
  const h = await Harness.start(bb);
  const x = h.session();
  await h.subscribe(x);
  const [p1] = await h.publishMany(2);
  // The bus forgets the channel's history (what an idle sweep or a backbone reset does): the next
  // publication starts a new epoch at offset 1.
  bb.bus.streams.delete(CH);
  const [q1] = await h.publishMany(2);
  assert.notEqual(p1?.epoch, q1?.epoch);
  await waitFor('four publications', () => x.t.offsets(CH).length === 4);
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'pub 2', 'gap epoch', 'pub 1', 'pub 2']);
  assert.deepEqual(
    x.t.framesOf('pub', CH).map((f) => f['epoch']),
    [p1?.epoch, p1?.epoch, q1?.epoch, q1?.epoch],
  );
});

test('a fill that finds history in another epoch reports an epoch gap and delivers what waited', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  await firstDelivered(h, x);
  const hold = await holeWithHeldFill(h);
  bb.inner.bus.streams.delete(CH); // reset while the read is under way
  hold.open();
  await waitFor('publication 3', () => x.t.offsets(CH).includes(3));
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'gap epoch', 'pub 3']);
});

// ---- slow consumers ----

test('a session past the message cap is reported once as a slow consumer and gets nothing more', async () => {
  const h = await Harness.start(new MemoryBackbone(), { maxQueueMessages: 5 });
  const slow = h.session();
  const fine = h.session();
  await h.subscribe(slow, 'ns:a');
  await h.subscribe(slow, 'ns:b');
  await h.subscribe(fine, 'ns:a');
  slow.t.clearWrites();
  // Six publications for the slow session in one tick, three for the other.
  await Promise.all([h.publishMany(3, 'ns:a'), h.publishMany(3, 'ns:b')]);
  await waitFor('the other session written to', () => fine.t.offsets('ns:a').length === 3);
  await h.publishMany(3, 'ns:a');
  await waitFor('six publications for the other session', () => fine.t.offsets('ns:a').length === 6);
  await turn();
  assert.equal(h.slow.length, 1, 'reported once');
  assert.equal(h.slow[0], slow.s);
  assert.deepEqual(slow.t.closed, { code: SLOW_CODE, reason: 'slow consumer' });
  assert.equal(slow.t.writes.length, 0, 'nothing written to it after the cap was hit');
});

test('a session whose unsent bytes would pass the byte cap is reported once and gets nothing more', async () => {
  const h = await Harness.start(new MemoryBackbone(), { maxQueueBytes: 4_096 });
  const slow = h.session();
  const fine = h.session();
  await h.subscribe(slow);
  await h.subscribe(fine);
  slow.t.clearWrites();
  // The kernel still holds almost the whole budget for this connection.
  slow.t.bufferedBytes = 4_000;
  await h.publishMany(2);
  await waitFor('the other session written to', () => fine.t.offsets(CH).length === 2);
  await h.publishMany(2);
  await waitFor('the other session written to', () => fine.t.offsets(CH).length === 4);
  await turn();
  assert.equal(h.slow.length, 1);
  assert.equal(h.slow[0], slow.s);
  assert.equal(slow.t.writes.length, 0);
});

/** A recovering session on `h`, whose history read waits until `open` is called. */
async function recoveringSession(h: Harness & { backbone: ScriptedBackbone }) {
  const bb = h.backbone;
  const [first] = await h.publishMany(1);
  const x = h.session();
  const hold = gate();
  bb.hold = hold.promise;
  const reads = bb.historyReads;
  const subscribing = h.hub.subscribe(x.s, CH, 1, { epoch: first?.epoch ?? '', offset: 1 });
  await waitFor('the recovery to read history', () => bb.historyReads === reads + 1);
  return { ...x, open: hold.open, subscribing };
}

test('a recovering session whose waiting publications pass the message cap is closed as a slow consumer', async () => {
  const h = await Harness.start(new ScriptedBackbone(), { maxQueueMessages: 3 });
  const x = await recoveringSession(h);
  await h.publishMany(4);
  assert.equal(h.slow[0], x.s, 'reported as soon as the fourth one waits');
  x.open();
  await x.subscribing;
  await turn();
  assert.deepEqual(x.t.closed, { code: SLOW_CODE, reason: 'slow consumer' });
  assert.equal(x.t.writes.length, 0, 'neither the reply nor the replay is written to it');
});

test('a recovering session that is closing is not reported again and its waiting list stops growing', async () => {
  const h = await Harness.start(new ScriptedBackbone(), { maxQueueMessages: 3 });
  const x = await recoveringSession(h);
  await h.publishMany(10);
  const waiting = x.s.recovering?.get(CH)?.length ?? 0;
  x.open();
  await x.subscribing;
  assert.equal(h.slow.length, 1, `reported ${h.slow.length} times`);
  assert.ok(waiting <= 4, `${waiting} publications held for a session that is closing`);
});

// ---- recovery ----

for (const snapshotFirst of [false, true]) {
  const when = snapshotFirst ? 'before' : 'after';
  test(`subscribe with a position replays what was missed, then live publications that arrived meanwhile, once each (history read ${when} they arrived)`, async () => {
    const h = await Harness.start(new ScriptedBackbone());
    const bb = h.backbone;
    const watcher = h.session();
    await h.subscribe(watcher);
    const published = await h.publishMany(5);
    const epoch = published[0]?.epoch ?? '';
    await waitFor('the watcher got 5', () => watcher.t.offsets(CH).length === 5);

    const x = h.session();
    const hold = gate();
    bb.hold = hold.promise;
    bb.snapshotFirst = snapshotFirst;
    const subscribing = h.hub.subscribe(x.s, CH, 1, { epoch, offset: 2 });
    await waitFor('the recovery to read history', () => bb.historyReads === 2);
    await h.publishMany(3); // 6..8 arrive during the read
    await waitFor('the watcher got them live', () => watcher.t.offsets(CH).length === 8);
    assert.equal(x.t.writes.length, 0, 'the recovering session gets nothing before its reply');
    hold.open();
    await subscribing;
    await waitFor('the replay written', () => x.t.writes.length > 0);
    await turn();
    assert.equal(x.t.writes.length, 1, 'the reply and everything released go out in one write');
    const reply = x.t.framesOf('subscribed', CH)[0];
    assert.equal(reply?.['recovered'], true);
    assert.equal(reply?.['offset'], snapshotFirst ? 5 : 8, 'the head the history read saw');
    assert.equal(x.t.frames[0]?.['op'], 'subscribed', 'the reply comes first');
    assert.deepEqual(x.t.offsets(CH), range(3, 8));
    await h.publishMany(1);
    await waitFor('publication 9', () => x.t.offsets(CH).includes(9));
    await turn();
    assert.deepEqual(x.t.offsets(CH), range(3, 9));
    assert.equal(await h.counter('gatehouse_recoveries_total'), 1);
  });
}

test('subscribe with a position history no longer holds answers recovered: false and continues live', async () => {
  const h = await Harness.start(new MemoryBackbone());
  const [first] = await h.publishMany(5, CH, { historySize: 2, historyTtlSeconds: 0 });
  const x = h.session();
  const reply = await h.subscribe(x, CH, { epoch: first?.epoch ?? '', offset: 1 });
  assert.equal(reply['recovered'], false);
  assert.equal(reply['offset'], 5);
  await h.publishMany(1);
  await waitFor('publication 6', () => x.t.offsets(CH).includes(6));
  await turn();
  assert.deepEqual(x.t.offsets(CH), [6], 'no partial replay');
});

// ---- backbone outages ----

test('a backbone that comes back up fills what was missed while it was down', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  await firstDelivered(h, x);
  bb.setState('down');
  await h.publishMany(2); // published by other nodes meanwhile: never delivered here
  bb.setState('up');
  await waitFor('the fill', () => x.t.offsets(CH).length === 3);
  await h.publishMany(1);
  await waitFor('publication 4', () => x.t.offsets(CH).includes(4));
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'pub 2', 'pub 3', 'pub 4']);
});

test('a backbone without history that comes back up reports a backbone gap', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone({ history: false, contiguousOffsets: false }));
  await firstDelivered(h, x);
  bb.setState('down');
  await h.publishMany(2);
  bb.setState('up');
  await h.publishMany(1);
  await waitFor('publication 4', () => x.t.offsets(CH).includes(4));
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'gap backbone', 'pub 4']);
});

test('an up without a preceding down is not an outage', async () => {
  const { h, x } = await oneSubscriber(new ScriptedBackbone());
  const reads = h.backbone.historyReads;
  h.backbone.setState('up');
  await turn();
  assert.equal(h.backbone.historyReads, reads, 'no history read');
  assert.deepEqual(story(x.t), []);
});

test('a fill that failed while the backbone was down is retried when it comes back up', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  const p1 = await firstDelivered(h, x);
  bb.setState('down');
  const [, p3] = await h.publishMany(2);
  // A publication that reached this node during the outage reveals the hole; history is away.
  bb.historyError = new BackboneUnavailableError('down');
  const reads = bb.historyReads;
  bb.deliver(p3 as Publication);
  await waitFor('the failed fill', () => bb.historyReads === reads + 1);
  await turn();
  assert.deepEqual(story(x.t), ['pub 1'], 'no gap reported while the hole may still be filled');
  bb.historyError = undefined;
  bb.setState('up');
  await waitFor('the fill after the outage', () => x.t.offsets(CH).length === 3);
  await turn();
  assert.deepEqual(story(x.t), ['pub 1', 'pub 2', 'pub 3']);
  assert.equal(p1?.epoch, p3?.epoch);
});

test('a replay that would not fit the outbound queue is refused with recovered: false, never cut as a slow consumer', async () => {
  const h = await Harness.start(new MemoryBackbone(), { maxQueueBytes: 64 * 1024 });
  const big = JSON.stringify('z'.repeat(4000));
  const first = await h.backbone.publish(CH, big, KEEP);
  for (let i = 0; i < 20; i++) await h.backbone.publish(CH, big, KEEP);
  const x = h.session();
  const reply = await h.subscribe(x, CH, { epoch: first.epoch, offset: first.offset });
  await turn();
  assert.equal(reply['recovered'], false);
  assert.deepEqual(x.t.offsets(CH), []);
  assert.equal(h.slow.length, 0);
  // A replay that fits is still replayed, its frames shared between the recovering clients.
  const y = h.session();
  const z = h.session();
  const near = { epoch: first.epoch, offset: first.offset + 15 };
  assert.equal((await h.subscribe(y, CH, near))['recovered'], true);
  assert.equal((await h.subscribe(z, CH, near))['recovered'], true);
  await turn();
  assert.deepEqual(y.t.offsets(CH), range(first.offset + 16, first.offset + 20));
  const chunksY = y.t.writes.flatMap((w) => w.chunks);
  const chunksZ = z.t.writes.flatMap((w) => w.chunks);
  assert.ok(chunksY[1] !== undefined && chunksY[1] === chunksZ[1], 'the same Buffer for both recovering clients');
});

test('a connection past the high-water mark gets no writes until it drains; then one write carries what waited', async () => {
  const { h, x } = await oneSubscriber(new MemoryBackbone());
  x.t.bufferedBytes = HIGH_WATER_BYTES + 1;
  x.t.writes.length = 0;
  await h.publishMany(3);
  await turn();
  await turn();
  assert.equal(x.t.writes.length, 0, 'held while the transport is past the mark');
  assert.equal(x.s.queuedCount, 3);
  await h.publishMany(2);
  await turn();
  assert.equal(x.t.writes.length, 0);
  x.t.drain();
  await waitFor('the held queue to be written', () => x.t.writes.length > 0);
  assert.equal(x.t.writes.length, 1, 'one write for everything that waited');
  assert.equal(x.t.offsets(CH).length, 5);
  assert.equal(x.s.queuedCount, 0);
});

test('a session that subscribes while a fill from history runs gets nothing at or below its subscribed position', async () => {
  const { h, x, bb } = await oneSubscriber(new ScriptedBackbone());
  const first = await firstDelivered(h, x);
  bb.lose = (p) => p.offset === first.offset + 1;
  const fill = gate();
  bb.hold = fill.promise;
  const reads = bb.historyReads;
  await h.publishMany(1);
  await h.publishMany(1);
  await waitFor('the fill to start', () => bb.historyReads > reads);
  // The newcomer's own read is answered at once, ahead of what the hub delivered.
  bb.hold = undefined;
  const y = h.session();
  const reply = await h.subscribe(y);
  assert.equal(reply['offset'], first.offset + 2);
  fill.open();
  await waitFor('the fill to reach the first subscriber', () => x.t.offsets(CH).length === 3);
  await h.publishMany(1);
  await waitFor('the next publication', () => y.t.offsets(CH).length > 0);
  assert.deepEqual(y.t.offsets(CH), [first.offset + 3], 'nothing at or below the subscribed position follows the reply');
  assert.deepEqual(x.t.offsets(CH), range(first.offset, first.offset + 3));
});

test('the replay cache keeps frames that own their memory, not slices of a shared pool', async () => {
  const { ReplayCache } = await import('../src/replay-cache.js');
  const cache = new ReplayCache(1 << 20);
  const pub: Publication = { channel: CH, epoch: 'e', offset: 1, ts: 1, data: '"small"' };
  const framing = { id: 3, message: (json: string) => Buffer.from(json) };
  const frame = cache.frame(pub, framing);
  assert.equal(frame.buffer.byteLength, frame.length, 'a frame of its own, counted as what it holds');
  assert.equal(cache.size, frame.length);
  assert.equal(cache.frame(pub, framing), frame, 'shared on the next use');
});
