/**
 * The recovery merge on its own: a replay read from history plus the live publications that waited
 * meanwhile must come out as each publication after the client's position exactly once, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Publication } from '../src/backbone.js';
import { mergeRecovery } from '../src/recovery.js';

const CH = 'ns:doc';

function pub(offset: number, epoch = 'e1', data = String(offset)): Publication {
  return { channel: CH, epoch, offset, ts: 1_000 + offset, data };
}

/** Publications `from` to `to` inclusive of `epoch`. */
function range(from: number, to: number, epoch = 'e1'): Publication[] {
  const out: Publication[] = [];
  for (let o = from; o <= to; o++) out.push(pub(o, epoch));
  return out;
}

const keys = (ps: readonly Publication[]) => ps.map((p) => `${p.epoch}:${p.offset}`);

test('live publications the replay already covered are dropped; newer ones follow the replay in order', () => {
  // Client was at 3; history read saw up to 7; live 5..9 arrived while it was read.
  const out = mergeRecovery({ epoch: 'e1', offset: 7, publications: range(4, 7) }, range(5, 9));
  assert.deepEqual(keys(out), keys(range(4, 9)));
});

test('live publications that all come after the replay are all delivered after it', () => {
  const out = mergeRecovery({ epoch: 'e1', offset: 5, publications: range(3, 5) }, range(6, 8));
  assert.deepEqual(keys(out), keys(range(3, 8)));
});

test('the replay itself is delivered first and unchanged', () => {
  const replay = range(10, 12);
  const out = mergeRecovery({ epoch: 'e1', offset: 12, publications: replay }, []);
  assert.equal(out.length, 3);
  for (let i = 0; i < 3; i++) assert.equal(out[i], replay[i], 'the same publication objects, in order');
  assert.notEqual(out, replay, 'a new array: the caller may not get the replay array back to mutate');
});

test('with an empty replay, the channel head decides what live publications were already covered', () => {
  // A subscribe without a position (or a recovery that failed) replays nothing: the client starts
  // at the head the history read reported, so live publications at or below it are not sent.
  const out = mergeRecovery({ epoch: 'e1', offset: 4, publications: [] }, range(3, 6));
  assert.deepEqual(keys(out), keys(range(5, 6)));
});

test('an empty replay and no live publications give nothing', () => {
  assert.deepEqual(mergeRecovery({ epoch: 'e1', offset: 0, publications: [] }, []), []);
});

test('unsequenced publications (offset 0) carry no position and are always delivered', () => {
  const live = [pub(0, ''), pub(0, ''), pub(0, '')];
  const out = mergeRecovery({ epoch: '', offset: 0, publications: [] }, live);
  assert.deepEqual(out, live);
  // Also beside a sequenced replay: offset 0 is never taken as "at or below the head".
  const mixed = mergeRecovery({ epoch: 'e1', offset: 2, publications: range(1, 2) }, [pub(0, ''), pub(2), pub(3)]);
  assert.deepEqual(keys(mixed), ['e1:1', 'e1:2', ':0', 'e1:3']);
});

test('publications of another epoch are delivered even when their offsets look old', () => {
  // The channel's history was reset during the read: the hub reported the gap; the new epoch's
  // publications are new to the client whatever their offsets.
  const out = mergeRecovery({ epoch: 'e1', offset: 9, publications: range(8, 9) }, [pub(9), pub(1, 'e2'), pub(2, 'e2'), pub(10)]);
  assert.deepEqual(keys(out), ['e1:8', 'e1:9', 'e2:1', 'e2:2', 'e1:10']);
});

test('duplicates among live publications (redeliveries) are delivered once', () => {
  const live = [pub(3), pub(4), pub(4), pub(3), pub(5), pub(5), pub(6)];
  const out = mergeRecovery({ epoch: 'e1', offset: 3, publications: range(2, 3) }, live);
  assert.deepEqual(keys(out), keys(range(2, 6)));
});

test('a replay reaching past the head it reported still covers live publications up to its newest', () => {
  // Adapters read the head and the publications separately; a publication landing in between can
  // make the replay's newest entry newer than the reported head.
  const out = mergeRecovery({ epoch: 'e1', offset: 5, publications: range(4, 7) }, range(6, 8));
  assert.deepEqual(keys(out), keys(range(4, 8)));
});

test('property: any history and any interleaving of live arrivals gives each publication after the position once, in order', () => {
  // One epoch only: unsequenced and other-epoch publications are covered by the examples above.
  const scenario = fc
    .record({
      // Publications on the channel by the end of the scenario.
      total: fc.integer({ min: 0, max: 60 }),
      // Fractions placing: the client's position <= the head at subscribe <= the head at the read.
      a: fc.double({ min: 0, max: 1, noNaN: true }),
      b: fc.double({ min: 0, max: 1, noNaN: true }),
      c: fc.double({ min: 0, max: 1, noNaN: true }),
      // Redeliveries: indexes (into the live run) of arrivals that come again later.
      again: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }),
    })
    .map(({ total, a, b, c, again }) => {
      const readHead = Math.floor(c * total);
      const subscribedAt = Math.floor(b * readHead);
      const since = Math.floor(a * total);
      return { total, readHead, subscribedAt, since, again };
    });
  fc.assert(
    fc.property(scenario, ({ total, readHead, subscribedAt, since, again }) => {
      // History at the read: everything after `since` up to the head the read saw (nothing when the
      // client claims a position past that head: the read reports the head and replays nothing).
      const replay = since <= readHead ? range(since + 1, readHead) : [];
      // Live arrivals: every publication after the subscribe went live, in order, with some
      // redelivered again later (at least once, never surfaced twice).
      const live: Publication[] = range(subscribedAt + 1, total);
      for (const [i, j] of again) {
        if (live.length === 0) break;
        const dup = live[i % live.length] as Publication;
        const at = Math.min(live.length, live.indexOf(dup) + 1 + (j % (live.length + 1)));
        live.splice(at, 0, dup);
      }
      const out = mergeRecovery({ epoch: 'e1', offset: readHead, publications: replay }, live);
      const offsets = out.map((p) => p.offset);
      for (let k = 1; k < offsets.length; k++) {
        assert.ok((offsets[k] as number) > (offsets[k - 1] as number), `strictly increasing: ${offsets.join(',')}`);
      }
      assert.equal(new Set(offsets).size, offsets.length, 'no duplicates');
      const from = Math.min(since, readHead);
      assert.deepEqual(
        offsets,
        range(from + 1, total).map((p) => p.offset),
        'every publication after the position, none before',
      );
    }),
    { numRuns: 500 },
  );
});
