/**
 * The WebSocket wire as the lean load client needs it (RFC 6455): the opening handshake, client
 * frames (always masked, with a fresh random key per frame), and an incremental reader for server
 * frames (never masked). Nothing here allocates per connection beyond what a partial frame needs.
 */
import { createHash, randomFillSync } from 'node:crypto';

/** RFC 6455 section 1.3: appended to the key before hashing. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** Largest message the reader accepts; a bigger one is a protocol error, never a buffer grown without bound. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

// Masking keys and handshake nonces come from one pool refilled from the CSPRNG, so each frame
// gets a fresh unpredictable key (RFC 6455 section 5.3) without a system call per frame.
const POOL_SIZE = 8192;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function randomBytes(n: number): Buffer {
  if (poolOffset + n > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

/** A fresh `Sec-WebSocket-Key`: 16 random bytes, base64. */
export function handshakeKey(): string {
  return randomBytes(16).toString('base64');
}

/** The `Sec-WebSocket-Accept` a server must answer to `key`. */
export function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}

/** The HTTP upgrade request for `path` on `host:port`. */
export function upgradeRequest(host: string, port: number, path: string, key: string): string {
  return (
    `GET ${path} HTTP/1.1\r\n` +
    `Host: ${host.includes(':') ? `[${host}]` : host}:${port}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Version: 13\r\n\r\n'
  );
}

/** The outcome of reading an upgrade response. */
export type HandshakeResult = { ok: true; bodyStart: number } | { ok: false; error: string } | undefined;

/**
 * Reads the server's answer to the upgrade: undefined while the header block is incomplete, an
 * error naming the status or the bad header, or where the WebSocket bytes begin.
 */
export function readHandshake(buf: Buffer, key: string): HandshakeResult {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) {
    if (buf.length > 16 * 1024) return { ok: false, error: 'upgrade response header larger than 16 KiB' };
    return undefined;
  }
  const head = buf.toString('latin1', 0, end);
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '');
  if (!status) return { ok: false, error: `not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}` };
  if (status[1] !== '101') return { ok: false, error: `HTTP ${status[1]}` };
  let accept: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'sec-websocket-accept') accept = line.slice(colon + 1).trim();
  }
  if (accept !== acceptFor(key)) return { ok: false, error: 'wrong Sec-WebSocket-Accept' };
  return { ok: true, bodyStart: end + 4 };
}

/** Header length of a frame carrying `len` payload bytes (without a masking key). */
function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** Writes a final frame's header (opcode, MASK bit, 7/16/64-bit length) at the start of `out`. */
function writeHeader(out: Buffer, opcode: number, len: number, masked: boolean): void {
  const mask = masked ? 0x80 : 0;
  out[0] = 0x80 | opcode;
  if (len < 126) {
    out[1] = mask | len;
  } else if (len < 65536) {
    out[1] = mask | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = mask | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
}

/** One final client frame: masked with a fresh key, as RFC 6455 requires of every client frame. */
export function clientFrame(opcode: number, payload: Buffer | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  const header = headerLength(len);
  const out = Buffer.allocUnsafe(header + 4 + len);
  writeHeader(out, opcode, len, true);
  const mask = randomBytes(4);
  mask.copy(out, header);
  const body = header + 4;
  for (let i = 0; i < len; i++) out[body + i] = (data[i] as number) ^ (mask[i & 3] as number);
  return out;
}

/** A close frame with a status code (client side: masked). */
export function clientCloseFrame(code: number, reason = ''): Buffer {
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return clientFrame(OP_CLOSE, payload);
}

/** What the frame reader keeps per connection between chunks. */
export interface ReaderState {
  /** Bytes of an incomplete frame from earlier chunks. */
  rest: Buffer | null;
  /** Opcode and parts of a fragmented message in progress. */
  fragOpcode: number;
  frags: Buffer[] | null;
}

/**
 * Called for each complete message or control frame: `data[start, end)` is the payload, valid
 * only during the call.
 */
export type FrameHandler<S> = (state: S, opcode: number, data: Buffer, start: number, end: number) => void;

/**
 * Feeds one chunk of server bytes to the reader. Calls `onFrame` for each complete message
 * (fragments joined) and control frame, keeps any incomplete tail in `state.rest`, and returns an
 * error message when the bytes break the protocol (masked server frame, reserved bits, a control
 * frame that is fragmented or too long, a message above MAX_MESSAGE_BYTES).
 */
export function readFrames<S extends ReaderState>(state: S, chunk: Buffer, onFrame: FrameHandler<S>): string | undefined {
  let buf = chunk;
  if (state.rest !== null) {
    buf = Buffer.concat([state.rest, chunk]);
    state.rest = null;
  }
  let p = 0;
  const n = buf.length;
  while (n - p >= 2) {
    const b0 = buf[p] as number;
    const b1 = buf[p + 1] as number;
    if ((b0 & 0x70) !== 0) return 'reserved bits set (no extension was negotiated)';
    if ((b1 & 0x80) !== 0) return 'server frames must not be masked';
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    let len = b1 & 0x7f;
    let header = 2;
    if (len === 126) {
      if (n - p < 4) break;
      len = buf.readUInt16BE(p + 2);
      header = 4;
    } else if (len === 127) {
      if (n - p < 10) break;
      const hi = buf.readUInt32BE(p + 2);
      if (hi !== 0) return 'frame longer than 4 GiB';
      len = buf.readUInt32BE(p + 6);
      header = 10;
    }
    if (opcode >= 0x8) {
      if (!fin || len > 125) return 'control frames must be final and at most 125 bytes';
    } else if (len > MAX_MESSAGE_BYTES) {
      return `message larger than ${MAX_MESSAGE_BYTES} bytes`;
    }
    if (n - p < header + len) break;
    const start = p + header;
    const end = start + len;
    p = end;
    if (opcode >= 0x8) {
      onFrame(state, opcode, buf, start, end);
      continue;
    }
    if (opcode === OP_CONTINUATION) {
      if (state.frags === null) return 'continuation frame without a message in progress';
      state.frags.push(Buffer.from(buf.subarray(start, end)));
      if (fin) {
        const whole = Buffer.concat(state.frags);
        state.frags = null;
        if (whole.length > MAX_MESSAGE_BYTES) return `message larger than ${MAX_MESSAGE_BYTES} bytes`;
        onFrame(state, state.fragOpcode, whole, 0, whole.length);
      }
      continue;
    }
    if (opcode !== OP_TEXT && opcode !== OP_BINARY) return `unknown opcode ${opcode}`;
    if (state.frags !== null) return 'new message while a fragmented one is in progress';
    if (fin) {
      onFrame(state, opcode, buf, start, end);
    } else {
      state.fragOpcode = opcode;
      state.frags = [Buffer.from(buf.subarray(start, end))];
    }
  }
  // Copy the tail: keeping a subarray would pin the whole chunk in memory.
  if (p < n) state.rest = Buffer.from(buf.subarray(p));
  return undefined;
}

const PUB_PREFIX = Buffer.from('{"op":"pub"');
const TS_KEY = Buffer.from('"ts":');
const OFFSET_KEY = Buffer.from('"offset":');

/** True when `data[start, end)` is a `pub` frame (checked by its fixed prefix, without parsing). */
export function isPub(data: Buffer, start: number, end: number): boolean {
  if (end - start < PUB_PREFIX.length) return false;
  for (let i = 0; i < PUB_PREFIX.length; i++) if (data[start + i] !== PUB_PREFIX[i]) return false;
  return true;
}

/**
 * Reads the number after `key` in `data[start, end)` without parsing the whole frame; NaN when
 * absent. A `pub` frame puts `offset` and `ts` before `data`, so the first match is the field.
 */
function numberAfter(data: Buffer, start: number, end: number, key: Buffer): number {
  const at = data.indexOf(key, start);
  if (at < 0 || at >= end) return NaN;
  let i = at + key.length;
  const from = i;
  while (i < end) {
    const c = data[i] as number;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x65 || c === 0x45 || c === 0x2b) i++;
    else break;
  }
  return i === from ? NaN : Number(data.toString('latin1', from, i));
}

/** The accept stamp (`ts`, ms since epoch) of a `pub` frame. */
export function pubTs(data: Buffer, start: number, end: number): number {
  return numberAfter(data, start, end, TS_KEY);
}

/** The stream offset of a `pub` frame. */
export function pubOffset(data: Buffer, start: number, end: number): number {
  return numberAfter(data, start, end, OFFSET_KEY);
}

/**
 * One final, unmasked text frame as a server sends it (RFC 6455 section 5.1: servers never mask),
 * header and payload in one buffer, so the same bytes can be written to many sockets.
 */
export function serverTextFrame(payload: string): Buffer {
  const len = Buffer.byteLength(payload);
  const header = headerLength(len);
  const out = Buffer.allocUnsafe(header + len);
  writeHeader(out, OP_TEXT, len, false);
  out.write(payload, header, 'utf8');
  return out;
}
