/**
 * Every close code a Gatehouse server sends, and the class that decides what a client does next.
 * docs/protocol.md renders this table; the SDK's reconnect logic reads it; a conformance test
 * checks each class end to end.
 */

/** What a client should do after a close, by class. */
export type CloseClass =
  /** Do not reconnect: the same attempt would fail again (bad token, forbidden, protocol misuse). */
  | 'terminal'
  /** Reconnect with exponential backoff and full jitter, never sooner than the server's hint. */
  | 'backoff'
  /** Reconnect soon (small jitter, or the server's hint): the node is draining or rebalancing. */
  | 'reconnect'
  /** Reconnect after a short pause and recover from the last offsets: nothing is lost. */
  | 'resumable';

/** Application close codes (4000-4999) plus the RFC 6455 codes the server uses on purpose. */
export const CloseCode = {
  /** RFC 6455: the server is going away without a drain (process exit). */
  GoingAway: 1001,
  /** RFC 6455: the peer broke the WebSocket protocol (sent by the WebSocket library). */
  ProtocolError: 1002,
  /** RFC 6455: a text message that is not valid UTF-8. */
  InvalidPayload: 1007,
  /** RFC 6455: a message or rate that breaks policy (message flood, ping flood). */
  PolicyViolation: 1008,
  /** RFC 6455: a message above the payload limit. */
  MessageTooBig: 1009,

  /** The first frame was not a valid `connect`, or a frame broke the protocol. */
  BadRequest: 4000,
  /** The token is missing, malformed, wrongly signed, or expired at connect. */
  Unauthorized: 4001,
  /** No `connect` frame arrived within the authentication deadline. */
  AuthTimeout: 4002,
  /** The token is valid but grants nothing this connection may do. */
  Forbidden: 4003,
  /** The client speaks a protocol version this server does not. */
  UnsupportedVersion: 4004,
  /** The token expired while connected and was not refreshed within the grace period. */
  TokenExpired: 4005,
  /** The application's backend disconnected this user or client (server API) and asked it to stay away. */
  Disconnected: 4006,

  /** The node refused the connection (connect-rate limit, event-loop lag, capacity). */
  Overloaded: 4100,
  /** This user already holds the maximum number of connections. */
  UserConnectionLimit: 4101,
  /** The backbone is unreachable; the node cannot serve this connection now. */
  BackboneUnavailable: 4102,

  /** The node is draining (deploy, scale-down): reconnect to another node. */
  Drain: 4200,
  /** The node sheds load to rebalance the fleet: reconnect to another node. */
  Rebalance: 4201,
  /** The application's backend disconnected this user or client (server API) and lets it reconnect. */
  DisconnectedReconnect: 4202,

  /** The connection could not keep up: its outbound queue hit the cap. Reconnect and recover. */
  SlowConsumer: 4300,
  /** The connection missed its heartbeat deadline. Reconnect and recover. */
  HeartbeatTimeout: 4301,
} as const;

/** One row of the close-code table. */
export interface CloseCodeInfo {
  readonly code: number;
  readonly name: string;
  readonly class: CloseClass;
  readonly meaning: string;
}

/** The table of every close code the server sends; the single source for docs and SDK. */
export const CLOSE_CODES: readonly CloseCodeInfo[] = [
  { code: 1001, name: 'GoingAway', class: 'reconnect', meaning: 'server stopped without a drain window' },
  { code: 1002, name: 'ProtocolError', class: 'terminal', meaning: 'WebSocket protocol violation (bad frame)' },
  { code: 1007, name: 'InvalidPayload', class: 'terminal', meaning: 'text message is not valid UTF-8' },
  { code: 1008, name: 'PolicyViolation', class: 'backoff', meaning: 'message or ping rate above the limit' },
  { code: 1009, name: 'MessageTooBig', class: 'terminal', meaning: 'message above the payload limit' },
  { code: 4000, name: 'BadRequest', class: 'terminal', meaning: 'invalid first frame or protocol misuse' },
  { code: 4001, name: 'Unauthorized', class: 'terminal', meaning: 'token missing, malformed, wrongly signed or expired' },
  { code: 4002, name: 'AuthTimeout', class: 'terminal', meaning: 'no connect frame within the authentication deadline' },
  { code: 4003, name: 'Forbidden', class: 'terminal', meaning: 'token valid but not allowed to connect' },
  { code: 4004, name: 'UnsupportedVersion', class: 'terminal', meaning: 'protocol version not supported' },
  {
    code: 4005,
    name: 'TokenExpired',
    class: 'terminal',
    meaning: 'token expired while connected and was not refreshed (the SDK reconnects once with a fresh token if it has getToken)',
  },
  { code: 4006, name: 'Disconnected', class: 'terminal', meaning: 'disconnected by the server API; do not reconnect' },
  {
    code: 4100,
    name: 'Overloaded',
    class: 'backoff',
    meaning: 'admission refused: connect rate, event-loop lag or capacity; reason carries retry=<ms>',
  },
  { code: 4101, name: 'UserConnectionLimit', class: 'backoff', meaning: 'user holds the maximum number of connections' },
  { code: 4102, name: 'BackboneUnavailable', class: 'backoff', meaning: 'backbone unreachable from this node' },
  { code: 4200, name: 'Drain', class: 'reconnect', meaning: 'node draining; reconnect elsewhere after retry=<ms>' },
  { code: 4201, name: 'Rebalance', class: 'reconnect', meaning: 'node shedding load; reconnect elsewhere after retry=<ms>' },
  { code: 4202, name: 'DisconnectedReconnect', class: 'reconnect', meaning: 'disconnected by the server API; reconnect after retry=<ms>' },
  { code: 4300, name: 'SlowConsumer', class: 'resumable', meaning: 'outbound queue cap reached; reconnect and recover' },
  { code: 4301, name: 'HeartbeatTimeout', class: 'resumable', meaning: 'heartbeat deadline missed; reconnect and recover' },
];

const byCode = new Map(CLOSE_CODES.map((c) => [c.code, c]));

/**
 * The class of a close code. Codes not in the table follow their range: 4000-4099 terminal,
 * 4100-4199 backoff, 4200-4299 reconnect, 4300-4399 resumable; anything else (1006 abnormal
 * closure, network loss, 1011/1012/1013 from a proxy) backs off.
 */
export function closeClass(code: number): CloseClass {
  const known = byCode.get(code);
  if (known) return known.class;
  if (code >= 4000 && code < 4100) return 'terminal';
  if (code >= 4200 && code < 4300) return 'reconnect';
  if (code >= 4300 && code < 4400) return 'resumable';
  return 'backoff';
}

/** Looks up a close code's table row. */
export function closeCodeInfo(code: number): CloseCodeInfo | undefined {
  return byCode.get(code);
}

/**
 * Close reasons carry an optional retry hint: `"<text>; retry=<ms>"`. The whole reason stays
 * within the 123 bytes a close frame allows.
 */
export function formatCloseReason(text: string, retryMs?: number): string {
  const hint = retryMs === undefined ? '' : `; retry=${Math.max(0, Math.round(retryMs))}`;
  const room = 123 - hint.length;
  // Reasons are ASCII by construction; slicing by characters keeps them within the byte limit.
  return (text.length > room ? text.slice(0, room) : text) + hint;
}

/** Reads the retry hint (milliseconds) from a close reason, if it carries one. */
export function parseRetryHint(reason: string): number | undefined {
  const m = /(?:^|;\s*)retry=(\d{1,9})\s*$/.exec(reason);
  return m ? Number(m[1]) : undefined;
}
