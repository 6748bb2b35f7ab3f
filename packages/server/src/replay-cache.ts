/**
 * Encoded replays, shared. After a deploy many clients recover the same channels at once; each
 * replayed publication is encoded and framed once per framing and the same bytes are queued for
 * every recovering client, instead of a copy per client. The cache is bounded by bytes; the oldest
 * entries go first.
 */
import { encodePub } from '@gatehouse/protocol';
import type { Publication } from './backbone.js';
import type { Framing } from './transport.js';

/** Bytes a replay frame costs beyond its payload: the pub frame's fields and framing. */
const FRAME_OVERHEAD = 96;

/** Estimated bytes of `p` as a queued frame. */
export function replayBytes(p: Publication): number {
  return p.data.length + p.channel.length + p.epoch.length + FRAME_OVERHEAD;
}

/** A byte-bounded cache of replayed publications' frames. */
export class ReplayCache {
  private readonly frames = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** The frame of `p` in `framing`, built on first use. */
  frame(p: Publication, framing: Framing): Buffer {
    const key = `${framing.id}\n${p.channel}\n${p.epoch}\n${p.offset}`;
    const hit = this.frames.get(key);
    if (hit) return hit;
    const built = framing.publication ? framing.publication(p) : framing.message(encodePub(p.channel, p.epoch, p.offset, p.ts, p.data));
    if (built.length <= this.maxBytes / 8) {
      // A small Buffer is a slice of Node's shared 8 KiB pool: keeping it would keep the whole
      // slab alive and the byte count would lie. Cache a copy that owns its memory.
      let owned = built;
      if (built.buffer.byteLength > built.length) {
        owned = Buffer.allocUnsafeSlow(built.length);
        built.copy(owned);
      }
      this.frames.set(key, owned);
      this.bytes += owned.length;
      for (const [k, f] of this.frames) {
        if (this.bytes <= this.maxBytes) break;
        this.frames.delete(k);
        this.bytes -= f.length;
      }
      return owned;
    }
    return built;
  }

  /** Bytes held. */
  get size(): number {
    return this.bytes;
  }
}
