/**
 * The hub caches a publication's bytes per framing id during a fan-out: two framings with one id
 * would hand subscribers of one the other's bytes (an SSE client getting Pusher frames). Every
 * framing the server builds must have its own id, the one FramingId names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PUSHER_RECOVERY, PUSHER_WS } from '../src/pusher-framing.js';
import { NDJSON_FRAMING, SSE_FRAMING } from '../src/stream-transport.js';
import { FramingId } from '../src/transport.js';
import type { Framing } from '../src/transport.js';
import { WS_FRAMES, WS_PAYLOADS } from '../src/ws-transport.js';

test('every framing has its own id, and FramingId names each once', () => {
  const framings: Framing[] = [WS_FRAMES, WS_PAYLOADS, SSE_FRAMING, NDJSON_FRAMING, PUSHER_WS.frames, PUSHER_WS.payloads];
  framings.push(...Object.values(PUSHER_RECOVERY));
  const ids = framings.map((f) => f.id);
  assert.equal(new Set(ids).size, ids.length, `framing ids repeat: ${ids.join(', ')}`);
  assert.deepEqual(
    [...ids].sort((a, b) => a - b),
    Object.values(FramingId).sort((a, b) => a - b),
  );
});
