/**
 * Adaptive write batching: the hub over the in-process backbone, sessions on fake transports whose
 * writes advance a fake clock (a slow pass costs no real time), and timers the test fires itself,
 * so nothing here depends on how fast the machine is.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { waitFor } from '@gatehouse/testkit';
import type { PublishOptions } from '../src/backbone.js';
import type { FlushTiming } from '../src/batching.js';
import { DEFAULT_MAX_BATCH_DELAY_MS, FlushPacer } from '../src/batching.js';
import { Hub } from '../src/hub.js';
import type { HubOptions } from '../src/hub.js';
import { MemoryBackbone } from '../src/memory-backbone.js';
import { Session, SessionState } from '../src/session.js';
import type { SessionHandler } from '../src/session.js';
import { FakeTransport, idleMetrics } from './fake-transport.js';

const CH = 'ns:batch';
const KEEP: PublishOptions = { historySize: 1000, historyTtlSeconds: 0 };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const stubHandler: SessionHandler = { onMessage() {}, onPing() {}, onClose() {}, onError() {} };

/** A clock that moves only when told (or when a slow transport writes), and timers the test fires. */
class FakeTiming implements FlushTiming {
  t = 1000;
  /** Timers asked for and not fired yet. */
  readonly timers: { fn: () => void; ms: number }[] = [];
  nextCalls = 0;

  now(): number {
    return this.t;
  }

  next(fn: () => void): void {
    this.nextCalls++;
    setImmediate(fn);
  }

  later(fn: () => void, ms: number): void {
    this.timers.push({ fn, ms });
  }

  /** Fires the oldest pending timer. */
  fire(): number {
    const timer = this.timers.shift();
    if (!timer) throw new Error('no timer pending');
    this.t += timer.ms;
    timer.fn();
    return timer.ms;
  }
}

/** A transport whose every write takes `writeMs` of the fake clock (a slow kernel). */
class SlowTransport extends FakeTransport {
  writeMs = 0;
  constructor(private readonly timing: FakeTiming) {
    super();
  }
  override writeMany(chunks: readonly Buffer[], totalBytes: number): void {
    super.writeMany(chunks, totalBytes);
    this.timing.t += this.writeMs;
  }
  override write(bytes: Buffer): void {
    super.write(bytes);
    this.timing.t += this.writeMs;
  }
}

const backbones: MemoryBackbone[] = [];
after(async () => {
  for (const b of backbones) await b.close();
});

async function setup(options: Partial<HubOptions> = {}, sessions = 2) {
  const timing = new FakeTiming();
  const metrics = idleMetrics('batching-test');
  const backbone = new MemoryBackbone();
  backbones.push(backbone);
  const slow: Session[] = [];
  const hub = new Hub({
    backbone,
    metrics,
    log: pino({ level: 'silent' }),
    maxQueueBytes: 1 << 30,
    maxQueueMessages: 1000,
    channelLingerMs: 10,
    coalesceMs: 0,
    replayCacheBytes: 1 << 20,
    historyLimit: () => 1000,
    flushTiming: timing,
    onSlowConsumer: (s) => {
      slow.push(s);
      s.state = SessionState.Closing;
      s.queue.length = 0;
      s.queuedBytes = 0;
      s.transport.close(4300, 'slow consumer');
    },
    ...options,
  });
  await backbone.start({ onPublication: (p) => hub.onPublication(p), onStateChange: (s) => hub.onStateChange(s), onControl: () => {} });
  const xs = Array.from({ length: sessions }, () => {
    const t = new SlowTransport(timing);
    const s = new Session(t, stubHandler);
    t.listen(s);
    s.state = SessionState.Open;
    return { s, t };
  });
  let id = 1;
  for (const x of xs) {
    await hub.subscribe(x.s, CH, id++, undefined);
    await waitFor('subscribed', () => x.t.framesOf('subscribed', CH).length === 1);
    x.t.clearWrites();
  }
  const count = async (name: string) => {
    const m = await metrics.registry.getSingleMetric(name)?.get();
    return m?.values.find((v) => (v as { metricName?: string }).metricName === `${name}_count`)?.value ?? 0;
  };
  /** Publishes one publication; the in-process backbone fans it out before this resolves (the flush may still be pending). */
  const publish = async (data: string) => {
    await backbone.publish(CH, data, KEEP);
  };
  /** Makes the passes slow: each write takes `ms` of the fake clock. */
  const slowWrites = (ms: number) => {
    for (const x of xs) x.t.writeMs = ms;
  };
  return { hub, timing, xs, slow, publish, slowWrites, count };
}

