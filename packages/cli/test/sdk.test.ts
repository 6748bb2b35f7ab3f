/**
 * The SDK against real gateways over real sockets: recovery after a dropped connection, and each
 * close-code class end to end. A small TCP balancer stands in for the ingress, so "reconnect
 * elsewhere" really lands on another node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { pino } from 'pino';
import { GatehouseClient } from '@gatehouse/client';
import type { Publication } from '@gatehouse/client';
import { Gateway, MemoryBackbone, MemoryBus } from '@gatehouse/server';
import type { GatewayOptions } from '@gatehouse/server';
import { waitFor } from '@gatehouse/testkit';

const SECRET = 'sdk-e2e-secret-123';
const KEY = 'sdk-e2e-key-123';

async function gateway(bus: MemoryBus, options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = new Gateway(
    { port: 0, host: '127.0.0.1', tokenSecret: SECRET, apiKeys: [{ key: KEY }], ...options },
    { backbone: new MemoryBackbone({ bus }), logger: pino({ level: 'silent' }) },
  );
  await gw.start();
  return gw;
}

async function publish(gw: Gateway, channel: string, data: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${gw.port}/api/publish`, {
    method: 'POST',
    headers: { authorization: `apikey ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200);
}

/** A TCP balancer: each new connection goes to the first upstream that is ready. */
class Balancer {
  readonly server: Server;
  readonly links = new Set<Socket>();
  constructor(private readonly upstreams: () => Gateway[]) {
    this.server = createServer((down) => {
      const target = this.upstreams().find((g) => g.ready);
      if (!target) return down.destroy();
      const up = connect(target.port, '127.0.0.1');
      this.links.add(down);
      down.pipe(up).pipe(down);
      const end = () => {
        this.links.delete(down);
        down.destroy();
        up.destroy();
      };
      down.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
    });
  }
  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }
  /** Cuts every connection without a close frame: what a network failure looks like. */
  cutAll(): void {
    for (const s of this.links) s.destroy();
  }
  close(): void {
    this.cutAll();
    this.server.close();
  }
}

function collect(client: GatehouseClient, channel: string): { pubs: Publication[]; gaps: unknown[] } {
  const out = { pubs: [] as Publication[], gaps: [] as unknown[] };
  const sub = client.subscribe(channel);
  sub.on('publication', (p) => out.pubs.push(p));
  sub.on('gap', (g) => out.gaps.push(g));
  return out;
}

test('after a dropped connection the SDK recovers exactly the missed publications, in order, none twice', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus);
  const lb = new Balancer(() => [a]);
  const port = await lb.listen();
  const client = new GatehouseClient(`ws://127.0.0.1:${port}/ws`, { backoff: { minMs: 20, maxMs: 200 } });
  try {
    const got = collect(client, 'public:feed');
    client.connect();
    await waitFor(
      'subscribed',
      () => a.metrics && client.state === 'connected' && got.pubs.length === 0 && bus.subscribers.has('public:feed'),
    );
    for (let i = 1; i <= 5; i++) await publish(a, 'public:feed', i);
    await waitFor('5 live publications', () => got.pubs.length === 5);
    lb.cutAll();
    await waitFor('the client to notice', () => client.state !== 'connected');
    for (let i = 6; i <= 10; i++) await publish(a, 'public:feed', i);
    await waitFor('reconnected', () => client.state === 'connected', 10_000);
    await publish(a, 'public:feed', 11);
    await waitFor('11 publications', () => got.pubs.length >= 11, 10_000);
    assert.deepEqual(
      got.pubs.map((p) => p.data),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    assert.deepEqual(
      got.pubs.map((p) => p.offset),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    assert.equal(got.gaps.length, 0);
    const metrics = await (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();
    assert.match(metrics, /^gatehouse_reconnects_total\{[^}]*\} 1$/m);
  } finally {
    client.close();
    lb.close();
    await a.close();
  }
});

test('when history cannot cover the outage the SDK reports a gap', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus, { namespaces: { public: { anonymous: true, historySize: 2, historyTtlSeconds: 60, subscribe: 'claims' } } });
  const lb = new Balancer(() => [a]);
  const port = await lb.listen();
  const client = new GatehouseClient(`ws://127.0.0.1:${port}/ws`, { backoff: { minMs: 20, maxMs: 200 } });
  try {
    const got = collect(client, 'public:short');
    client.connect();
    await waitFor('subscribed', () => client.state === 'connected' && bus.subscribers.has('public:short'));
    await publish(a, 'public:short', 1);
    await waitFor('1 publication', () => got.pubs.length === 1);
    lb.cutAll();
    await waitFor('the client to notice', () => client.state !== 'connected');
    for (let i = 2; i <= 6; i++) await publish(a, 'public:short', i);
    await waitFor('a gap event', () => got.gaps.length === 1, 10_000);
    await publish(a, 'public:short', 7);
    await waitFor('the stream to continue', () => got.pubs.some((p) => p.data === 7));
  } finally {
    client.close();
    lb.close();
    await a.close();
  }
});

