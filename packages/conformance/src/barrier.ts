/**
 * The history barrier, checked under subscribe churn with steady publishing. The gateway core
 * answers a client's subscribe with the position `history(channel)` gave and then forwards what
 * `onPublication` delivers; a publication at or below that position arriving after the read
 * would reach the client twice (once in the position, once live). So, on a node where the
 * channel is subscribed, a publication at or below the position a history read answered must
 * never be delivered after that read resolved.
 *
 * An adapter whose history reads and live deliveries travel on different connections (Redis:
 * a command connection and a subscriber connection) can break this without ever losing or
 * reordering anything, which is why it gets a case of its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backbone, Publication } from '@gatehouse/backbone-kit';
import { waitFor } from '@gatehouse/testkit';
import { uniqueChannel, type RecordingHandler } from './index.js';

/** What the barrier case needs from the running suite (read when the test runs). */
export interface BarrierContext {
  /** The reading node (it subscribes and reads history). */
  readonly reader: () => Backbone;
  /** What the reading node was handed. */
  readonly recorder: () => RecordingHandler;
  /** The publishing node. */
  readonly publisher: () => Backbone;
  readonly timeoutMs: number;
}

/** History reads made while publishing runs; every fourth one follows a fresh subscribe. */
const READS = 400;
/** Publish chains running side by side, so publications keep arriving during every read. */
const PUBLISHERS = 4;

/** One history read: the position it answered and how many deliveries had arrived by then. */
interface Read {
  readonly epoch: string;
  readonly offset: number;
  readonly deliveredBefore: number;
}

/** Registers the barrier case inside the running suite's `describe`. */
export function testHistoryBarrier(ctx: BarrierContext): void {
  test('history is a barrier: nothing at or below the position it answered is delivered after it (subscribe churn under publishing)', async (t) => {
    const reader = ctx.reader();
    if (!reader.capabilities.sequenced) return t.skip('capabilities.sequenced is false: no positions to compare');
    const rec = ctx.recorder();
    const publisher = ctx.publisher();
    const ch = uniqueChannel('barrier');
    await reader.subscribe(ch);

    let publishing = true;
    const publishLoop = async (): Promise<void> => {
      for (let i = 0; publishing; i++) await publisher.publish(ch, JSON.stringify({ i }), { historySize: 10, historyTtlSeconds: 60 });
    };
    const loops = Array.from({ length: PUBLISHERS }, publishLoop);

    const reads: Read[] = [];
    try {
      for (let i = 0; i < READS; i++) {
        if (i % 4 === 3) {
          // What the gateway does when the last local subscriber left and a new one came.
          await reader.unsubscribe(ch);
          await reader.subscribe(ch);
        }
        const h = await reader.history(ch, undefined, 0);
        reads.push({ epoch: h.epoch, offset: h.offset, deliveredBefore: rec.of(ch).length });
      }
    } finally {
      publishing = false;
      await Promise.all(loops);
    }

    // Everything published has been delivered once a publication made after the loops stopped is.
    const last = await publisher.publish(ch, '{"last":true}', { historySize: 10, historyTtlSeconds: 60 });
    await waitFor(
      `the last publication (offset ${last.offset}) at the reader`,
      () => rec.of(ch).some((p) => p.offset === last.offset),
      ctx.timeoutMs,
      5,
    );

    const delivered = rec.of(ch);
    const first = reads[0] as Read;
    const moved = reads.filter((r) => r.epoch === first.epoch && r.offset > first.offset).length;
    assert.ok(moved > 0, `publications were made while the reads ran (positions ${first.offset}..${(reads.at(-1) as Read).offset})`);
    const late: string[] = [];
    for (const r of reads) {
      const after = delivered.slice(r.deliveredBefore).filter((p: Publication) => p.epoch === r.epoch && p.offset <= r.offset);
      if (after.length > 0) late.push(`read at ${r.offset}: then ${after.map((p) => p.offset).join(',')}`);
    }
    assert.equal(
      late.length,
      0,
      `${late.length} of ${reads.length} history reads were followed by publications at or below their position: ${late.slice(0, 5).join('; ')}`,
    );
  });
}
