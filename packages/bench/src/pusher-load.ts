/**
 * Lean Pusher Channels v7 connections for `--protocol pusher`: the lean connection of ./load.ts
 * (raw TCP, hand-framed WebSocket, retries) speaking Pusher to `/app/{key}`. After
 * `pusher:connection_established` it opts in to Gatehouse's recovery extension (docs/pusher.md) so
 * every event carries `"gatehouse":{"epoch","offset","ts"}`: the offset checks order, `ts` gives the
 * latency. Then it subscribes to the load channel's name (the part after the namespace; the
 * gateway puts it in the app's namespace). It answers `pusher:ping` with `pusher:pong` and
 * WebSocket pings with pongs, as pusher-js does.
 */
import { LeanConnection, LeanState } from './load.js';
import { OP_TEXT, clientFrame, pubOffset, pubTs } from './wire.js';

const RECOVERY_FRAME = Buffer.from('{"event":"gatehouse:recovery","data":{}}');
const PONG_FRAME = Buffer.from('{"event":"pusher:pong","data":{}}');
const GATEHOUSE_KEY = Buffer.from('"gatehouse":{');
const EVENT_PREFIX_LENGTH = '{"event":"'.length;

/** The `pusher:subscribe` frame for a load channel: its name without the namespace (`public:bench` => `bench`). */
export function pusherSubscribeFrameFor(channel: string): Buffer {
  return Buffer.from(JSON.stringify({ event: 'pusher:subscribe', data: { channel: channel.slice(channel.indexOf(':') + 1) } }));
}

/** One Pusher connection subscribed to one channel (`subscribeFrame` from pusherSubscribeFrameFor). */
export class PusherConnection extends LeanConnection {
  /** Waiting for `gatehouse:recovery_enabled` (after connection_established). */
  private optingIn = false;

  /** Pusher speaks first: nothing to send until `pusher:connection_established`. */
  protected override upgraded(): void {}

  protected override text(data: Buffer, start: number, end: number): void {
    // The event name is the first field of every frame the gateway sends: read it without parsing.
    const nameEnd = data.indexOf(34 /* " */, start + EVENT_PREFIX_LENGTH);
    const name = nameEnd > 0 && nameEnd < end ? data.toString('latin1', start + EVENT_PREFIX_LENGTH, nameEnd) : '';
    const at = data.indexOf(GATEHOUSE_KEY, start);
    const position = at >= 0 && at < end ? at : -1;
    if (this.state === LeanState.Subscribed && position >= 0 && !name.startsWith('pusher')) {
      this.delivered(pubTs(data, position, end), pubOffset(data, position, end));
      return;
    }
    switch (name) {
      case 'pusher:ping':
        this.socket.write(clientFrame(OP_TEXT, PONG_FRAME));
        return;
      case 'pusher:connection_established':
        if (this.state !== LeanState.Authenticating || this.optingIn) return;
        this.optingIn = true;
        this.socket.write(clientFrame(OP_TEXT, RECOVERY_FRAME));
        return;
      case 'gatehouse:recovery_enabled':
        if (!this.optingIn) return;
        this.optingIn = false;
        this.state = LeanState.Subscribing;
        this.socket.write(clientFrame(OP_TEXT, this.subscribeFrame));
        return;
      case 'pusher_internal:subscription_succeeded':
        if (this.state !== LeanState.Subscribing) return;
        this.subscribed(position >= 0 ? pubOffset(data, position, end) : 0);
        return;
      case 'pusher:error':
      case 'pusher:subscription_error':
        if (this.state !== LeanState.Subscribed) this.failed(`${name} ${data.toString('utf8', start, Math.min(end, start + 120))}`);
        else this.stats.note(name);
        return;
      default:
        return;
    }
  }
}
