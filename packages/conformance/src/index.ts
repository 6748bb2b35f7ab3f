/**
 * The backbone conformance suite. One set of node:test tests, parameterized by a factory, runs
 * unchanged against every adapter with a real server behind it, so "implements Backbone" means
 * the semantics in @gatehouse/backbone-kit's contract, not only the method signatures.
 *
 * Every wait has a deadline and waits for the event it means; nothing sleeps. Channel names carry
 * a random suffix per run so concurrent runs against a shared server never see each other.
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type {
  Backbone,
  BackboneHandler,
  BackboneState,
  ControlMessage,
  HistoryResult,
  Publication,
  PublishOptions,
} from '@gatehouse/backbone-kit';
import { isValidChannel } from '@gatehouse/protocol';
import { waitFor, withDeadline } from '@gatehouse/testkit';
import { testHistoryBarrier } from './barrier.js';
export * from './control.js';
export * from './presence.js';

/** Two backbone instances ("nodes") on the same server, not started yet. */
export interface BackbonePair {
  readonly a: Backbone;
  readonly b: Backbone;
  /** Closes anything the factory opened besides `a` and `b` and removes what it created. */
  cleanup(): Promise<void>;
}

/** Makes a fresh pair. Adapters with `capabilities.shared` false must put both on one bus. */
export type BackbonePairFactory = () => Promise<BackbonePair>;

/** Knobs for running the suite. */
export interface ConformanceOptions {
  /** Skip the whole suite with this reason (from `serviceSkipReason`). */
  readonly skip?: string | undefined;
  /** Deadline for each awaited event, ms. Default 10 000. */
  readonly timeoutMs?: number;
}

/** Records what a backbone calls back, per channel, so tests can wait for what they mean. */
export class RecordingHandler implements BackboneHandler {
  /** Every state change, in order. */
  readonly states: BackboneState[] = [];
  /** The error reported with each state change (same index as `states`). */
  readonly errors: (Error | undefined)[] = [];
  /** Every control message received, in arrival order (the node's own included). */
  readonly controls: ControlMessage[] = [];
  private readonly byChannel = new Map<string, Publication[]>();

  onPublication(pub: Publication): void {
    let list = this.byChannel.get(pub.channel);
    if (!list) this.byChannel.set(pub.channel, (list = []));
    list.push(pub);
  }

  onStateChange(state: BackboneState, error?: Error): void {
    this.states.push(state);
    this.errors.push(error);
  }

  onControl(msg: ControlMessage): void {
    this.controls.push(msg);
  }

  /** Resolves with the first control message received that `match` accepts. */
  async waitControl(what: string, match: (msg: ControlMessage) => boolean, timeoutMs: number): Promise<ControlMessage> {
    await waitFor(what, () => this.controls.some(match), timeoutMs, 5);
    const found = this.controls.find(match);
    assert.ok(found, what);
    return found;
  }

  /** The publications received on `channel`, in arrival order. */
  of(channel: string): readonly Publication[] {
    return this.byChannel.get(channel) ?? [];
  }

  /** Resolves once `channel` holds at least `n` publications. */
  async waitCount(channel: string, n: number, who: string, timeoutMs: number): Promise<readonly Publication[]> {
    await waitFor(`${n} publication(s) on ${channel} at ${who}`, () => this.of(channel).length >= n, timeoutMs, 5);
    return this.of(channel);
  }
}

/**
 * Asserts that `states` shows an outage and a recovery, each transition reported once: it starts
 * `up`, passes through `down`, ends `up` (ignoring a final `closed`), and never repeats a state.
 * A second brief outage (a machine under load missing pings) is allowed; a silent one is not.
 */
export function assertDownThenUp(states: readonly BackboneState[], what: string): void {
  const s = states.at(-1) === 'closed' ? states.slice(0, -1) : states;
  assert.equal(s[0], 'up', `${what}: starts up (${states.join(' -> ')})`);
  assert.ok(s.includes('down'), `${what}: reports down (${states.join(' -> ')})`);
  assert.equal(s.at(-1), 'up', `${what}: ends up (${states.join(' -> ')})`);
  for (let i = 1; i < s.length; i++) assert.notEqual(s[i], s[i - 1], `${what}: a transition reported twice (${states.join(' -> ')})`);
}

/** A channel name no other run uses: `conformance:<run>-<label>-<n>`. */
export function uniqueChannel(label: string): string {
  const name = `conformance:${RUN}-${label}-${++channelSeq}`;
  if (!isValidChannel(name)) throw new TypeError(`label ${JSON.stringify(label)} does not make a valid channel name`);
  return name;
}

