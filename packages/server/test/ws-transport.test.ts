/**
 * The WebSocket transport's write path over a stand-in for ws's WebSocket and its raw socket (the
 * fast path writes to the socket directly): what each socket is handed, byte for byte and by
 * identity.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { WS_FRAMES, WebSocketTransport, probeFastPath } from '../src/ws-transport.js';

/** Just enough of a WebSocket and its socket for the fast path to write. */
function fakeWs(): { ws: WebSocket; written: Buffer[] } {
  const written: Buffer[] = [];
  const socket = { writableLength: 0, writable: true, write: (b: Buffer) => written.push(b) > 0, once() {} };
  const ws = { _socket: socket, readyState: 1, on() {}, close() {}, _eventsCount: 0, _events: {} };
  return { ws: ws as unknown as WebSocket, written };
}

test('a batch of frames is joined once and the same bytes are written to every socket that gets that batch', () => {
  assert.equal(probeFastPath(), true, 'this ws has the fast path');
  const frames = ['{"a":1}', '{"b":2}', '{"c":3}'].map((j) => WS_FRAMES.message(j));
  const total = frames.reduce((n, f) => n + f.length, 0);
  const sockets = [fakeWs(), fakeWs(), fakeWs()];
  for (const x of sockets) new WebSocketTransport(x.ws, '192.0.2.1').writeMany(frames, total);
  const [first, ...rest] = sockets.map((x) => x.written[0]);
  assert.deepEqual(first, Buffer.concat(frames), 'the frames, in order, in one write');
  for (const b of rest) assert.equal(b, first, 'the same Buffer, not a copy per socket');

  // Another batch (a different frame, or the same frames in another order) is joined anew.
  const other = fakeWs();
  const swapped = [frames[1], frames[0], frames[2]] as Buffer[];
  new WebSocketTransport(other.ws, '192.0.2.1').writeMany(swapped, total);
  assert.deepEqual(other.written[0], Buffer.concat(swapped));
  const again = fakeWs();
  new WebSocketTransport(again.ws, '192.0.2.1').writeMany(frames, total);
  assert.deepEqual(again.written[0], Buffer.concat(frames));
});
