/**
 * The control-plane conformance suite: control messages (`sendControl`/`onControl`) and fleet
 * records (`putRecord`/`records`), run unchanged against every adapter with a real server behind
 * it, beside `runBackboneConformance`.
 *
 * The factory makes a FLEET (one namespace: key prefix, subject prefix, stream or topic) from
 * which a test takes as many nodes as it needs: two that run throughout, one started later to
 * read the records the others left, one closed under a test. Each call to the factory must give a
 * fleet of its own, so that two fleets on one server can be shown never to hear each other.
 *
 * Every wait has a deadline and waits for the event it means; nothing sleeps.
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BackboneUnavailableError,
  CONTROL_MAX_BYTES,
  type Backbone,
  type BackboneHandler,
  type BackboneState,
  type ControlMessage,
  type ControlRecord,
  type Publication,
} from '@gatehouse/backbone-kit';
import { waitFor, withDeadline } from '@gatehouse/testkit';
import { uniqueChannel, type ConformanceOptions } from './index.js';
import { runPresenceConformance } from './presence.js';

/** One fleet on a real server: every node it makes shares the fleet's namespace. */
export interface ControlFleet {
  /** A new backbone instance (a node) of this fleet, not started. */
  node(): Backbone;
  /** Closes anything the factory opened besides the nodes and removes what it created. */
  cleanup(): Promise<void>;
}

/** Makes a fresh fleet, in a namespace no other call (and no other run) uses. */
export type ControlFleetFactory = () => Promise<ControlFleet>;

/** Records everything a backbone calls back, in arrival order, for the control-plane tests. */
export class ControlRecorder implements BackboneHandler {
  /** Every control message, in arrival order. */
  readonly controls: ControlMessage[] = [];
  /** Every publication on any channel, in arrival order. */
  readonly publications: Publication[] = [];
  /** Every state change, in order. */
  readonly states: BackboneState[] = [];

  onPublication(pub: Publication): void {
    this.publications.push(pub);
  }

  onStateChange(state: BackboneState): void {
    this.states.push(state);
  }

  onControl(msg: ControlMessage): void {
    this.controls.push(msg);
  }

  /** The control messages whose data carries `{"id": id}` (how the tests tag what they send). */
  withId(id: string): ControlMessage[] {
    return this.controls.filter((m) => idOf(m) === id);
  }

  /** Resolves with the first control message tagged `id`, once it arrived. */
  async waitId(id: string, who: string, timeoutMs: number): Promise<ControlMessage> {
    return waitFor(`control message ${id} at ${who}`, () => this.withId(id)[0], timeoutMs, 5);
  }
}

function idOf(msg: ControlMessage): string | undefined {
  try {
    const v: unknown = JSON.parse(msg.data);
    return typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string' ? (v as { id: string }).id : undefined;
  } catch {
    return undefined;
  }
}

const RUN = randomBytes(4).toString('hex');
let seq = 0;

/** A tag no other message of any run carries. */
function freshId(label: string): string {
  return `${RUN}-${label}-${++seq}`;
}

/** A record kind no other run uses (kinds are 1-64 characters of a-z 0-9 . _ -). */
function freshKind(label: string): string {
  return `conf.${RUN}.${label}.${++seq}`;
}

/** A control message tagged with a fresh id; `extra` goes into the data beside the id. */
function tagged(
  type: string,
  from: string,
  label: string,
  extra: Record<string, unknown> = {},
  to?: string,
): { msg: ControlMessage; id: string } {
  const id = freshId(label);
  const data = JSON.stringify({ id, ...extra });
  return { id, msg: to === undefined ? { type, from, data } : { type, from, to, data } };
}

