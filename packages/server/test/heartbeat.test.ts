/**
 * Heartbeats and token expiry driven by a fake clock: time only moves when a test moves it, so
 * nothing here waits for real time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Grant } from '../src/auth.js';
import { HEARTBEAT_SKIP_BYTES, Heartbeats } from '../src/heartbeat.js';
import type { Clock, HeartbeatOptions } from '../src/heartbeat.js';
import { REGISTRY_SHARDS, SessionRegistry } from '../src/registry.js';
import { Session, SessionState } from '../src/session.js';
import type { SessionHandler } from '../src/session.js';
import { FakeTransport } from './fake-transport.js';

/** A clock whose time and intervals advance only through `advance`. */
class FakeClock implements Clock {
  private t = 1_000_000;
  private readonly timers = new Map<number, { fn: () => void; ms: number; next: number }>();
  private nextHandle = 1;

  now(): number {
    return this.t;
  }

  setInterval(fn: () => void, ms: number): unknown {
    const handle = this.nextHandle++;
    this.timers.set(handle, { fn, ms, next: this.t + ms });
    return handle;
  }

  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Intervals currently set, by period. */
  get periods(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }

  /** Moves time forward by `ms`, firing every interval due on the way, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: { fn: () => void; ms: number; next: number } | undefined;
      for (const t of this.timers.values()) if (t.next <= end && (!due || t.next < due.next)) due = t;
      if (!due) break;
      this.t = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}

const noHandler: SessionHandler = { onMessage() {}, onPing() {}, onClose() {}, onError() {} };

/** An open session on a fake transport whose pongs reach the session. */
function openSession(grant?: Partial<Grant>): { s: Session; t: FakeTransport } {
  const t = new FakeTransport();
  const s = new Session(t, noHandler);
  t.listen(s);
  s.state = SessionState.Open;
  if (grant) s.grant = { user: 'u', subscribe: [], publish: [], expiresAt: undefined, ...grant };
  return { s, t };
}

const INTERVAL = 8_000;
const TICK = INTERVAL / REGISTRY_SHARDS;

/** Heartbeats over a fresh registry and fake clock, recording whom they report. */
function setup(options: Partial<HeartbeatOptions> = {}) {
  const clock = new FakeClock();
  const registry = new SessionRegistry();
  const missed: Session[] = [];
  const expired: Session[] = [];
  const refresh: { s: Session; inMs: number }[] = [];
  const hb = new Heartbeats({
    registry,
    clock,
    intervalMs: INTERVAL,
    refreshLeadMs: 30_000,
    tokenGraceMs: 5_000,
    // What the gateway does with a reported session: close it, so no later beat visits it.
    onMissed: (s) => {
      missed.push(s);
      s.state = SessionState.Closing;
    },
    onExpired: (s) => {
      expired.push(s);
      s.state = SessionState.Closing;
    },
    askRefresh: (s, inMs) => refresh.push({ s, inMs }),
    ...options,
  });
  return { clock, registry, hb, missed, expired, refresh };
}

/** Adds `n` open sessions to `registry`; they land in the shards round-robin. */
function addSessions(registry: SessionRegistry, n: number, grant?: Partial<Grant>) {
  return Array.from({ length: n }, () => {
    const x = openSession(grant);
    registry.add(x.s);
    return x;
  });
}

test('one shard is visited per tick, so every session gets one beat per interval', () => {
  const { clock, registry, hb } = setup();
  const all = addSessions(registry, REGISTRY_SHARDS * 2);
  hb.start();
  assert.deepEqual(clock.periods, [TICK], 'one timer ticking once per shard');
  for (let k = 0; k < REGISTRY_SHARDS; k++) {
    clock.advance(TICK);
    for (const { s, t } of all) {
      assert.equal(t.heartbeats, s.shard <= k ? 1 : 0, `after tick ${k + 1}: shard ${s.shard} beaten ${s.shard <= k ? 'once' : 'not yet'}`);
    }
    for (const { t } of all) if (t.heartbeats > 0) t.answer();
  }
  clock.advance(INTERVAL);
  for (const { t } of all) assert.equal(t.heartbeats, 2, 'a second beat one interval later');
  hb.stop();
  assert.deepEqual(clock.periods, [], 'stop clears the timer');
});

test('a session that answers stays; one that does not is reported missed on its next beat', () => {
  const { clock, registry, hb, missed } = setup();
  const [answering, silent] = addSessions(registry, 2);
  assert.ok(answering && silent);
  hb.start();
  for (let beat = 1; beat <= 3; beat++) {
    clock.advance(INTERVAL);
    answering.t.answer();
  }
  assert.equal(answering.t.heartbeats, 3, 'the answering session got every beat');
  assert.equal(missed.length, 1, 'one session reported');
  assert.equal(missed[0], silent.s, 'the silent one, at its second beat');
  assert.equal(silent.t.heartbeats, 1, 'no heartbeat to a session reported missed');
});

test('sessions that are not open, or whose peer began a close, get no beat and are not reported', () => {
  const { clock, registry, hb, missed } = setup();
  const [authenticating, closing, peerClosing] = addSessions(registry, 3);
  assert.ok(authenticating && closing && peerClosing);
  authenticating.s.state = SessionState.Authenticating;
  closing.s.state = SessionState.Closing;
  peerClosing.t.writable = false;
  hb.start();
  clock.advance(INTERVAL * 3);
  assert.deepEqual(
    [authenticating, closing, peerClosing].map((x) => x.t.heartbeats),
    [0, 0, 0],
  );
  assert.deepEqual(missed, []);
});

test('a session with a large unsent backlog gets no heartbeat written', () => {
  const { clock, registry, hb } = setup();
  const [full, below] = addSessions(registry, 2);
  assert.ok(full && below);
  full.t.bufferedBytes = HEARTBEAT_SKIP_BYTES;
  below.t.bufferedBytes = HEARTBEAT_SKIP_BYTES - 1;
  hb.start();
  clock.advance(INTERVAL);
  assert.equal(full.t.heartbeats, 0, 'beats do not pile onto a connection that is not reading');
  assert.equal(below.t.heartbeats, 1);
  full.t.bufferedBytes = 0;
  full.t.answer();
  clock.advance(INTERVAL);
  assert.equal(full.t.heartbeats, 1, 'beats resume once the backlog drained');
});

test('a token about to expire gets one refresh request; past expiry and grace the session is reported', () => {
  const refreshLeadMs = 30_000;
  const tokenGraceMs = 5_000;
  const asked: { s: Session; inMs: number; at: number }[] = [];
  const reported: { s: Session; at: number }[] = [];
  const { clock, registry, hb } = setup({
    refreshLeadMs,
    tokenGraceMs,
    askRefresh: (s, inMs) => asked.push({ s, inMs, at: clock.now() }),
    onExpired: (s) => {
      reported.push({ s, at: clock.now() });
      s.state = SessionState.Closing;
    },
  });
  const expiresAt = clock.now() + refreshLeadMs + INTERVAL * 2 + 1;
  const [x, forever] = addSessions(registry, 2, { expiresAt });
  assert.ok(x && forever);
  forever.s.grant = { ...(forever.s.grant as Grant), expiresAt: undefined };
  hb.start();
  for (let i = 0; i < 12; i++) {
    clock.advance(INTERVAL);
    x.t.answer();
    forever.t.answer();
  }
  assert.equal(asked.length, 1, 'asked once, however many beats follow');
  const a = asked[0] as (typeof asked)[number];
  assert.equal(a.s, x.s);
  assert.ok(a.at >= expiresAt - refreshLeadMs && a.at < expiresAt - refreshLeadMs + INTERVAL, 'at the first beat inside the lead');
  assert.equal(a.inMs, expiresAt - a.at, 'told how long the token has left');
  assert.equal(reported.length, 1, 'reported once');
  const r = reported[0] as (typeof reported)[number];
  assert.equal(r.s, x.s, 'a token without expiry is never reported');
  assert.ok(r.at >= expiresAt + tokenGraceMs && r.at < expiresAt + tokenGraceMs + INTERVAL, 'at the first beat past expiry plus grace');
});

test('a refreshed token (the handler clears refreshAsked and sets a new expiry) is asked again only near its new expiry', () => {
  const { clock, registry, hb, refresh, expired } = setup({ refreshLeadMs: 10_000, tokenGraceMs: 0 });
  const [x] = addSessions(registry, 1, { expiresAt: clock.now() + 10_000 });
  assert.ok(x);
  hb.start();
  clock.advance(INTERVAL);
  x.t.answer();
  assert.equal(refresh.length, 1);
  // What the protocol handler does on a successful `refresh`.
  x.s.grant = { ...(x.s.grant as Grant), expiresAt: clock.now() + 60_000 };
  x.s.refreshAsked = false;
  for (let i = 0; i < 5; i++) {
    clock.advance(INTERVAL);
    x.t.answer();
  }
  assert.equal(refresh.length, 1, 'no request while the new token is far from expiry');
  assert.deepEqual(expired, []);
});

test('start is idempotent and a session added later is beaten in its own shard', () => {
  const { clock, registry, hb } = setup();
  hb.start();
  hb.start();
  assert.equal(clock.periods.length, 1, 'one timer, however many starts');
  const [late] = addSessions(registry, 1);
  assert.ok(late);
  clock.advance(INTERVAL);
  assert.equal(late.t.heartbeats, 1);
  hb.stop();
  clock.advance(INTERVAL * 2);
  assert.equal(late.t.heartbeats, 1, 'no beats after stop');
});
