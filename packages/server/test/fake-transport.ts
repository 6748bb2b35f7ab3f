/**
 * An in-memory transport for unit tests of the hub, the protocol handler and heartbeats: it records
 * every write (decoded back to protocol frames), lets a test set how many bytes the "kernel" still
 * holds, records close and terminate, and feeds inbound events to its listener. It also checks the
 * parts of the Transport contract a caller can break (totals that do not add up, long close
 * reasons, writes after a close), so a test over it fails where a real connection would misbehave.
 */
import { GatewayMetrics } from '../src/metrics.js';
import type { Framing, Transport, TransportListener } from '../src/transport.js';

/** Metrics for a hub under test: nothing to read at scrape time. */
export function idleMetrics(node: string): GatewayMetrics {
  return new GatewayMetrics(node, {
    connectionCount: () => 0,
    queueDepths: () => [],
    backboneUp: () => true,
    channelCount: () => 0,
    tokenCacheEntries: () => 0,
    draining: () => false,
    backboneStats: () => undefined,
  });
}

/**
 * A framing whose bytes are the UTF-8 JSON itself, so what was written decodes with JSON.parse.
 * Ids 0 and 1 belong to the WebSocket transport; tests pick their own so the hub's per-framing
 * cache slots never collide with a real one.
 */
export class JsonFraming implements Framing {
  constructor(readonly id: number) {}

  message(json: string): Buffer {
    return Buffer.from(json, 'utf8');
  }
}

/** The framing fake transports use unless a test asks for another. */
export const FAKE_FRAMING = new JsonFraming(7);

/** A decoded protocol frame as the client would see it. */
export type FakeFrame = Record<string, any>;

/** One in-memory connection. */
export class FakeTransport implements Transport {
  readonly kind = 'fake';
  /** Every write, in order: `write` records one chunk, `writeMany` all of its chunks. */
  readonly writes: { readonly many: boolean; readonly chunks: readonly Buffer[] }[] = [];
  /** Set by a test to simulate bytes the kernel has not taken yet. */
  bufferedBytes = 0;
  heartbeats = 0;
  readonly pongs: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;
  terminated = false;
  /** Cleared by close and terminate; a test may clear it to mimic a peer that began a close. */
  writable = true;
  private listener: TransportListener | undefined;

  constructor(
    readonly framing: Framing = FAKE_FRAMING,
    readonly remoteAddress = '192.0.2.1',
  ) {}

  listen(listener: TransportListener): void {
    if (this.listener) throw new Error('FakeTransport: listen called twice');
    this.listener = listener;
  }

  /** Waiting for a drain (set by whenDrained, called by `drain()`). */
  private onDrained: (() => void) | undefined;

  whenDrained(fn: () => void): boolean {
    this.onDrained = fn;
    return true;
  }

  /** The kernel took everything: bufferedBytes drops to 0 and a waiting writer is told. */
  drain(): void {
    this.bufferedBytes = 0;
    const fn = this.onDrained;
    this.onDrained = undefined;
    fn?.();
  }

  write(bytes: Buffer): void {
    this.checkOpen();
    this.writes.push({ many: false, chunks: [bytes] });
  }

  writeMany(chunks: readonly Buffer[], totalBytes: number): void {
    this.checkOpen();
    const sum = chunks.reduce((n, c) => n + c.length, 0);
    if (sum !== totalBytes) throw new Error(`FakeTransport: writeMany said ${totalBytes} bytes, chunks hold ${sum}`);
    // The caller may reuse its array once this returns (the hub does); keep a copy.
    this.writes.push({ many: true, chunks: chunks.slice() });
  }

  heartbeat(): void {
    this.checkOpen();
    this.heartbeats++;
  }

  pong(data: Buffer): void {
    this.pongs.push(data);
  }

  close(code: number, reason: string): void {
    if (Buffer.byteLength(reason) > 123 || /[^\x20-\x7e]/.test(reason)) {
      throw new Error(`FakeTransport: close reason must be at most 123 bytes of printable ASCII: ${JSON.stringify(reason)}`);
    }
    this.closed ??= { code, reason };
    this.writable = false;
  }

  terminate(): void {
    this.terminated = true;
    this.writable = false;
  }

  // ---- what was written ----

  /** Every chunk written, in order. */
  get chunks(): Buffer[] {
    return this.writes.flatMap((w) => w.chunks);
  }

  /** Every frame written, decoded. */
  get frames(): FakeFrame[] {
    return this.chunks.map((c) => JSON.parse(c.toString('utf8')) as FakeFrame);
  }

  /** Frames written with `op`, optionally only those of `channel`. */
  framesOf(op: string, channel?: string): FakeFrame[] {
    return this.frames.filter((f) => f['op'] === op && (channel === undefined || f['channel'] === channel));
  }

  /** Offsets of the `pub` frames written for `channel`, in order. */
  offsets(channel: string): number[] {
    return this.framesOf('pub', channel).map((f) => f['offset'] as number);
  }

  /** Forgets what was written so far (to look at one step of a test on its own). */
  clearWrites(): void {
    this.writes.length = 0;
  }

  // ---- inbound events, as the peer would cause them ----

  /** The peer sent `frame` as a text message. */
  receive(frame: FakeFrame | string): void {
    this.emit().onMessage(Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame), 'utf8'), false);
  }

  /** The peer answered a heartbeat below the protocol (a pong). */
  answer(): void {
    this.emit().onAlive();
  }

  /** The peer sent a transport-level ping. */
  ping(data = Buffer.alloc(0)): void {
    this.emit().onPing(data);
  }

  /** The connection ended with `code` (1006: it just dropped). */
  drop(code = 1006): void {
    this.writable = false;
    this.emit().onClose(code);
  }

  /** A transport error happened. */
  fail(err: Error & { code?: string }): void {
    this.emit().onError(err);
  }

  private emit(): TransportListener {
    if (!this.listener) throw new Error('FakeTransport: no listener registered');
    return this.listener;
  }

  private checkOpen(): void {
    // The hub and heartbeats must look at `writable` first; a write after close is their bug.
    if (!this.writable) throw new Error('FakeTransport: write after close');
  }
}
