/**
 * How Pusher frames ride the hub. A Pusher event's publication carries the frame Pusher clients get,
 * behind one field that names the socket to skip (`socket_id` exclusion; empty for none):
 *
 *   {"x":"123.456","event":"my-event","channel":"my-channel","data":"..."}
 *
 * The hub asks a Pusher framing for a publication's bytes once per fan-out; it drops the `x` field
 * with one slice (`{` + the rest) and frames that. Whether a subscriber is the excluded socket is a
 * string compare against the id parsed once per publication. So exclusion works on every node, for
 * the cost of a few bytes in the publication. Publications that are not Pusher events (published
 * through Gatehouse's own API into an app's namespace) reach Pusher clients as the event
 * `gatehouse:message` with the publication's JSON text as `data`.
 */
import { CloseCode, closeClass } from '@gatehouse/protocol';
import type { Publication } from './backbone.js';
import { pusherChannel } from './pusher-apps.js';
import type { Session } from './session.js';
import { FramingId } from './transport.js';
import type { Framing } from './transport.js';
import { WS_FRAMES, WS_PAYLOADS, wsVariant } from './ws-transport.js';
import type { WsVariant } from './ws-transport.js';

const X_PREFIX = '{"x":"';

/** The publication data of one Pusher event (see the file comment). `dataJson` is JSON text. */
export function eventPublication(excluded: string, event: string, channel: string, dataJson: string, userId?: string): string {
  const user = userId === undefined ? '' : `,"user_id":${JSON.stringify(userId)}`;
  return `${X_PREFIX}${excluded}","event":${JSON.stringify(event)},"channel":${JSON.stringify(channel)},"data":${dataJson}${user}}`;
}

/** One Pusher frame as JSON text; `data` is stringified as Pusher's server does for its own events. */
export function pusherFrame(event: string, data: unknown, channel?: string): string {
  const ch = channel === undefined ? '' : `,"channel":${JSON.stringify(channel)}`;
  return `{"event":${JSON.stringify(event)}${ch},"data":${JSON.stringify(typeof data === 'string' ? data : JSON.stringify(data))}}`;
}

// The last publication parsed: a fan-out asks about the same publication for every subscriber.
let lastPub: Publication | undefined;
let lastExcluded = '';
let lastFrame = '';

function parse(pub: Publication): void {
  if (pub === lastPub) return;
  lastPub = pub;
  const d = pub.data;
  const end = d.startsWith(X_PREFIX) ? d.indexOf('"', X_PREFIX.length) : -1;
  if (end > 0 && d.charCodeAt(end + 1) === 44 /* , */) {
    lastExcluded = d.slice(X_PREFIX.length, end);
    lastFrame = '{' + d.slice(end + 2);
  } else {
    lastExcluded = '';
    lastFrame = `{"event":"gatehouse:message","channel":${JSON.stringify(pusherChannel(pub.channel))},"data":${JSON.stringify(d)}}`;
  }
}

/** The Pusher close code for a Gatehouse close code, by its class (pusher-js acts on the range). */
export function pusherCloseCode(code: number): number {
  if (code >= 4000 && code < 4300 && code !== 4000 && closeClass(code) !== 'terminal') return code; // 41xx backoff, 42xx reconnect
  if (code === CloseCode.HeartbeatTimeout) return 4201; // Pusher: pong reply not received
  switch (closeClass(code)) {
    case 'reconnect':
      return 4200;
    case 'backoff':
    case 'resumable':
      return 4100;
    default:
      return code === CloseCode.UnsupportedVersion ? 4007 : 4009;
  }
}

// The same publication's frame with its position, for connections that opted in to recovery.
let lastPositioned: Publication | undefined;
let lastPositionedFrame = '';

function positionedFrame(pub: Publication): string {
  parse(pub);
  if (pub !== lastPositioned) {
    lastPositioned = pub;
    lastPositionedFrame = `${lastFrame.slice(0, -1)},"gatehouse":{"epoch":${JSON.stringify(pub.epoch)},"offset":${pub.offset},"ts":${pub.ts}}}`;
  }
  return lastPositionedFrame;
}

/**
 * The opt-in recovery extension's framing (docs/pusher.md): every event carries its position in a
 * `gatehouse` field, `subscription_succeeded` carries the channel's position and whether a
 * requested replay was made, and a gap is reported as `gatehouse:gap`, never silent.
 */
function recoveryFraming(id: number, base: Framing): Framing {
  return {
    ...pusherFraming(id, base),
    publication: (pub) => base.message(positionedFrame(pub)),
    subscribed(channel, result) {
      const name = pusherChannel(channel);
      if (name.startsWith('presence-')) return undefined;
      return `{"event":"pusher_internal:subscription_succeeded","channel":${JSON.stringify(name)},"data":"{}","gatehouse":${JSON.stringify(result)}}`;
    },
    gap: (channel, reason) => pusherFrame('gatehouse:gap', { reason }, pusherChannel(channel)),
  };
}

function pusherFraming(id: number, base: Framing): Framing {
  return {
    id,
    message: base.message,
    publication(pub) {
      parse(pub);
      return base.message(lastFrame);
    },
    excludes(pub: Publication, s: Session) {
      parse(pub);
      return lastExcluded !== '' && lastExcluded === s.id;
    },
    subscribed(channel) {
      // Presence channels are answered by the Pusher handler, with the members.
      const name = pusherChannel(channel);
      return name.startsWith('presence-') ? undefined : pusherFrame('pusher_internal:subscription_succeeded', '{}', name);
    },
    gap: () => undefined,
    closeCode: pusherCloseCode,
  };
}

/** Pusher over WebSocket: whole frames (fast path) or payloads, and `pusher:ping` as the heartbeat. */
export const PUSHER_WS: WsVariant = wsVariant(
  pusherFraming(FramingId.PusherFrames, WS_FRAMES),
  pusherFraming(FramingId.PusherPayloads, WS_PAYLOADS),
  pusherFrame('pusher:ping', '{}'),
);

/** The recovery extension's framings, by the framing id of the plain Pusher framing they replace. */
export const PUSHER_RECOVERY: Record<number, Framing> = {
  [PUSHER_WS.frames.id]: recoveryFraming(FramingId.PusherRecoveryFrames, WS_FRAMES),
  [PUSHER_WS.payloads.id]: recoveryFraming(FramingId.PusherRecoveryPayloads, WS_PAYLOADS),
};