test('an idle node flushes on the next tick: no timer, no added delay', async () => {
  const { timing, xs, publish, count } = await setup();
  await publish('1');
  await waitFor('the write', () => xs.every((x) => x.t.writes.length === 1));
  assert.equal(timing.timers.length, 0, 'no flush was held');
  assert.deepEqual(
    xs.map((x) => x.t.offsets(CH)),
    [[1], [1]],
  );
  assert.equal(await count('gatehouse_batch_delay_seconds'), 0);
});

test('a node idle for longer than its last slow pass flushes the next publication on the next tick', async () => {
  const { timing, xs, publish, slowWrites } = await setup();
  slowWrites(20); // a pass over the two sessions takes 40 ms
  await publish('1');
  await waitFor('the first pass', () => xs.every((x) => x.t.writes.length === 1));
  timing.t += 41; // idle for longer than that pass
  await publish('2');
  await waitFor('the second pass', () => xs.every((x) => x.t.writes.length === 2));
  assert.equal(timing.timers.length, 0, 'no flush was held');
});

test('publications arriving after a slow pass share the next pass: one write per socket for all, in order', async () => {
  const { timing, xs, publish, slowWrites, count } = await setup();
  slowWrites(15); // a pass over the two sessions takes 30 ms
  await publish('1');
  await waitFor('the first pass', () => xs.every((x) => x.t.writes.length === 1));
  const nextCalls = timing.nextCalls;

  // Three publications in three separate turns, right after the slow pass: they wait together.
  for (const d of ['2', '3', '4']) {
    await publish(d);
    await turn();
  }
  assert.equal(timing.timers.length, 1, 'one held flush');
  assert.equal(timing.timers[0]?.ms, 30, 'held for one pass duration after the last pass');
  assert.equal(timing.nextCalls, nextCalls, 'no next-tick flush meanwhile');
  for (const x of xs) assert.equal(x.t.writes.length, 1, 'nothing written while held');

  timing.fire();
  for (const x of xs) {
    assert.equal(x.t.writes.length, 2, 'one write for the three publications');
    assert.deepEqual(x.t.offsets(CH), [1, 2, 3, 4], 'in order, each once');
  }
  // Every publication is observed once, with the delay it waited.
  assert.equal(await count('gatehouse_publish_delivery_seconds'), 4);
  assert.equal(await count('gatehouse_batch_delay_seconds'), 1);
});

test('the delay batching adds is bounded by maxBatchDelayMs, whatever a pass took', async () => {
  const { timing, xs, publish, slowWrites } = await setup({ maxBatchDelayMs: 7 });
  slowWrites(500);
  await publish('1');
  await waitFor('the first pass', () => xs.every((x) => x.t.writes.length === 1));
  timing.t += 3; // the next publication comes 3 ms after the pass ended
  await publish('2');
  assert.equal(timing.timers[0]?.ms, 4, 'held only up to the bound, counted from the end of the pass');
  timing.fire();
  for (const x of xs) assert.deepEqual(x.t.offsets(CH), [1, 2]);
});

test('maxBatchDelayMs 0 turns batching off: every publication flushes on the next tick', async () => {
  const { timing, xs, publish, slowWrites } = await setup({ maxBatchDelayMs: 0 });
  slowWrites(100);
  await publish('1');
  await waitFor('the first pass', () => xs.every((x) => x.t.writes.length === 1));
  await publish('2');
  await waitFor('the second pass', () => xs.every((x) => x.t.writes.length === 2));
  assert.equal(timing.timers.length, 0);
});

test('the message cap stays exact while a flush is held: the publication past it cuts the session', async () => {
  const { timing, xs, publish, slowWrites, slow } = await setup({ maxQueueMessages: 2 }, 1);
  const x = xs[0] as { s: Session; t: SlowTransport };
  slowWrites(30);
  await publish('1');
  await waitFor('the first pass', () => x.t.writes.length === 1);
  await publish('2');
  await publish('3');
  assert.equal(slow.length, 0, 'two queued: at the cap, not past it');
  await publish('4');
  assert.deepEqual(slow, [x.s], 'the third queued publication passes the cap');
  timing.fire();
  assert.equal(x.t.writes.length, 1, 'what the cut session had queued is not written');
});

test('FlushPacer: no wait before any pass, after a pass under a millisecond, or once idle for a pass duration', () => {
  const p = new FlushPacer();
  assert.equal(p.delay(0), 0);
  p.passed(100, 100.5);
  assert.equal(p.delay(100.5), 0);
  p.passed(200, 240);
  assert.equal(p.delay(240), 40);
  assert.equal(p.delay(260), 20);
  assert.equal(p.delay(280), 0);
  p.passed(300, 1300);
  assert.equal(p.delay(1300), DEFAULT_MAX_BATCH_DELAY_MS);
});
