/**
 * The SDK's fallback transports against real gateways: behind a TCP proxy that refuses WebSocket
 * upgrades (as some corporate proxies do), the client falls back to HTTP streaming, receives and
 * publishes, survives the loss of its node without losing or repeating a publication, and moves
 * back to WebSocket once upgrades pass again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { GatehouseClient } from '@gatehouse/client';
import type { Publication } from '@gatehouse/client';
import { Gateway, MemoryBackbone, MemoryBus } from '@gatehouse/server';
import { waitFor } from '@gatehouse/testkit';

const SECRET = 'sdk-streams-secret-123';
const NS = { public: { historySize: 1000, historyTtlSeconds: 60, anonymous: true, subscribe: 'claims' as const } };

async function gateway(bus: MemoryBus, nodeId: string): Promise<Gateway> {
  const gw = new Gateway(
    { port: 0, host: '127.0.0.1', nodeId, namespaces: NS, announceIntervalMs: 100, tokenSecret: SECRET },
    { backbone: new MemoryBackbone({ bus }), logger: pino({ level: 'silent' }) },
  );
  await gw.start();
  return gw;
}

/** A token that may publish to public channels. */
function token(): Promise<string> {
  return new SignJWT({ publish: ['public:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('fallback-user')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

/** A TCP proxy to the first ready gateway that answers WebSocket upgrades 403 while `blockUpgrades`. */
class UpgradeBlockingProxy {
  blockUpgrades = true;
  refused = 0;
  readonly server: Server;
  readonly links = new Set<Socket>();
  constructor(private readonly upstreams: () => Gateway[]) {
    this.server = createServer((down) => {
      down.once('data', (first: Buffer) => {
        if (this.blockUpgrades && /\r\nupgrade:\s*websocket/i.test(first.toString('latin1'))) {
          this.refused++;
          down.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
          return;
        }
        const target = this.upstreams().find((g) => g.ready);
        if (!target) return down.destroy();
        const up = connect(target.port, '127.0.0.1');
        up.write(first);
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
      down.on('error', () => down.destroy());
    });
  }
  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }
  close(): void {
    for (const s of this.links) s.destroy();
    this.server.close();
  }
}

test('a blocked upgrade falls back to HTTP streaming; the stream survives its node; WebSocket returns later, nothing lost or repeated', async () => {
  const bus = new MemoryBus();
  const a = await gateway(bus, 'fb-a');
  const b = await gateway(bus, 'fb-b');
  const proxy = new UpgradeBlockingProxy(() => [a, b]);
  const port = await proxy.listen();
  const client = new GatehouseClient(`ws://127.0.0.1:${port}/ws`, {
    getToken: token,
    websocketRetryMs: 500,
    backoff: { minMs: 50, maxMs: 200 },
  });
  const got: number[] = [];
  const sub = client.subscribe('public:fallback');
  sub.on('publication', (p: Publication) => got.push(p.data as number));
  let published = 0;
  const pub = async (gw: Gateway) => {
    await gw.publish('public:fallback', String(++published));
  };
  try {
    client.connect();
    await waitFor('connected over http-stream', () => client.state === 'connected' && client.transport === 'http-stream');
    assert.ok(proxy.refused >= 1, 'the WebSocket was tried first');
    await waitFor('subscribed', () => sub.state === 'subscribed');
    for (let i = 0; i < 5; i++) await pub(a);
    await waitFor('five publications', () => got.length === 5);
    // Commands go by POST: a publish from the client gets its reply.
    const pos = await client.publish('public:fallback', ++published);
    assert.ok(pos.offset > 0);
    await waitFor('its own publication', () => got.length === 6);
    // Its node goes away; publications continue meanwhile on the other node.
    const closing = a.close();
    for (let i = 0; i < 5; i++) await pub(b);
    await closing;
    await waitFor('reconnected on b, still streaming', () => client.state === 'connected' && client.transport === 'http-stream');
    for (let i = 0; i < 3; i++) await pub(b);
    await waitFor('every publication', () => got.length === published);
    // Upgrades pass again: the probe finds WebSocket and the client moves back.
    proxy.blockUpgrades = false;
    await waitFor('back on websocket', () => client.state === 'connected' && client.transport === 'websocket', 10_000);
    for (let i = 0; i < 3; i++) await pub(b);
    await waitFor('every publication', () => got.length === published);
    assert.deepEqual(
      got,
      Array.from({ length: published }, (_, i) => i + 1),
      'in order, none lost, none twice',
    );
  } finally {
    client.close();
    proxy.close();
    await a.close();
    await b.close();
  }
});

test("transports: ['http-stream'] alone works with no WebSocket at all", async () => {
  const bus = new MemoryBus();
  const gw = await gateway(bus, 'hs-only');
  const client = new GatehouseClient(`ws://127.0.0.1:${gw.port}/ws`, { transports: ['http-stream'] });
  try {
    const sub = client.subscribe('public:only');
    const got: unknown[] = [];
    sub.on('publication', (p: Publication) => got.push(p.data));
    client.connect();
    await waitFor('subscribed', () => sub.state === 'subscribed');
    await gw.publish('public:only', '{"hello":"stream"}');
    await waitFor('the publication', () => got.length === 1);
    assert.deepEqual(got, [{ hello: 'stream' }]);
    assert.equal(client.transport, 'http-stream');
  } finally {
    client.close();
    await gw.close();
  }
});
