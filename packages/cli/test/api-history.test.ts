/**
 * `POST /api/history` on the backbones whose offsets are not contiguous (JetStream, Kafka): the
 * newest `limit` publications, reversed on request, and the publications after a position.
 * (Redis and memory are in server-api.test.ts and the server package; NATS core refuses.)
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createBackbone } from '@gatehouse/backbones';
import { Gateway } from '@gatehouse/server';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { deleteStreamsContaining } from './jetstream.js';

const KEY = 'history-key-0123';
const CASES = [
  { name: 'jetstream', url: `jetstream://${SERVICES.nats.host}:${SERVICES.nats.port}`, service: 'nats' as const },
  { name: 'kafka', url: `kafka://${SERVICES.kafka.host}:${SERVICES.kafka.port}`, service: 'kafka' as const },
];

async function call(port: number, body: unknown): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}/api/history`, {
    method: 'POST',
    headers: { authorization: `apikey ${KEY}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, ...((await res.json()) as object) };
}

for (const c of CASES) {
  const skip = await serviceSkipReason(c.service, `server API history on ${c.name}`);
  describe(`history on ${c.name}`, { skip: skip ?? false }, () => {
    const token = `h14${randomBytes(3).toString('hex')}`;
    let gw: Gateway | undefined;
    after(async () => {
      await gw?.close();
      if (c.name === 'jetstream') await deleteStreamsContaining(token);
    });

    test('newest publications, reversed, and after a position', async () => {
      const backbone = await createBackbone([c.url], { namespace: token });
      gw = new Gateway({ port: 0, host: '127.0.0.1', apiKeys: [{ key: KEY }] }, { backbone, logger: pino({ level: 'silent' }) });
      await gw.start();
      const channel = `private:${token}`;
      const offsets: number[] = [];
      for (let i = 1; i <= 4; i++) offsets.push((await gw.publish(channel, JSON.stringify({ i }))).offset);
      const newest = await call(gw.port, { channel, limit: 2, reverse: true });
      assert.equal(newest.status, 200, JSON.stringify(newest));
      assert.deepEqual(
        newest.publications.map((p: any) => [p.offset, p.data.i]),
        [
          [offsets[3], 4],
          [offsets[2], 3],
        ],
      );
      assert.equal(newest.offset, offsets[3]);
      const after2 = await call(gw.port, { channel, since: { epoch: newest.epoch, offset: offsets[1] } });
      assert.deepEqual(
        after2.publications.map((p: any) => p.data.i),
        [3, 4],
      );
      assert.equal(after2.complete, true);
    });
  });
}
