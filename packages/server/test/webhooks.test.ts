/**
 * Webhook delivery on its own: retried until accepted with the same event ids, signed, and bounded
 * when the endpoint is dead (the oldest events go, counted; pushing never waits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { waitFor } from '@gatehouse/testkit';
import type { GatewayMetrics } from '../src/metrics.js';
import { WebhookSender, signWebhook, type WebhookEvent } from '../src/webhooks.js';
import { idleMetrics } from './fake-transport.js';

const metrics = (): GatewayMetrics => idleMetrics('wh');

async function counter(m: GatewayMetrics, outcome: string): Promise<number> {
  const json = await m.registry.getSingleMetric('gatehouse_webhook_events_total')?.get();
  return json?.values.find((v) => v.labels['outcome'] === outcome)?.value ?? 0;
}

const event = (i: number): WebhookEvent => ({ id: `e${i}`, name: 'user_online', time_ms: i, user_id: `u${i}` });

test('a refused request is retried until accepted, signed, with the same event ids', async () => {
  let calls = 0;
  const got: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      assert.equal(req.headers['x-gatehouse-signature'], signWebhook('s3cret-key', body));
      if (++calls <= 2) return res.writeHead(503).end();
      got.push(...(JSON.parse(body) as { events: WebhookEvent[] }).events.map((e) => e.id));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const m = metrics();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const sender = new WebhookSender({ url, secret: 's3cret-key', retryMs: 10, concurrency: 1 }, m, pino({ level: 'silent' }));
  try {
    sender.push(event(1));
    sender.push(event(2));
    await waitFor('both events accepted', () => (got.length >= 2 ? true : undefined), 5000);
    assert.deepEqual(got.sort(), ['e1', 'e2']);
    // The endpoint saw them before the sender read its answer: wait for the sender to count them.
    await waitFor('both events counted delivered', async () => ((await counter(m, 'delivered')) >= 2 ? true : undefined), 5000);
    assert.equal(await counter(m, 'delivered'), 2);
  } finally {
    sender.close();
    server.close();
  }
});

test('a dead endpoint: the queue stays bounded, the oldest events are dropped and counted, push never waits', async () => {
  // Accepts connections and never answers.
  const server = createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const m = metrics();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const sender = new WebhookSender(
    { url, secret: 's3cret-key', maxQueue: 50, batch: 10, timeoutMs: 200, retryMs: 50, attempts: 2 },
    m,
    pino({ level: 'silent' }),
  );
  try {
    for (let i = 0; i < 1000; i++) sender.push(event(i));
    assert.ok(sender.waiting <= 50, `${sender.waiting} waiting`);
    // The first two events went out at once (two requests in flight, one event each), fifty wait.
    assert.equal(await counter(m, 'dropped'), 1000 - 2 - 50);
    await waitFor('the in-flight requests to fail', async () => ((await counter(m, 'failed')) >= 2 ? true : undefined), 10_000);
    assert.ok(sender.waiting <= 50);
  } finally {
    sender.close();
    server.closeAllConnections();
    server.close();
  }
});
