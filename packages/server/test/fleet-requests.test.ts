/**
 * Fleet requests over the control plane (fleet-requests.ts): answers gathered from every node,
 * a silent node named in `missing` once the deadline passes, a request to one node, handler
 * errors carried as errors, and the bound on requests in flight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ControlPlane } from '../src/control.js';
import { FleetRequests, MAX_PENDING_REQUESTS } from '../src/fleet-requests.js';
import { ApiError } from '../src/http-api.js';
import { MemoryBackbone, MemoryBus } from '../src/index.js';

const log = pino({ level: 'silent' });

async function node(bus: MemoryBus, name: string, live: () => string[]): Promise<{ requests: FleetRequests; backbone: MemoryBackbone }> {
  const backbone = new MemoryBackbone({ bus });
  const control = new ControlPlane(backbone, name, log);
  const requests = new FleetRequests(control, live, log);
  await backbone.start({ onPublication: () => {}, onStateChange: () => {}, onControl: (m) => control.dispatch(m) });
  return { requests, backbone };
}

test('a fleet request gathers every answer, names the silent node, and carries handler errors', async (t) => {
  const bus = new MemoryBus();
  const live = () => ['n1', 'n2', 'ghost'];
  const n1 = await node(bus, 'n1', live);
  const n2 = await node(bus, 'n2', live);
  t.after(async () => {
    await n1.backbone.close();
    await n2.backbone.close();
  });
  n1.requests.handle('echo', (d) => ({ from: 'n1', got: d['x'] }));
  n2.requests.handle('echo', async () => {
    throw new ApiError('forbidden', 'not here');
  });
  const answer = await n1.requests.ask('echo', { x: 7 }, 300);
  assert.deepEqual(answer.missing, ['ghost']);
  assert.deepEqual(answer.replies, [
    { node: 'n1', result: { from: 'n1', got: 7 } },
    { node: 'n2', error: { code: 'forbidden', message: 'not here' } },
  ]);
  // Addressed to one node: only it answers, and the answer comes as soon as it does.
  const one = await n2.requests.ask('echo', { x: 1 }, 5000, 'n1');
  assert.deepEqual(one, { replies: [{ node: 'n1', result: { from: 'n1', got: 1 } }], missing: [] });
  // A kind no node handles is an error from each, not a hang.
  const none = await n1.requests.ask('nothing', {}, 5000, 'n2');
  assert.equal(none.replies[0]?.error?.code, 'not_supported');
});

test('requests in flight are bounded: past the bound, 503 at once', async (t) => {
  const bus = new MemoryBus();
  const n1 = await node(bus, 'n1', () => ['n1', 'ghost']);
  t.after(() => n1.backbone.close());
  n1.requests.handle('wait', () => ({}));
  const waiting = Array.from({ length: MAX_PENDING_REQUESTS }, () => n1.requests.ask('wait', {}, 400));
  await assert.rejects(n1.requests.ask('wait', {}, 400), (e: ApiError) => e.code === 'unavailable');
  const answers = await Promise.all(waiting);
  assert.ok(answers.every((a) => a.missing.length === 1 && a.replies.length === 1));
  assert.deepEqual((await n1.requests.ask('wait', {}, 400, 'n1')).missing, [], 'room again once they settled');
});
