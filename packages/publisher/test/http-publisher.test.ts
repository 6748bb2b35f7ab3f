import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { waitFor } from '@gatehouse/testkit';
import { HttpPublisher, PublishError, parseRetryAfter, type HttpPublisherOptions } from '../src/index.js';

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly body: unknown;
  readonly at: number;
}
type Handler = (req: IncomingMessage, res: ServerResponse, body: unknown) => void;

/** A local stand-in for the gateway's HTTP API: each request is answered by the next handler. */
async function api(t: TestContext, handlers: Handler[]) {
  const seen: Seen[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
        at: Date.now(),
      });
      const handler = handlers[seen.length - 1] ?? handlers.at(-1)!;
      open.add(res);
      res.on('close', () => open.delete(res));
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  t.after(async () => {
    for (const res of open) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${port}`, seen };
}

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
const apiError = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message } }, headers);

function publisher(t: TestContext, url: string, extra: Partial<HttpPublisherOptions> = {}) {
  const p = new HttpPublisher({ url, apiKey: 'k-123', backoff: { minMs: 10, maxMs: 20 }, random: () => 0, ...extra });
  t.after(() => p.close());
  return p;
}

test('publish posts the channel and data with the API key and resolves with the position', async (t) => {
  const { url, seen } = await api(t, [json(200, { epoch: 'e1', offset: 42 })]);
  const p = publisher(t, url);
  assert.deepEqual(await p.publish('chat:room', { text: 'hi' }), { epoch: 'e1', offset: 42 });
  assert.equal(seen.length, 1);
  assert.deepEqual(
    {
      method: seen[0]!.method,
      path: seen[0]!.path,
      authorization: seen[0]!.authorization,
      contentType: seen[0]!.contentType,
      body: seen[0]!.body,
    },
    {
      method: 'POST',
      path: '/api/publish',
      authorization: 'apikey k-123',
      contentType: 'application/json',
      body: { channel: 'chat:room', data: { text: 'hi' } },
    },
  );
});

test('a path prefix in the base URL is kept', async (t) => {
  const { url, seen } = await api(t, [json(200, { epoch: 'e', offset: 1 })]);
  await publisher(t, `${url}/gatehouse`).publish('chat:a', 1);
  assert.equal(seen[0]!.path, '/gatehouse/api/publish');
});

test('broadcast posts every channel and returns one result per channel, failures included', async (t) => {
  const results = [
    { channel: 'chat:a', epoch: 'e', offset: 3 },
    { channel: 'secret:b', error: { code: 'forbidden', message: 'key may not publish to secret:*' } },
  ];
  const { url, seen } = await api(t, [json(200, { results })]);
  assert.deepEqual(await publisher(t, url).broadcast(['chat:a', 'secret:b'], [1, 2]), results);
  assert.equal(seen[0]!.path, '/api/broadcast');
  assert.deepEqual(seen[0]!.body, { channels: ['chat:a', 'secret:b'], data: [1, 2] });
});

test('errors carry the server code and HTTP status, and client errors are not retried', async (t) => {
  for (const [status, code] of [
    [400, 'bad_request'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [413, 'payload_too_large'],
  ] as const) {
    const { url, seen } = await api(t, [apiError(status, code, `nope ${status}`)]);
    await assert.rejects(publisher(t, url).publish('chat:a', 1), (e: unknown) => {
      assert.ok(e instanceof PublishError);
      assert.equal(e.code, code);
      assert.equal(e.status, status);
      assert.equal(e.message, `nope ${status}`);
      return true;
    });
    assert.equal(seen.length, 1, `HTTP ${status} must not be retried`);
  }
});

test('503 and 429 are retried with backoff until one succeeds', async (t) => {
  const { url, seen } = await api(t, [
    apiError(503, 'unavailable', 'backbone down'),
    apiError(429, 'rate_limited', 'slow down'),
    json(200, { epoch: 'e', offset: 7 }),
  ]);
  assert.deepEqual(await publisher(t, url, { retries: 2 }).publish('chat:a', 1), { epoch: 'e', offset: 7 });
  assert.equal(seen.length, 3);
});

test('retries stop after the configured count and the last error is reported', async (t) => {
  const { url, seen } = await api(t, [apiError(503, 'unavailable', 'still down')]);
  await assert.rejects(
    publisher(t, url, { retries: 1 }).publish('chat:a', 1),
    (e: PublishError) => e.code === 'unavailable' && e.details.attempts === 2,
  );
  assert.equal(seen.length, 2);
});

test('Retry-After is honoured: the next attempt comes no sooner', async (t) => {
  const { url, seen } = await api(t, [
    apiError(429, 'rate_limited', 'slow down', { 'retry-after': '1' }),
    json(200, { epoch: 'e', offset: 1 }),
  ]);
  await publisher(t, url).publish('chat:a', 1);
  assert.equal(seen.length, 2);
  // Timers may fire a millisecond early; the wait itself is what is checked.
  assert.ok(seen[1]!.at - seen[0]!.at >= 995, `retried after ${seen[1]!.at - seen[0]!.at} ms`);
});

test('a Retry-After beyond maxRetryAfterMs is not waited for', async (t) => {
  const { url, seen } = await api(t, [apiError(503, 'unavailable', 'draining', { 'retry-after': '3600' })]);
  await assert.rejects(
    publisher(t, url, { maxRetryAfterMs: 5_000 }).publish('chat:a', 1),
    (e: PublishError) => e.code === 'unavailable' && e.retryAfterMs === 3_600_000,
  );
  assert.equal(seen.length, 1);
});

test('network errors are retried, then reported with code network', async (t) => {
  const { url, seen } = await api(t, [(_req, res) => res.socket?.destroy(), json(200, { epoch: 'e', offset: 2 })]);
  assert.deepEqual(await publisher(t, url).publish('chat:a', 1), { epoch: 'e', offset: 2 });
  assert.equal(seen.length, 2);
  const refused = new HttpPublisher({ url: 'http://127.0.0.1:1', apiKey: 'k', retries: 0 });
  await assert.rejects(refused.publish('chat:a', 1), (e: PublishError) => e.code === 'network' && e.status === undefined);
});

test('an attempt that gets no answer times out', async (t) => {
  const { url, seen } = await api(t, [() => {}]);
  await assert.rejects(publisher(t, url, { timeoutMs: 150, retries: 0 }).publish('chat:a', 1), (e: PublishError) => e.code === 'timeout');
  assert.equal(seen.length, 1);
});

test('answers that are not the API JSON are reported as bad_response', async (t) => {
  const proxy: Handler = (_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
  const { url } = await api(t, [json(200, { nope: true }), proxy]);
  const p = publisher(t, url, { retries: 0 });
  await assert.rejects(p.publish('chat:a', 1), (e: PublishError) => e.code === 'bad_response' && e.status === undefined);
  await assert.rejects(
    p.publish('chat:a', 1),
    (e: PublishError) => e.code === 'bad_response' && e.status === 502 && /Bad Gateway/.test(e.message),
  );
});

test('bad input is rejected before any request', async (t) => {
  const { url, seen } = await api(t, [json(200, { epoch: 'e', offset: 1 })]);
  const p = publisher(t, url);
  await assert.rejects(p.publish('nocolon', 1), (e: PublishError) => e.code === 'invalid_channel');
  await assert.rejects(p.publish('chat:a', undefined), (e: PublishError) => e.code === 'bad_request');
  await assert.rejects(
    p.publish('chat:a', () => 1),
    (e: PublishError) => e.code === 'bad_request',
  );
  await assert.rejects(p.publish('chat:a', { n: 1n }), (e: PublishError) => e.code === 'bad_request');
  await assert.rejects(p.broadcast([], 1), (e: PublishError) => e.code === 'bad_request');
  await assert.rejects(p.broadcast(['chat:a', 'bad'], 1), (e: PublishError) => e.code === 'invalid_channel');
  assert.equal(seen.length, 0);
});

test('close() aborts a request in flight and later calls reject with closed', async (t) => {
  const { url, seen } = await api(t, [() => {}]);
  const p = publisher(t, url, { timeoutMs: 60_000 });
  const inflight = p.publish('chat:a', 1);
  await waitFor('the request to reach the server', () => seen.length === 1);
  await p.close();
  await assert.rejects(inflight, (e: PublishError) => e.code === 'closed');
  await assert.rejects(p.publish('chat:a', 1), (e: PublishError) => e.code === 'closed');
});

test('close() cuts a retry wait short', async (t) => {
  const { url, seen } = await api(t, [apiError(503, 'unavailable', 'later', { 'retry-after': '20' })]);
  const p = publisher(t, url);
  const waiting = p.publish('chat:a', 1);
  await waitFor('the first attempt', () => seen.length === 1);
  await p.close();
  await assert.rejects(waiting, (e: PublishError) => e.code === 'closed');
  assert.equal(seen.length, 1);
});

test('options are validated with errors that name the field', () => {
  const cases: [unknown, RegExp][] = [
    [{ url: 'ws://x', apiKey: 'k' }, /options\.url must use http/],
    [{ url: 'not a url', apiKey: 'k' }, /options\.url must be an absolute/],
    [{ url: 'http://u:p@x', apiKey: 'k' }, /credentials/],
    [{ url: 'http://x' }, /options\.apiKey/],
    [{ url: 'http://x', apiKey: 'a\nb' }, /options\.apiKey/],
    [{ url: 'http://x', apiKey: 'k', retries: -1 }, /options\.retries/],
    [{ url: 'http://x', apiKey: 'k', timeoutMs: 0 }, /options\.timeoutMs/],
    [
      { url: 'http://x', apiKey: 'k', backoff: { minMs: 500, maxMs: 100 } },
      /backoff\.maxMs \(100\) must be at least options\.backoff\.minMs \(500\)/,
    ],
  ];
  for (const [o, re] of cases)
    assert.throws(
      () => new HttpPublisher(o as HttpPublisherOptions),
      (e: unknown) => e instanceof TypeError && re.test(e.message),
    );
});

test('Retry-After parses delta-seconds and HTTP dates', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now), 10_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});