/** Sorted by key, so two answers compare regardless of order. */
function byKey(records: readonly ControlRecord[]): ControlRecord[] {
  return [...records]
    .map((r) => ({ key: r.key, value: r.value, expiresAt: r.expiresAt }))
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

/**
 * Asserts that `call` rejects with an input error whose message names `field`: an Error, not a
 * BackboneUnavailableError (the backbone is up; the input is what is wrong).
 */
async function rejectsInput(call: () => Promise<unknown>, field: string, what: string): Promise<void> {
  await assert.rejects(
    async () => call(),
    (err: unknown) => {
      assert.ok(err instanceof Error, `${what}: rejects with an Error`);
      assert.ok(!(err instanceof BackboneUnavailableError), `${what}: an input error, not unavailability (${err.message})`);
      assert.match(err.message, new RegExp(`\\b${field}\\b`), `${what}: the message names "${field}" (${err.message})`);
      return true;
    },
    `${what} must reject`,
  );
}

/**
 * Registers the control-plane tests for one adapter under
 * `describe("control plane conformance: <name>")`. The factory is called once for the fleet the
 * tests share (two nodes started in a `before` hook) and once more for the fleet that must not
 * hear the first.
 */
export function runControlConformance(name: string, factory: ControlFleetFactory, options: ConformanceOptions = {}): void {
  const timeoutMs = options.timeoutMs ?? 10_000;
  describe(`control plane conformance: ${name}`, { skip: options.skip ?? false }, () => {
    const fleets: ControlFleet[] = [];
    const opened: Backbone[] = [];
    let fleet: ControlFleet;
    let a: Backbone;
    let b: Backbone;
    const recA = new ControlRecorder();
    const recB = new ControlRecorder();

    /** A node of `f`, started with `rec`; closed after the suite whatever happens. */
    async function started(f: ControlFleet, rec: ControlRecorder, who: string): Promise<Backbone> {
      const node = f.node();
      opened.push(node);
      await withDeadline(`${name}: ${who} to start`, node.start(rec), timeoutMs);
      return node;
    }

    before(async () => {
      fleet = await factory();
      fleets.push(fleet);
      [a, b] = await Promise.all([started(fleet, recA, 'node a'), started(fleet, recB, 'node b')]);
    });

    after(async () => {
      await Promise.allSettled(opened.map((n) => n.close()));
      await Promise.allSettled(fleets.map((f) => f.cleanup()));
    });

    const durable = () => a.capabilities.durableRecords;

    test('declares durableRecords', () => {
      assert.equal(typeof a.capabilities.durableRecords, 'boolean');
    });

    test('a control message sent by either node reaches both, the sender included, once each', async () => {
      const fromA = tagged('conformance.ping', 'node-a', 'both-a', { n: 1, text: 'é ✓' });
      const fromB = tagged('conformance.ping', 'node-b', 'both-b', { n: 2 });
      await Promise.all([a.sendControl(fromA.msg), b.sendControl(fromB.msg)]);
      for (const [who, rec] of [
        ['node a', recA],
        ['node b', recB],
      ] as const) {
        for (const sent of [fromA, fromB]) {
          const got = await rec.waitId(sent.id, who, timeoutMs);
          assert.equal(got.type, sent.msg.type, `${who}: type`);
          assert.equal(got.from, sent.msg.from, `${who}: from`);
          assert.equal(got.to, undefined, `${who}: no "to" on a message for every node`);
          assert.deepEqual(JSON.parse(got.data), JSON.parse(sent.msg.data), `${who}: data`);
        }
      }
      // A later message from each sender is the sync point: a duplicate of the first two would
      // have had every chance to arrive by then.
      const syncA = tagged('conformance.sync', 'node-a', 'both-sync-a');
      const syncB = tagged('conformance.sync', 'node-b', 'both-sync-b');
      await Promise.all([a.sendControl(syncA.msg), b.sendControl(syncB.msg)]);
      for (const [who, rec] of [
        ['node a', recA],
        ['node b', recB],
      ] as const) {
        await rec.waitId(syncA.id, who, timeoutMs);
        await rec.waitId(syncB.id, who, timeoutMs);
        assert.deepEqual([rec.withId(fromA.id).length, rec.withId(fromB.id).length], [1, 1], `${who}: each message delivered once`);
      }
    });

    test('`to` is carried to the node it names', async () => {
      const sent = tagged('conformance.direct', 'node-a', 'to', { direct: true }, 'node-b');
      await a.sendControl(sent.msg);
      const got = await recB.waitId(sent.id, 'node b', timeoutMs);
      assert.equal(got.to, 'node-b');
      assert.equal(got.from, 'node-a');
      assert.equal(got.type, 'conformance.direct');
    });

    test('the largest control payload is delivered intact', async () => {
      const id = freshId('large');
      // Exactly CONTROL_MAX_BYTES bytes of JSON: {"id":"…","pad":"xxx…"}.
      const head = JSON.stringify({ id, pad: '' });
      const data = head.slice(0, -2) + 'x'.repeat(CONTROL_MAX_BYTES - Buffer.byteLength(head)) + '"}';
      assert.equal(Buffer.byteLength(data), CONTROL_MAX_BYTES);
      await a.sendControl({ type: 'conformance.large', from: 'node-a', data });
      const got = await recB.waitId(id, 'node b', timeoutMs);
      assert.deepEqual(JSON.parse(got.data), JSON.parse(data), 'the payload arrives unchanged');
    });

    test('malformed control messages and records are rejected with a clear error, and nothing is sent', async () => {
      const ok = { type: 'conformance.bad', from: 'node-a', data: '{}' };
      const bad = (m: Record<string, unknown>) => m as unknown as ControlMessage;
      const tooBig = JSON.stringify('x'.repeat(CONTROL_MAX_BYTES - 1));
      const cases: [string, ControlMessage][] = [
        ['type', bad({ ...ok, type: '' })],
        ['type', bad({ ...ok, type: 'Upper.Case' })],
        ['type', bad({ ...ok, type: 'has space' })],
        ['type', bad({ ...ok, type: 't'.repeat(65) })],
        ['type', bad({ ...ok, type: 42 })],
        ['from', bad({ ...ok, from: 7 })],
        ['to', bad({ ...ok, to: 7 })],
        ['data', bad({ ...ok, data: '' })],
        ['data', bad({ ...ok, data: '{not json' })],
        ['data', bad({ ...ok, data: { an: 'object' } })],
        ['data', bad({ ...ok, data: tooBig })],
      ];
      for (const [field, msg] of cases)
        await rejectsInput(() => a.sendControl(msg), field, `sendControl(${JSON.stringify(msg).slice(0, 60)})`);

      const kind = freshKind('bad');
      const good: ControlRecord = { key: 'k', value: '{}', expiresAt: Date.now() + 60_000 };
      const rec = (r: Record<string, unknown>) => r as unknown as ControlRecord;
      const recordCases: [string, string, ControlRecord][] = [
        ['kind', '', good],
        ['kind', 'Upper', good],
        ['kind', 'k'.repeat(65), good],
        ['kind', 'has space', good],
        ['key', kind, rec({ ...good, key: '' })],
        ['key', kind, rec({ ...good, key: 'k'.repeat(257) })],
        ['key', kind, rec({ ...good, key: 5 })],
        ['value', kind, rec({ ...good, value: '' })],
        ['value', kind, rec({ ...good, value: '{not json' })],
        ['value', kind, rec({ ...good, value: tooBig })],
        ['expiresAt', kind, rec({ ...good, expiresAt: Number.NaN })],
        ['expiresAt', kind, rec({ ...good, expiresAt: Number.POSITIVE_INFINITY })],
        ['expiresAt', kind, rec({ ...good, expiresAt: String(good.expiresAt) })],
      ];
      for (const [field, k, r] of recordCases)
        await rejectsInput(
          () => a.putRecord(k, r),
          field,
          `putRecord(${JSON.stringify(k).slice(0, 20)}, ${JSON.stringify(r).slice(0, 60)})`,
        );
      for (const k of ['', 'Upper', 'k'.repeat(65)])
        await rejectsInput(() => a.records(k), 'kind', `records(${JSON.stringify(k).slice(0, 20)})`);

      // Nothing of the refused input travelled: a valid message sent after it is the only one.
      const sync = tagged('conformance.bad', 'node-a', 'bad-sync');
      await a.sendControl(sync.msg);
      await recB.waitId(sync.id, 'node b', timeoutMs);
      assert.equal(recB.controls.filter((m) => m.type === 'conformance.bad').length, 1, 'no refused message was delivered');
      assert.deepEqual(await a.records(kind), [], 'no refused record was kept');
    });

    test('control messages never appear as publications on any data channel', async () => {
      // A unique data channel, and names an adapter might be tempted to carry control traffic on.
      const data = uniqueChannel('ctl-data');
      const lookalikes = ['control:all', 'control:node-a', 'gatehouse:control', 'gh:control', '_control:all', 'sys:control'];
      await Promise.all([a, b].flatMap((n) => [data, ...lookalikes].map((ch) => n.subscribe(ch))));
      const before = [recA.publications.length, recB.publications.length];
      const sent = [tagged('conformance.hidden', 'node-a', 'hidden-1'), tagged('conformance.hidden', 'node-b', 'hidden-2', {}, 'node-a')];
      await a.sendControl((sent[0] as { msg: ControlMessage }).msg);
      await b.sendControl((sent[1] as { msg: ControlMessage }).msg);
      for (const s of sent) await recA.waitId(s.id, 'node a', timeoutMs);
      await recB.waitId((sent[0] as { id: string }).id, 'node b', timeoutMs);
      // The sync publication comes after every control message arrived.
      const sync = await a.publish(data, '{"sync":true}', { historySize: 10, historyTtlSeconds: 60 });
      for (const [who, rec, from] of [
        ['node a', recA, before[0]],
        ['node b', recB, before[1]],
      ] as const) {
        await waitFor(`the sync publication at ${who}`, () => rec.publications.some((p) => p.channel === data), timeoutMs, 5);
        const got = rec.publications.slice(from);
        assert.deepEqual(
          got.map((p) => [p.channel, p.data]),
          [[data, sync.data]],
          `${who}: the only publication is the sync one (control traffic leaked onto a data channel otherwise)`,
        );
      }
      await Promise.all([a, b].flatMap((n) => [data, ...lookalikes].map((ch) => n.unsubscribe(ch))));
    });

    test('records: put, replace by key, list; kinds are separate', async () => {
      const kind = freshKind('basic');
      const other = freshKind('other');
      const later = Date.now() + 300_000;
      const r1: ControlRecord = { key: 'token-1', value: '{"reason":"first"}', expiresAt: later };
      const r2: ControlRecord = { key: 'token-2', value: '{"reason":"second"}', expiresAt: later + 1_000 };
      await a.putRecord(kind, r1);
      await b.putRecord(kind, r2);
      await a.putRecord(other, { key: 'token-1', value: '"elsewhere"', expiresAt: later });
      if (!durable()) {
        assert.deepEqual(await a.records(kind), [], 'durableRecords is false: nothing is kept');
        assert.deepEqual(await b.records(kind), [], 'durableRecords is false: nothing is kept');
        return;
      }
      for (const [who, n] of [
        ['node a', a],
        ['node b', b],
      ] as const) {
        assert.deepEqual(byKey(await n.records(kind)), [r1, r2], `${who}: both records, as put`);
      }
      const replaced: ControlRecord = { key: 'token-1', value: '{"reason":"replaced"}', expiresAt: later + 2_000 };
      await b.putRecord(kind, replaced);
      assert.deepEqual(byKey(await a.records(kind)), [replaced, r2], 'writing a key again replaces its record');
      assert.deepEqual(
        byKey(await b.records(other)),
        [{ key: 'token-1', value: '"elsewhere"', expiresAt: later }],
        'another kind is untouched',
      );
      assert.deepEqual(await a.records(freshKind('empty')), [], 'a kind never written has no records');
    });

    test('records: an expired record is never answered', async () => {
      const kind = freshKind('expire');
      const keep: ControlRecord = { key: 'keep', value: '1', expiresAt: Date.now() + 300_000 };
      const expiresAt = Date.now() + 1_000;
      await a.putRecord(kind, keep);
      await a.putRecord(kind, { key: 'short', value: '2', expiresAt });
      if (!durable()) {
        assert.deepEqual(await a.records(kind), []);
        return;
      }
      const fresh = await b.records(kind);
      // Only meaningful while the record is still young; a stalled machine skips this one check
      // rather than fail on timing.
      if (Date.now() < expiresAt - 200) assert.deepEqual(fresh.map((r) => r.key).sort(), ['keep', 'short'], 'both are live at first');
      await waitFor(
        'the short-lived record to stop being answered',
        async () => (await b.records(kind)).every((r) => r.key !== 'short'),
        timeoutMs + 2_000,
        50,
      );
      assert.ok(Date.now() >= expiresAt, 'a record was dropped before it expired');
      assert.deepEqual(byKey(await a.records(kind)), [keep], 'the long-lived record stays');
    });

    test('records: a node started later sees them when durableRecords, none otherwise', async () => {
      const kind = freshKind('later');
      const r: ControlRecord = { key: 'revoked', value: '{"jti":"abc"}', expiresAt: Date.now() + 300_000 };
      await a.putRecord(kind, r);
      const rec = new ControlRecorder();
      const c = await started(fleet, rec, 'a node started later');
      try {
        assert.deepEqual(
          byKey(await c.records(kind)),
          durable() ? [r] : [],
          durable() ? 'the later node reads the record' : 'durableRecords is false: nothing is kept',
        );
        // The later node is part of the fleet's control plane at once.
        const hello = tagged('conformance.hello', 'node-a', 'later');
        await a.sendControl(hello.msg);
        await rec.waitId(hello.id, 'the later node', timeoutMs);
      } finally {
        await c.close();
      }
    });

    test('sendControl, putRecord and records reject after close; a closed node hears nothing more', async () => {
      const rec = new ControlRecorder();
      const c = await started(fleet, rec, 'a node to close');
      const first = tagged('conformance.closing', 'node-c', 'closing-1');
      await c.sendControl(first.msg);
      await rec.waitId(first.id, 'the node to close', timeoutMs);
      await c.close();
      await c.close();
      assert.equal(c.state, 'closed');
      const late = tagged('conformance.closing', 'node-c', 'closing-late');
      await withDeadline(
        'sendControl on a closed backbone to reject',
        assert.rejects(c.sendControl(late.msg), BackboneUnavailableError),
        timeoutMs,
      );
      await withDeadline(
        'putRecord on a closed backbone to reject',
        assert.rejects(c.putRecord(freshKind('closed'), { key: 'k', value: '1', expiresAt: Date.now() + 60_000 })),
        timeoutMs,
      );
      await withDeadline('records on a closed backbone to reject', assert.rejects(c.records(freshKind('closed'))), timeoutMs);
      const after = tagged('conformance.closing', 'node-a', 'closing-after');
      await a.sendControl(after.msg);
      await recB.waitId(after.id, 'node b', timeoutMs);
      await recA.waitId(after.id, 'node a', timeoutMs);
      assert.equal(rec.withId(after.id).length, 0, 'the closed node still received a control message');
      assert.equal(recB.withId(late.id).length, 0, 'the rejected message was delivered');
    });

    test("two fleets on one server never hear each other, nor read each other's records", async () => {
      const other = await factory();
      fleets.push(other);
      const recX = new ControlRecorder();
      const x = await started(other, recX, 'a node of another fleet');
      const kind = freshKind('fleets');
      const mine: ControlRecord = { key: 'shared-key', value: '"fleet one"', expiresAt: Date.now() + 300_000 };
      const theirs: ControlRecord = { key: 'shared-key', value: '"fleet two"', expiresAt: Date.now() + 300_000 };
      await a.putRecord(kind, mine);
      await x.putRecord(kind, theirs);
      /** Each fleet sends one message and waits until its own nodes heard it; answers both ids. */
      const exchange = async (label: string): Promise<[string, string]> => {
        const fromA = tagged('conformance.fleet', 'node-a', `${label}-one`);
        const fromX = tagged('conformance.fleet', 'node-x', `${label}-two`);
        await Promise.all([a.sendControl(fromA.msg), x.sendControl(fromX.msg)]);
        await recX.waitId(fromX.id, 'the other fleet', timeoutMs);
        await recA.waitId(fromA.id, 'node a', timeoutMs);
        await recB.waitId(fromA.id, 'node b', timeoutMs);
        return [fromA.id, fromX.id];
      };
      const first = await exchange('fleet');
      // The second exchange is the sync point: a message of the first that crossed over would
      // have arrived by the time each fleet heard its own second one.
      const second = await exchange('fleet-sync');
      for (const [one, two] of [first, second]) {
        assert.equal(recX.withId(one).length, 0, 'the other fleet heard fleet one');
        assert.equal(recA.withId(two).length + recB.withId(two).length, 0, 'fleet one heard the other fleet');
      }
      if (durable()) {
        assert.deepEqual(byKey(await b.records(kind)), [mine], 'fleet one reads its own record only');
        assert.deepEqual(byKey(await x.records(kind)), [theirs], 'the other fleet reads its own record only');
      }
    });
  });
  runPresenceConformance(name, factory, options);
}
