/**
 * HistoryReader over an in-memory partition log: exact recovery out of a log shared by many
 * channels, retention and limits, budgets that end in "incomplete", and position lookups.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeEnvelope } from '@gatehouse/backbone-kit';
import { HistoryReader, type LogRecord, type PartitionLog } from '../src/history.js';

const EPOCH = 'topic-id:0';

/** One partition; chunks begin a little before the requested offset, as real batches do. */
class FakeLog implements PartitionLog {
  records: LogRecord[] = [];
  start = 0n;
  reads = 0;
  constructor(private readonly chunk = 5) {}

  append(channel: string, data: string, ts = 1_000, keep: [number, number] = [100, 0]): number {
    const offset = BigInt(this.records.length);
    this.records.push({
      offset,
      key: Buffer.from(channel),
      value: Buffer.from(encodeEnvelope({ channel, ts, data, historySize: keep[0], historyTtlSeconds: keep[1] })),
      timestamp: ts,
    });
    return Number(offset) + 1;
  }

  async bounds(): Promise<{ start: bigint; end: bigint }> {
    return { start: this.start, end: BigInt(this.records.length) };
  }

  async read(_p: number, from: bigint): Promise<{ records: readonly LogRecord[]; next: bigint }> {
    this.reads++;
    const begin = Math.max(Number(this.start), Number(from) - 2);
    const records = this.records.slice(begin, Number(from) + this.chunk);
    return { records, next: records.length ? (records.at(-1) as LogRecord).offset + 1n : from };
  }
}

function reader(
  log: PartitionLog,
  over: Partial<{ scanRecords: number; timeoutMs: number; cacheSize: number }> = {},
  now = () => 2_000,
  onMalformed: (reason: string, channel: string) => void = () => {},
) {
  return new HistoryReader(log, { scanRecords: 10_000, timeoutMs: 10_000, cacheSize: 100, ...over }, onMalformed, now);
}

const loc = (channel: string) => ({ channel, partition: 0, epoch: EPOCH });

test("recovers exactly one channel's publications out of a shared log", async () => {
  const log = new FakeLog();
  const mine: number[] = [];
  for (let i = 0; i < 12; i++) {
    mine.push(log.append('a:mine', JSON.stringify({ i })));
    log.append('a:other', '"noise"');
  }
  const h = await reader(log).read(loc('a:mine'), { epoch: EPOCH, offset: mine[3] as number }, 100);
  assert.equal(h.complete, true);
  assert.deepEqual(
    h.publications.map((p) => p.offset),
    mine.slice(4),
  );
  assert.deepEqual(
    h.publications.map((p) => JSON.parse(p.data).i),
    [4, 5, 6, 7, 8, 9, 10, 11],
  );
  assert.equal(h.offset, mine.at(-1));
  assert.ok(h.publications.every((p) => p.channel === 'a:mine' && p.epoch === EPOCH && p.ts === 1_000));
});

test("nothing missed is complete and keeps the caller's position", async () => {
  const log = new FakeLog();
  const last = log.append('a:x', '1');
  log.append('a:y', '2');
  const h = await reader(log).read(loc('a:x'), { epoch: EPOCH, offset: last }, 10);
  assert.deepEqual(h, { epoch: EPOCH, offset: last, publications: [], complete: true });
});

test('more missed publications than the limit is incomplete', async () => {
  const log = new FakeLog();
  for (let i = 0; i < 5; i++) log.append('a:x', String(i));
  const h = await reader(log).read(loc('a:x'), { epoch: EPOCH, offset: 0 }, 4);
  assert.deepEqual([h.complete, h.publications.length, h.offset], [false, 0, 5]);
  assert.equal((await reader(log).read(loc('a:x'), { epoch: EPOCH, offset: 0 }, 5)).complete, true);
});

test("the newest publication's historySize and TTL bound what may be recovered", async () => {
  const log = new FakeLog();
  for (let i = 0; i < 5; i++) log.append('a:x', String(i), 1_000, [3, 0]);
  assert.equal((await reader(log).read(loc('a:x'), { epoch: EPOCH, offset: 1 }, 100)).complete, false, 'four missed, three kept');
  assert.equal((await reader(log).read(loc('a:x'), { epoch: EPOCH, offset: 2 }, 100)).complete, true, 'three missed, three kept');

  const ttl = new FakeLog();
  ttl.append('a:t', '1', 1_000, [100, 2]);
  ttl.append('a:t', '2', 2_500, [100, 2]);
  assert.equal((await reader(ttl, {}, () => 2_900).read(loc('a:t'), { epoch: EPOCH, offset: 0 }, 100)).complete, true);
  assert.equal(
    (await reader(ttl, {}, () => 3_100).read(loc('a:t'), { epoch: EPOCH, offset: 0 }, 100)).complete,
    false,
    'the first is older than 2 s',
  );
  assert.equal((await reader(ttl, {}, () => 3_100).read(loc('a:t'), { epoch: EPOCH, offset: 1 }, 100)).complete, true, 'the second is not');
});

