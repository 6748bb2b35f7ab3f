/**
 * The accountant's rules on hand-made records: each kind of failure the fleet scenarios look for
 * is counted when it is there, and not when it is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { account, reconnectTimes, type ClientEvent, type ClientLog, type SentRecord } from '../src/accountant.js';

const CH = 'fleet:a';

function sent(seq: number, outcome: SentRecord['outcome'] = 'accepted', route = 'direct'): SentRecord {
  return { channel: CH, seq, route, sentAt: seq * 10, outcome, ...(outcome === 'accepted' ? { epoch: 'e', offset: seq } : {}) };
}

function pub(seq: number, offset = seq, route = 'direct', epoch = 'e'): ClientEvent {
  return { t: 1000 + seq, type: 'pub', channel: CH, seq, route, epoch, offset };
}

function gap(t = 0): ClientEvent {
  return { t, type: 'gap', channel: CH, reason: 'backbone' };
}

function client(events: ClientEvent[], id = 'c'): ClientLog {
  return { id, channels: [CH], events };
}

test('every publication received once and in order: nothing lost, duplicated or out of order', () => {
  const f = account({
    sent: [sent(1), sent(2), sent(3)],
    clients: [client([pub(1), pub(2), pub(3)]), client([pub(1), pub(2), pub(3)], 'd')],
    sequenced: true,
  });
  assert.deepEqual([f.published, f.expected, f.delivered, f.lost, f.duplicated, f.outOfOrder, f.gaps, f.unknown], [3, 6, 6, 0, 0, 0, 0, 0]);
});

test('a publication one client never received is lost; without a gap event the loss is silent', () => {
  const f = account({ sent: [sent(1), sent(2), sent(3)], clients: [client([pub(1), pub(3)])], sequenced: true });
  assert.deepEqual([f.lost, f.lostSilent, f.lostReported], [1, 1, 0]);
  assert.deepEqual(f.losses, [
    { channel: CH, seq: 2, route: 'direct', outcome: 'accepted', offset: 2, sentAt: 20, missedBy: 1, reported: 0 },
  ]);
});

test('a loss is reported only by a gap event where the publication went missing', () => {
  const at = account({ sent: [sent(1), sent(2), sent(3)], clients: [client([pub(1), gap(), pub(3)])], sequenced: false });
  assert.deepEqual([at.lost, at.lostReported, at.lostSilent, at.gaps], [1, 1, 0, 1]);
  const late = account({
    sent: [sent(1), sent(2), sent(3), sent(4)],
    clients: [client([pub(1), pub(3), gap(), pub(4)])],
    sequenced: false,
  });
  assert.deepEqual(
    [late.lost, late.lostReported, late.lostSilent],
    [1, 0, 1],
    'a gap after a later publication does not cover an earlier loss',
  );
  const tail = account({ sent: [sent(1), sent(2)], clients: [client([pub(1), gap()])], sequenced: false });
  assert.deepEqual([tail.lostReported, tail.lostSilent], [1, 0], 'nothing arrived after the loss, but the gap did');
});

test('on an unsequenced backbone, where a loss sits is judged against its own route only', () => {
  // seq 2 went out through a gateway's API and was lost with the server; seq 3, sent after it
  // straight into NATS, overtook it and arrived before the outage's gap.
  const routes = [
    sent(1, 'accepted', 'http:a'),
    sent(2, 'accepted', 'http:a'),
    sent(3, 'accepted', 'direct'),
    sent(4, 'accepted', 'http:a'),
  ];
  const overtaken = account({
    sent: routes,
    clients: [client([pub(1, 0, 'http:a', ''), pub(3, 0, 'direct', ''), gap(), pub(4, 0, 'http:a', '')])],
    sequenced: false,
  });
  assert.deepEqual([overtaken.lost, overtaken.lostReported, overtaken.lostSilent], [1, 1, 0]);
  const late = account({
    sent: routes,
    clients: [client([pub(1, 0, 'http:a', ''), pub(3, 0, 'direct', ''), pub(4, 0, 'http:a', ''), gap()])],
    sequenced: false,
  });
  assert.deepEqual(
    [late.lost, late.lostReported, late.lostSilent],
    [1, 0, 1],
    'a later publication of the same route before the gap: silent',
  );
  // Where the backbone sequences the channel, every route counts.
  const sequenced = account({ sent: routes, clients: [client([pub(1), pub(3), gap(), pub(4)])], sequenced: true });
  assert.deepEqual([sequenced.lostReported, sequenced.lostSilent], [0, 1]);
});

test('a second receipt of the same publication is a duplicate', () => {
  const f = account({ sent: [sent(1), sent(2)], clients: [client([pub(1), pub(2), pub(2)])], sequenced: true });
  assert.deepEqual([f.delivered, f.duplicated, f.lost], [2, 1, 0]);
});

test('order is by offset where the backbone sequences channels, and per route where it does not', () => {
  const byOffset = account({ sent: [sent(1), sent(2)], clients: [client([pub(2, 2), pub(1, 1)])], sequenced: true });
  assert.equal(byOffset.outOfOrder, 1);
  // A new epoch starts a new order (the client was told about it with a gap).
  const newEpoch = account({
    sent: [sent(1), sent(2)],
    clients: [client([pub(1, 9, 'direct', 'old'), pub(2, 1, 'direct', 'new')])],
    sequenced: true,
  });
  assert.equal(newEpoch.outOfOrder, 0);
  const routes = [sent(1, 'accepted', 'http:a'), sent(2, 'accepted', 'http:b'), sent(3, 'accepted', 'http:a')];
  const acrossRoutes = account({
    sent: routes,
    clients: [client([pub(2, 0, 'http:b', ''), pub(1, 0, 'http:a', ''), pub(3, 0, 'http:a', '')])],
    sequenced: false,
  });
  assert.equal(acrossRoutes.outOfOrder, 0, 'two publishers on NATS core are not ordered against each other');
  const withinRoute = account({ sent: routes, clients: [client([pub(3, 0, 'http:a', ''), pub(1, 0, 'http:a', '')])], sequenced: false });
  assert.equal(withinRoute.outOfOrder, 1);
});

test('a failed publish counts as published exactly when some client received it', () => {
  const f = account({
    sent: [sent(1), sent(2, 'failed'), sent(3, 'failed')],
    clients: [client([pub(1), pub(2)]), client([pub(1)], 'd')],
    sequenced: true,
  });
  assert.deepEqual([f.published, f.rejected, f.ambiguous], [2, 1, 1]);
  assert.deepEqual([f.expected, f.delivered, f.lost], [4, 3, 1], 'applied but missed by one client: lost');
});

test('a receipt of something never sent is counted as unknown', () => {
  const f = account({ sent: [sent(1)], clients: [client([pub(1), pub(7)])], sequenced: true });
  assert.equal(f.unknown, 1);
});

test('reconnect time runs from the kill to the next connected, and from the close for a drain', () => {
  const killed: ClientLog = {
    id: 'k',
    channels: [],
    events: [
      { t: 0, type: 'connected', node: 'a', reconnect: false },
      { t: 120, type: 'disconnected', code: 1006, reason: '' },
      { t: 900, type: 'connected', node: 'b', reconnect: true },
    ],
  };
  const drained: ClientLog = {
    id: 'd',
    channels: [],
    events: [
      { t: 0, type: 'connected', node: 'c', reconnect: false },
      { t: 1500, type: 'disconnected', code: 4200, reason: 'node draining' },
      { t: 1800, type: 'connected', node: 'b', reconnect: true },
    ],
  };
  const bystander: ClientLog = { id: 'b', channels: [], events: [{ t: 0, type: 'connected', node: 'b', reconnect: false }] };
  const stranded: ClientLog = {
    id: 's',
    channels: [],
    events: [
      { t: 0, type: 'connected', node: 'a', reconnect: false },
      { t: 110, type: 'disconnected', code: 1006, reason: '' },
    ],
  };
  const r = reconnectTimes(
    [killed, drained, bystander, stranded],
    [
      { at: 100, kind: 'kill', node: 'a' },
      { at: 1000, kind: 'drain', node: 'c' },
    ],
  );
  assert.deepEqual(r, { reconnects: 3, notBack: 1, ms: [800, 300] });
});