const RUN = randomBytes(4).toString('hex');
let channelSeq = 0;

const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 300 };

/** Publishes one small JSON object and returns the resolved position. */
function pub(b: Backbone, channel: string, body: Record<string, unknown>, opts: PublishOptions = KEEP): Promise<Publication> {
  return b.publish(channel, JSON.stringify(body), opts);
}

function sameDelivery(got: Publication, sent: Publication, what: string): void {
  assert.equal(got.channel, sent.channel, `${what}: channel`);
  assert.equal(got.epoch, sent.epoch, `${what}: epoch`);
  assert.equal(got.offset, sent.offset, `${what}: offset`);
  assert.deepEqual(JSON.parse(got.data), JSON.parse(sent.data), `${what}: data`);
  assert.ok(Number.isFinite(got.ts) && Math.abs(got.ts - Date.now()) < 3_600_000, `${what}: ts ${got.ts} is a plausible time`);
}

function assertStrictlyRising(offsets: readonly number[], contiguous: boolean, what: string): void {
  for (let i = 1; i < offsets.length; i++) {
    const prev = offsets[i - 1] as number;
    const cur = offsets[i] as number;
    assert.ok(cur > prev, `${what}: offset ${cur} after ${prev} is not rising (${offsets.join(',')})`);
    if (contiguous) assert.equal(cur, prev + 1, `${what}: offsets are declared contiguous (${offsets.join(',')})`);
  }
}

/**
 * Registers the conformance tests for one adapter under `describe("backbone conformance: <name>")`.
 * The factory is called once for the shared pair (started in a `before` hook) and once more for
 * the test that closes a backbone.
 */
