/**
 * Adaptive write batching: the hub over the in-process backbone, sessions on fake transports whose
 * writes advance a fake clock and a fake CPU clock (a slow pass costs no real time), and timers the
 * test fires itself, so nothing here depends on how fast the machine is.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { waitFor } from '@gatehouse/testkit';
import type { PublishOptions } from '../src/backbone.js';
import type { FlushTiming } from '../src/batching.js';
import { DEFAULT_MAX_BATCH_DELAY_MS, FlushPacer, SATURATED_SHARE } from '../src/batching.js';
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

/**
 * A clock that moves only when told (or when a slow transport writes), a CPU clock that moves only
 * when a slow transport writes on the CPU, and timers the test fires.
 */
class FakeTiming implements FlushTiming {
  t = 1000;
  cpuT = 0;
  /** Timers asked for and not fired yet. */
  readonly timers: { fn: () => void; ms: number }[] = [];
  nextCalls = 0;

  now(): number {
    return this.t;
  }

  cpu(): number {
    return this.cpuT;
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

/**
 * A transport whose every write takes `writeMs` of the fake clock: of the process's CPU (a slow
 * kernel), or, with `onCpu` false, of waiting (other processes hold the cores).
 */
class SlowTransport extends FakeTransport {
  writeMs = 0;
  onCpu = true;
  constructor(private readonly timing: FakeTiming) {
    super();
  }
  override writeMany(chunks: readonly Buffer[], totalBytes: number): void {
    super.writeMany(chunks, totalBytes);
    this.spend();
  }
  override write(bytes: Buffer): void {
    super.write(bytes);
    this.spend();
  }
  private spend(): void {
    this.timing.t += this.writeMs;
    if (this.onCpu) this.timing.cpuT += this.writeMs;
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
      s.clearQueued();
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
  /** Makes the passes slow: each write takes `ms` of the fake clock, on the CPU unless `onCpu` is false. */
  const slowWrites = (ms: number, onCpu = true) => {
    for (const x of xs) {
      x.t.writeMs = ms;
      x.t.onCpu = onCpu;
    }
  };
  /**
   * Publishes right after each pass, as a node that cannot keep up sees them, until a flush is
   * held or `max` publications have gone out. Returns how many went out unheld.
   */
  const saturate = async (max = 30) => {
    for (let n = 0; n < max; n++) {
      const writes = xs[0]?.t.writes.length ?? 0;
      await publish(`${1000 + n}`);
      await waitFor('a pass or a held flush', () => timing.timers.length > 0 || (xs[0]?.t.writes.length ?? 0) > writes);
      if (timing.timers.length > 0) return n;
    }
    return max;
  };
  return { hub, timing, xs, slow, publish, slowWrites, saturate, count };
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

test('a slow pass on a node with time to spare adds no delay: the next publication flushes on the next tick', async () => {
  const { timing, xs, publish, slowWrites } = await setup();
  slowWrites(7); // a pass over the two sessions takes 14 ms of CPU, under the 20 ms bound
  for (let n = 1; n <= 10; n++) {
    await publish(`${n}`);
    await waitFor(`pass ${n}`, () => xs.every((x) => x.t.writes.length === n));
    timing.t += 10; // idle for less than a pass: the CPU share stays near 0.58
  }
  assert.equal(timing.timers.length, 0, 'no flush was held');
});

test('passes that take long because other processes hold the cores add no delay', async () => {
  const { timing, xs, saturate, slowWrites } = await setup();
  slowWrites(20, false); // 40 ms passes, back to back, but the process is mostly waiting for a core
  assert.equal(await saturate(20), 20, 'twenty publications, none held');
  assert.equal(timing.timers.length, 0);
  for (const x of xs) assert.equal(x.t.writes.length, 20);
});

test('a saturated node that goes idle flushes on the next tick again', async () => {
  const { timing, xs, publish, slowWrites, saturate } = await setup();
  slowWrites(15);
  await saturate();
  timing.fire();
  const writes = xs[0]?.t.writes.length ?? 0;
  for (let n = 1; n <= 10; n++) {
    timing.t += 1000; // a second of nothing
    await publish(`${2000 + n}`);
    if (timing.timers.length > 0) timing.fire();
    await waitFor(`pass ${n}`, () => xs.every((x) => x.t.writes.length === writes + n));
  }
  const held = timing.timers.length;
  await publish('3000');
  await waitFor('the last pass', () => xs.every((x) => x.t.writes.length === writes + 11));
  assert.equal(held + timing.timers.length, 0, 'the idle node holds nothing');
});

test('on a saturated node, publications arriving after a slow pass share the next pass: one write per socket for all, in order', async () => {
  const { timing, xs, publish, slowWrites, saturate, count } = await setup();
  slowWrites(7); // a pass over the two sessions takes 14 ms (under the 20 ms bound), all of it CPU
  const unheld = await saturate();
  assert.ok(unheld > 1 && unheld < 30, `a flush was held once the node had been saturated for a while (after ${unheld})`);
  assert.equal(timing.timers.length, 1, 'one held flush');
  assert.equal(timing.timers[0]?.ms, 14, 'held for one pass duration after the last pass');
  const nextCalls = timing.nextCalls;

  // Two more publications in two separate turns: they wait with the first.
  for (const d of ['4001', '4002']) {
    await publish(d);
    await turn();
  }
  assert.equal(timing.timers.length, 1, 'still one held flush');
  assert.equal(timing.nextCalls, nextCalls, 'no next-tick flush meanwhile');
  for (const x of xs) assert.equal(x.t.writes.length, unheld, 'nothing written while held');

  timing.fire();
  const all = Array.from({ length: unheld + 3 }, (_, i) => i + 1);
  for (const x of xs) {
    assert.equal(x.t.writes.length, unheld + 1, 'one write for the three publications');
    assert.deepEqual(x.t.offsets(CH), all, 'in order, each once');
  }
  // Every publication is observed once, with the delay it waited.
  assert.equal(await count('gatehouse_publish_delivery_seconds'), unheld + 3);
  assert.equal(await count('gatehouse_batch_delay_seconds'), 1);
});

test('the delay batching adds is bounded by maxBatchDelayMs, whatever a pass took', async () => {
  const { timing, xs, publish, slowWrites, saturate } = await setup({ maxBatchDelayMs: 7 });
  slowWrites(500);
  const unheld = await saturate();
  assert.equal(timing.timers[0]?.ms, 7, 'held only up to the bound');
  timing.fire();
  timing.t += 3; // the next publication comes 3 ms after the pass ended
  await publish('5000');
  assert.equal(timing.timers[0]?.ms, 4, 'held only up to the bound, counted from the end of the pass');
  timing.fire();
  for (const x of xs) assert.equal(x.t.offsets(CH).length, unheld + 2);
});

test('maxBatchDelayMs 0 turns batching off: every publication flushes on the next tick', async () => {
  const { timing, xs, slowWrites, saturate } = await setup({ maxBatchDelayMs: 0 });
  slowWrites(100);
  assert.equal(await saturate(20), 20, 'twenty back-to-back slow passes, none held');
  for (const x of xs) assert.equal(x.t.writes.length, 20);
  assert.equal(timing.timers.length, 0);
});

test('the message cap stays exact while a flush is held: the publication past it cuts the session', async () => {
  const { timing, xs, publish, slowWrites, saturate, slow } = await setup({ maxQueueMessages: 2 }, 1);
  const x = xs[0] as { s: Session; t: SlowTransport };
  slowWrites(30);
  const unheld = await saturate(); // held with one publication queued
  await publish('2');
  assert.equal(slow.length, 0, 'two queued: at the cap, not past it');
  await publish('3');
  assert.deepEqual(slow, [x.s], 'the third queued publication passes the cap');
  timing.fire();
  assert.equal(x.t.writes.length, unheld, 'what the cut session had queued is not written');
});

test('FlushPacer: waits only once the CPU share stays at the threshold, for what is left of a pass, up to the bound', () => {
  let cpu = 0;
  let reads = 0;
  const clock = () => {
    reads++;
    return cpu;
  };
  const p = new FlushPacer(DEFAULT_MAX_BATCH_DELAY_MS, clock);
  assert.equal(p.delay(0), 0, 'before any pass');
  // Back-to-back 10 ms passes, all CPU: the smoothed share climbs towards 1.
  let t = 100;
  let n = 0;
  for (; n < 50 && p.busyShare < SATURATED_SHARE; n++) {
    cpu += 10;
    p.passed(t, t + 10);
    t += 10;
    const d = p.delay(t);
    if (p.busyShare < SATURATED_SHARE) assert.equal(d, 0, 'no wait below the threshold');
    else assert.equal(d, 10, 'a wait of one pass duration once at the threshold');
  }
  assert.ok(n > 3 && n < 50, `the threshold is reached after several saturated passes (${n})`);
  assert.equal(p.delay(t + 4), 6, 'what is left of the pass duration');
  assert.equal(p.delay(t + 10), 0, 'nothing once a pass duration has passed');
  // A pass under a millisecond leads to no wait, however busy the process, and reads no CPU clock.
  const before = reads;
  cpu += 0.5;
  p.passed(t, t + 0.5);
  t += 0.5;
  assert.equal(p.delay(t), 0);
  assert.equal(reads, before, 'no CPU clock read after a short pass');
  // A long pass: the wait is bounded.
  cpu += 1000;
  p.passed(t, t + 1000);
  t += 1000;
  assert.equal(p.delay(t), DEFAULT_MAX_BATCH_DELAY_MS);

  // The same passes with the CPU mostly elsewhere: no wait.
  let elsewhere = 0;
  const q = new FlushPacer(DEFAULT_MAX_BATCH_DELAY_MS, () => elsewhere);
  for (let i = 0; i < 50; i++, t += 40) {
    elsewhere += 10;
    q.passed(t, t + 40);
    assert.equal(q.delay(t + 40), 0);
  }
  // Batching off: never a wait, never a CPU clock read.
  let offReads = 0;
  const off = new FlushPacer(0, () => {
    offReads++;
    return t;
  });
  for (let i = 0; i < 20; i++, t += 10) {
    off.passed(t, t + 10);
    assert.equal(off.delay(t + 10), 0);
  }
  assert.equal(offReads, 0);
});