test('terminal class: a refused token stops the client for good', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus, {
    namespaces: { private: { anonymous: false, historySize: 10, historyTtlSeconds: 60, subscribe: 'claims' } },
  });
  const client = new GatehouseClient(`ws://127.0.0.1:${a.port}/ws`, { token: 'not-a-token', backoff: { minMs: 20, maxMs: 100 } });
  const disconnects: { code: number; class: string }[] = [];
  client.on('disconnected', (d) => disconnects.push(d));
  try {
    client.connect();
    await waitFor('closed', () => client.state === 'closed');
    assert.equal(disconnects[0]?.code, 4001);
    assert.equal(disconnects[0]?.class, 'terminal');
    const metrics = await (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();
    assert.match(metrics, /^gatehouse_auth_failures_total\{reason="invalid"[^}]*\} 1$/m, 'one attempt, no retry loop');
  } finally {
    client.close();
    await a.close();
  }
});

test('backoff class: an admission refusal is retried no sooner than the server asked', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus, { connectRate: 1 });
  const filler: GatehouseClient[] = [];
  for (let i = 0; i < 2; i++) {
    const c = new GatehouseClient(`ws://127.0.0.1:${a.port}/ws`, {});
    c.connect();
    filler.push(c);
  }
  const client = new GatehouseClient(`ws://127.0.0.1:${a.port}/ws`, { backoff: { minMs: 10, maxMs: 50 } });
  const events: { at: number; code?: number; retryInMs?: number }[] = [];
  client.on('disconnected', (d) => events.push({ at: Date.now(), code: d.code, retryInMs: d.retryInMs }));
  try {
    await waitFor('the fillers', () => filler.every((c) => c.state === 'connected'));
    client.connect();
    await waitFor('a refusal', () => events.length >= 1);
    assert.equal(events[0]?.code, 4100);
    assert.ok((events[0]?.retryInMs ?? 0) >= 1000, `scheduled after the hint, got ${events[0]?.retryInMs}`);
    await waitFor('admitted on a later try', () => client.state === 'connected', 40_000);
  } finally {
    client.close();
    for (const c of filler) c.close();
    await a.close();
  }
});

test('reconnect class: a drained node hands its clients to another node without loss', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus);
  const b = await gateway(bus);
  const lb = new Balancer(() => [a, b]);
  const port = await lb.listen();
  const client = new GatehouseClient(`ws://127.0.0.1:${port}/ws`, { backoff: { minMs: 20, maxMs: 200 } });
  const nodes: string[] = [];
  client.on('connected', (c) => nodes.push(c.node));
  try {
    const got = collect(client, 'public:moving');
    client.connect();
    await waitFor('subscribed on a', () => client.state === 'connected' && a.connections === 1 && bus.subscribers.has('public:moving'));
    await publish(a, 'public:moving', 1);
    await waitFor('1 publication', () => got.pubs.length === 1);
    const draining = a.drain(200);
    // Publications keep coming through the other node while the client moves.
    for (let i = 2; i <= 6; i++) await publish(b, 'public:moving', i);
    await draining;
    await waitFor('reconnected to b', () => client.state === 'connected' && b.connections === 1, 10_000);
    await publish(b, 'public:moving', 7);
    await waitFor('7 publications', () => got.pubs.length >= 7, 10_000);
    assert.deepEqual(
      got.pubs.map((p) => p.data),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(nodes.length, 2);
    assert.equal(nodes[0], a.options.nodeId);
    assert.equal(nodes[1], b.options.nodeId);
  } finally {
    client.close();
    lb.close();
    await a.close();
    await b.close();
  }
});

test('resumable class: a slow consumer is cut, reconnects and recovers what it missed', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus, { maxQueueMessages: 5 });
  const client = new GatehouseClient(`ws://127.0.0.1:${a.port}/ws`, { backoff: { minMs: 20, maxMs: 200 } });
  const disconnects: { code: number; class: string }[] = [];
  client.on('disconnected', (d) => disconnects.push(d));
  try {
    const got = collect(client, 'public:burst');
    client.connect();
    await waitFor('subscribed', () => client.state === 'connected' && bus.subscribers.has('public:burst'));
    // Ten publications in one tick overflow a five-message queue: the client is cut with 4300.
    const backbone = a.backbone;
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => backbone.publish('public:burst', String(i + 1), { historySize: 100, historyTtlSeconds: 60 })),
    );
    await waitFor('the slow-consumer close', () => disconnects.some((d) => d.code === 4300));
    assert.equal(disconnects.find((d) => d.code === 4300)?.class, 'resumable');
    await waitFor('everything recovered', () => got.pubs.length >= 10, 10_000);
    assert.deepEqual(
      got.pubs.map((p) => p.offset),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  } finally {
    client.close();
    await a.close();
  }
});