export function runBackboneConformance(name: string, factory: BackbonePairFactory, options: ConformanceOptions = {}): void {
  const timeoutMs = options.timeoutMs ?? 10_000;
  describe(`backbone conformance: ${name}`, { skip: options.skip ?? false }, () => {
    let pair: BackbonePair;
    const recA = new RecordingHandler();
    const recB = new RecordingHandler();
    let a: Backbone;
    let b: Backbone;

    before(async () => {
      pair = await factory();
      a = pair.a;
      b = pair.b;
      await withDeadline(`${name}: both backbones to start`, Promise.all([a.start(recA), b.start(recB)]), timeoutMs);
    });

    after(async () => {
      if (!pair) return;
      await Promise.allSettled([pair.a.close(), pair.b.close()]);
      await pair.cleanup();
    });

    // Read when a test runs (after `before` built the pair) to decide on a visible skip.
    const caps = () => a.capabilities;
    const notSequenced = 'capabilities.sequenced is false: this backbone has no offsets or history to check';
    const noHistory = 'capabilities.history is false: this backbone keeps no history';

    test('declares consistent capabilities', () => {
      assert.equal(typeof a.kind, 'string');
      assert.ok(a.kind.length > 0, 'kind is a non-empty name');
      const c = caps();
      if (c.contiguousOffsets) assert.ok(c.sequenced, 'contiguous offsets imply a sequenced backbone');
      if (c.history) assert.ok(c.sequenced, 'history implies a sequenced backbone');
      if (c.durable) assert.ok(c.history, 'durable history implies history');
    });

    test("start reaches 'up' and reports it", () => {
      assert.equal(a.state, 'up');
      assert.equal(b.state, 'up');
      assert.equal(recA.states.at(-1), 'up', `node a reported ${recA.states.join(' -> ')}`);
      assert.equal(recB.states.at(-1), 'up', `node b reported ${recB.states.join(' -> ')}`);
    });

    test('delivers a publication to the publishing node itself', async () => {
      const ch = uniqueChannel('self');
      await a.subscribe(ch);
      const sent = await pub(a, ch, { hello: 'self' });
      assert.equal(sent.channel, ch);
      const got = await recA.waitCount(ch, 1, 'node a', timeoutMs);
      sameDelivery(got[0] as Publication, sent, 'self-delivery');
    });

    test('delivers a publication to the other node, and not to a node that did not subscribe', async () => {
      const ch = uniqueChannel('other');
      await b.subscribe(ch);
      const sent = await pub(a, ch, { hello: 'b' });
      const got = await recB.waitCount(ch, 1, 'node b', timeoutMs);
      sameDelivery(got[0] as Publication, sent, 'delivery to node b');
      // Node a never subscribed: a backbone that delivers everything everywhere fails here.
      const marker = uniqueChannel('other-marker');
      await a.subscribe(marker);
      await pub(b, marker, { marker: true });
      await recA.waitCount(marker, 1, 'node a', timeoutMs);
      assert.equal(recA.of(ch).length, 0, 'node a received a channel it never subscribed to');
    });

    test('keeps per-channel order under concurrent publishes from both nodes', async () => {
      const ch = uniqueChannel('order');
      const n = 40;
      await Promise.all([a.subscribe(ch), b.subscribe(ch)]);
      const calls: Promise<Publication>[] = [];
      for (let i = 0; i < n; i++) {
        calls.push(pub(a, ch, { from: 'a', i }));
        calls.push(pub(b, ch, { from: 'b', i }));
      }
      const sent = await Promise.all(calls);
      for (const [who, rec] of [
        ['node a', recA],
        ['node b', recB],
      ] as const) {
        const got = (await rec.waitCount(ch, 2 * n, who, timeoutMs)).slice();
        assert.equal(got.length, 2 * n, `${who} received duplicates`);
        const seen = new Set(got.map((p) => p.data));
        assert.equal(seen.size, 2 * n, `${who} received a publication twice`);
        // Each publisher's own publications arrive in the order it made them, on every backbone.
        for (const from of ['a', 'b']) {
          const order = got
            .map((p) => JSON.parse(p.data) as { from: string; i: number })
            .filter((d) => d.from === from)
            .map((d) => d.i);
          assert.deepEqual(order, [...Array(n).keys()], `${who}: publisher ${from}'s order`);
        }
        if (caps().sequenced) {
          assertStrictlyRising(
            got.map((p) => p.offset),
            caps().contiguousOffsets,
            `${who} delivery order`,
          );
          const byOffset = new Map(sent.map((p) => [p.offset, p]));
          for (const p of got)
            sameDelivery(
              p,
              byOffset.get(p.offset) ?? assert.fail(`${who}: offset ${p.offset} was never returned by publish`),
              `${who} offset ${p.offset}`,
            );
        }
      }
      if (caps().sequenced) {
        assert.deepEqual(
          recA.of(ch).map((p) => p.offset),
          recB.of(ch).map((p) => p.offset),
          'both nodes see one order',
        );
      }
    });

    test('assigns strictly rising offsets within a channel (contiguous when declared)', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      const ch = uniqueChannel('offsets');
      const sent: Publication[] = [];
      for (let i = 0; i < 10; i++) sent.push(await pub(i % 2 ? b : a, ch, { i }));
      assert.equal(new Set(sent.map((p) => p.epoch)).size, 1, 'one epoch for a channel that was not reset');
      assertStrictlyRising(
        sent.map((p) => p.offset),
        caps().contiguousOffsets,
        'publish results',
      );
      assert.ok((sent[0] as Publication).offset >= 1, 'the first offset is at least 1');
    });

    test('never gives two publishers the same offset', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      const ch = uniqueChannel('unique');
      const calls: Promise<Publication>[] = [];
      for (let i = 0; i < 25; i++) calls.push(pub(a, ch, { from: 'a', i }), pub(b, ch, { from: 'b', i }));
      const sent = await Promise.all(calls);
      assert.equal(new Set(sent.map((p) => p.offset)).size, sent.length, 'offsets are unique');
      assert.equal(new Set(sent.map((p) => p.epoch)).size, 1, 'one epoch');
      if (caps().contiguousOffsets) {
        const sorted = sent.map((p) => p.offset).sort((x, y) => x - y);
        assertStrictlyRising(sorted, true, 'offsets of concurrent publishes');
      }
    });

    test('subscribe is idempotent: a double subscribe delivers once, one unsubscribe ends it', async () => {
      const ch = uniqueChannel('double');
      await Promise.all([a.subscribe(ch), a.subscribe(ch)]);
      await a.subscribe(ch);
      const first = await pub(b, ch, { n: 1 });
      const second = await pub(b, ch, { n: 2 });
      await recA.waitCount(ch, 2, 'node a', timeoutMs);
      // A third publication is the sync point: anything a duplicate subscription would deliver for
      // the first two arrives before it (per-channel order).
      const third = await pub(b, ch, { n: 3 });
      await waitFor(`publication 3 on ${ch} at node a`, () => recA.of(ch).some((p) => JSON.parse(p.data).n === 3), timeoutMs, 5);
      const counts = [first, second, third].map((s) => recA.of(ch).filter((p) => p.data === s.data).length);
      assert.deepEqual(counts, [1, 1, 1], 'each publication delivered exactly once');

      // Adapters never count: one unsubscribe ends the channel however often it was subscribed.
      await a.unsubscribe(ch);
      await b.subscribe(ch);
      const sync = uniqueChannel('double-sync');
      await a.subscribe(sync);
      await pub(b, ch, { n: 4 });
      await pub(b, sync, { sync: true });
      await recB.waitCount(ch, 1, 'node b', timeoutMs);
      await recA.waitCount(sync, 1, 'node a', timeoutMs);
      assert.equal(recA.of(ch).length, 3, 'node a still received the channel after unsubscribe');
    });

    test('unsubscribe stops delivery, is idempotent, and a later subscribe resumes', async () => {
      const ch = uniqueChannel('unsub');
      const sync = uniqueChannel('unsub-sync');
      await Promise.all([a.subscribe(ch), b.subscribe(ch), a.subscribe(sync)]);
      await pub(b, ch, { n: 1 });
      await recA.waitCount(ch, 1, 'node a', timeoutMs);
      await a.unsubscribe(ch);
      await a.unsubscribe(ch);
      await a.unsubscribe(uniqueChannel('never-subscribed'));
      await pub(b, ch, { n: 2 });
      await pub(b, sync, { sync: true });
      // Sync point: node b saw the second publication and node a saw a later one elsewhere.
      await recB.waitCount(ch, 2, 'node b', timeoutMs);
      await recA.waitCount(sync, 1, 'node a', timeoutMs);
      assert.equal(recA.of(ch).length, 1, 'node a received a publication after unsubscribing');

      await a.subscribe(ch);
      const again = await pub(b, ch, { n: 3 });
      const got = await recA.waitCount(ch, 2, 'node a', timeoutMs);
      assert.deepEqual(JSON.parse((got[1] as Publication).data), JSON.parse(again.data), 'delivery resumed with the next publication');
    });

    test('an unknown channel has a stable position on every node', async (t) => {
      const ch = uniqueChannel('unknown');
      const h1 = await a.history(ch, undefined, 10);
      const h2 = await b.history(ch, undefined, 10);
      const h3 = await a.history(ch, undefined, 10);
      if (!caps().sequenced) {
        for (const h of [h1, h2, h3]) assert.deepEqual([h.epoch, h.offset, h.publications.length], ['', 0, 0]);
        return t.skip(notSequenced);
      }
      assert.equal(h1.offset, 0, 'offset of a channel never published to');
      assert.equal(h1.publications.length, 0);
      assert.equal(h1.complete, true);
      assert.equal(typeof h1.epoch, 'string');
      assert.ok(h1.epoch.length > 0 && h1.epoch.length <= 64, `epoch ${JSON.stringify(h1.epoch)} has 1-64 characters`);
      assert.deepEqual([h2.epoch, h2.offset], [h1.epoch, h1.offset], 'node b sees the same position');
      assert.deepEqual([h3.epoch, h3.offset], [h1.epoch, h1.offset], 'a second read sees the same position');
      if (!caps().history) return;
      // Publications made after that position come back from it, exactly.
      const sent = await pub(b, ch, { first: true });
      assert.equal(sent.epoch, h1.epoch, 'the first publication keeps the epoch the position promised');
      const h4 = await a.history(ch, { epoch: h1.epoch, offset: 0 }, 10);
      assert.equal(h4.complete, true, 'recovery from offset 0 of an untouched channel is complete');
      assert.equal(h4.publications.length, 1);
      sameDelivery(h4.publications[0] as Publication, sent, 'recovered publication');
    });

    test('history returns exactly the publications after an offset, in order', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      if (!caps().history) return t.skip(noHistory);
      const ch = uniqueChannel('history');
      const sent: Publication[] = [];
      for (let i = 0; i < 6; i++) sent.push(await pub(i % 2 ? b : a, ch, { i }));
      const last = sent[5] as Publication;
      const h = await b.history(ch, { epoch: last.epoch, offset: (sent[1] as Publication).offset }, 100);
      assert.equal(h.complete, true);
      assert.deepEqual([h.epoch, h.offset], [last.epoch, last.offset], 'position is the newest publication');
      assert.equal(h.publications.length, 4);
      h.publications.forEach((p, i) => sameDelivery(p, sent[i + 2] as Publication, `history[${i}]`));

      const pos = await a.history(ch, undefined, 100);
      assert.deepEqual([pos.epoch, pos.offset, pos.publications.length, pos.complete], [last.epoch, last.offset, 0, true], 'position only');

      const none = await a.history(ch, { epoch: last.epoch, offset: last.offset }, 100);
      assert.deepEqual([none.publications.length, none.complete], [0, true], 'nothing after the newest publication');

      const limited = await a.history(ch, { epoch: last.epoch, offset: (sent[0] as Publication).offset }, 2);
      assert.ok(limited.publications.length <= 2, 'at most `limit` publications come back');
      assert.equal(limited.complete, false, 'five missed publications do not fit a limit of 2');
    });

    test('history is incomplete when the epoch does not match', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      const ch = uniqueChannel('epoch');
      const sent = await pub(a, ch, { i: 1 });
      const h = await b.history(ch, { epoch: `x${sent.epoch}`.slice(0, 64), offset: 0 }, 100);
      assert.equal(h.complete, false);
      assert.deepEqual([h.epoch, h.offset], [sent.epoch, sent.offset], 'the current position comes back');
      assert.equal(h.publications.length, 0, 'nothing from another epoch is served');
    });

    test('history is incomplete once publications were trimmed past historySize', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      if (!caps().history) return t.skip(noHistory);
      const ch = uniqueChannel('trim');
      const opts: PublishOptions = { historySize: 3, historyTtlSeconds: 300 };
      const sent: Publication[] = [];
      for (let i = 0; i < 5; i++) sent.push(await pub(a, ch, { i }, opts));
      const epoch = (sent[0] as Publication).epoch;
      const trimmed = await b.history(ch, { epoch, offset: (sent[0] as Publication).offset }, 100);
      assert.equal(trimmed.complete, false, 'four missed publications, three kept');
      const kept = await b.history(ch, { epoch, offset: (sent[1] as Publication).offset }, 100);
      assert.equal(kept.complete, true, 'three missed publications, three kept');
      assert.equal(kept.publications.length, 3);
      kept.publications.forEach((p, i) => sameDelivery(p, sent[i + 2] as Publication, `kept[${i}]`));
    });

    test('history is incomplete once publications are older than historyTtlSeconds', async (t) => {
      if (!caps().sequenced) return t.skip(notSequenced);
      if (!caps().history) return t.skip(noHistory);
      const ch = uniqueChannel('ttl');
      const opts: PublishOptions = { historySize: 10, historyTtlSeconds: 1 };
      const started = Date.now();
      const first = await pub(a, ch, { i: 1 }, opts);
      await pub(a, ch, { i: 2 }, opts);
      const since = { epoch: first.epoch, offset: first.offset };
      const fresh = await b.history(ch, since, 100);
      // Only meaningful while the second is not over; a stalled machine skips this one check
      // rather than fail on timing.
      if (Date.now() - started < 900) assert.equal(fresh.complete, true, 'fresh history is complete');
      await waitFor('history to expire after 1 s', async () => !(await b.history(ch, since, 100)).complete, timeoutMs + 2_000, 100);
    });

    test('an unsequenced backbone reports every recovery as incomplete', async (t) => {
      if (caps().sequenced) return t.skip('capabilities.sequenced is true: covered by the history tests');
      const ch = uniqueChannel('unsequenced');
      const sent = await pub(a, ch, { i: 1 });
      assert.deepEqual([sent.epoch, sent.offset], ['', 0], 'unsequenced publications carry epoch "" and offset 0');
      const h: HistoryResult = await b.history(ch, { epoch: '', offset: 0 }, 100);
      assert.equal(h.complete, false, 'no history: a recovery is always a gap');
      assert.equal(h.publications.length, 0);
    });

    testHistoryBarrier({ reader: () => a, recorder: () => recA, publisher: () => b, timeoutMs });

    test('publish rejects after close; close is idempotent; the other node keeps working', async () => {
      const extra = await factory();
      try {
        const ra = new RecordingHandler();
        const rb = new RecordingHandler();
        await withDeadline('second pair to start', Promise.all([extra.a.start(ra), extra.b.start(rb)]), timeoutMs);
        const ch = uniqueChannel('closed');
        await extra.b.subscribe(ch);
        await extra.a.close();
        await extra.a.close();
        assert.equal(extra.a.state, 'closed');
        await withDeadline(
          'publish on a closed backbone to reject',
          assert.rejects(extra.a.publish(ch, '{"late":true}', KEEP), 'publish on a closed backbone must reject'),
          timeoutMs,
        );
        const sent = await pub(extra.b, ch, { still: 'up' });
        const got = await rb.waitCount(ch, 1, 'the node that stayed open', timeoutMs);
        sameDelivery(got[0] as Publication, sent, 'delivery after the other node closed');
        assert.ok(
          got.every((p) => !p.data.includes('late')),
          'the rejected publication was not delivered',
        );
      } finally {
        await Promise.allSettled([extra.a.close(), extra.b.close()]);
        await extra.cleanup();
      }
    });
  });
}