test('another epoch, a trimmed log start or a position past the end are incomplete', async () => {
  const log = new FakeLog();
  for (let i = 0; i < 6; i++) log.append('a:x', String(i));
  const r = reader(log);
  assert.equal((await r.read(loc('a:x'), { epoch: 'old:0', offset: 2 }, 100)).complete, false);
  assert.equal((await r.read(loc('a:x'), { epoch: EPOCH, offset: 99 }, 100)).complete, false);
  log.start = 3n;
  const h = await r.read(loc('a:x'), { epoch: EPOCH, offset: 2 }, 100);
  assert.deepEqual([h.complete, h.offset], [false, 6], 'records at Kafka offsets 2 were removed');
  assert.equal((await r.read(loc('a:x'), { epoch: EPOCH, offset: 3 }, 100)).complete, true, 'from the log start on everything is there');
});

test('a read that runs out of its record budget is incomplete, not a guess', async () => {
  const log = new FakeLog();
  log.append('a:x', '"first"');
  for (let i = 0; i < 50; i++) log.append('a:other', String(i));
  log.append('a:x', '"late"');
  const h = await reader(log, { scanRecords: 20 }).read(loc('a:x'), { epoch: EPOCH, offset: 1 }, 100);
  assert.equal(h.complete, false);
  assert.equal(h.offset, 52, 'the position falls back to the log end, still a safe place to recover from');
});

test('malformed records of the channel are skipped and counted', async () => {
  const log = new FakeLog();
  log.append('a:x', '1');
  log.records.push({ offset: 1n, key: Buffer.from('a:x'), value: Buffer.from('garbage'), timestamp: 0 });
  log.append('a:x', '3');
  const seen: string[] = [];
  const r = reader(log, {}, undefined, (reason, channel) => seen.push(`${channel}: ${reason}`));
  const h = await r.read(loc('a:x'), { epoch: EPOCH, offset: 0 }, 100);
  assert.deepEqual(
    h.publications.map((p) => p.offset),
    [1, 3],
  );
  assert.deepEqual(seen, ['a:x: not JSON']);
});

test('position: 0 for a channel never seen, the log start once history was removed, else the newest offset', async () => {
  const log = new FakeLog();
  for (let i = 0; i < 30; i++) log.append('a:busy', String(i));
  const r = reader(log);
  assert.equal((await r.read(loc('a:never'), undefined, 0)).offset, 0);
  assert.equal((await r.read(loc('a:busy'), undefined, 0)).offset, 30);
  log.start = 10n;
  assert.equal((await reader(log).read(loc('a:never'), undefined, 0)).offset, 10);
});

test('position lookups are cached and only scan what was written since', async () => {
  const log = new FakeLog(5);
  const target = log.append('a:x', '"old"');
  for (let i = 0; i < 40; i++) log.append('a:other', String(i));
  const r = reader(log);
  assert.equal(await r.position(loc('a:x')), target);
  const fullScan = log.reads;
  assert.equal(await r.position(loc('a:x')), target);
  assert.equal(log.reads, fullScan, 'nothing new: no read at all');
  log.append('a:other', 'x');
  const newer = log.append('a:x', '"new"');
  assert.equal(await r.position(loc('a:x')), newer);
  assert.equal(log.reads - fullScan, 1, 'one short read of the two new records');
});

test('concurrent position lookups for one channel share one scan', async () => {
  const log = new FakeLog(5);
  log.append('a:x', '1');
  for (let i = 0; i < 40; i++) log.append('a:other', String(i));
  const r = reader(log, { cacheSize: 0 });
  const all = await Promise.all(Array.from({ length: 20 }, () => r.position(loc('a:x'))));
  assert.deepEqual(new Set(all), new Set([1]));
  const oneScan = log.reads;
  await r.position(loc('a:x'));
  assert.equal(log.reads - oneScan, oneScan, 'twenty concurrent lookups cost what one lookup costs');
});

test('the position cache stays within its size', async () => {
  const log = new FakeLog();
  log.append('a:x', '1');
  const r = reader(log, { cacheSize: 3 });
  for (let i = 0; i < 10; i++) await r.position(loc(`a:c${i}`));
  const reads = log.reads;
  await r.position(loc('a:c0'));
  assert.ok(log.reads > reads, 'the oldest entry was evicted, so it is looked up again');
  await r.position(loc('a:c9'));
  const after = log.reads;
  await r.position(loc('a:c9'));
  assert.equal(log.reads, after, 'a recent entry is still cached');
});
