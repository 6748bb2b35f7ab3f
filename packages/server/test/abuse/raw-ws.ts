/**
 * A WebSocket client over raw TCP (node:net) for the abuse and RFC 6455 suites. A real WebSocket
 * library refuses to send unmasked frames, reserved bits, bad UTF-8 or lying length fields; this
 * one sends exactly the bytes a test asks for, and parses what the server answers byte by byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { waitFor } from '@gatehouse/testkit';

/** WebSocket opcodes (RFC 6455 section 5.2). */
export const Op = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** What a test wants on the wire for one frame. Anything left out is a well-formed default. */
export interface FrameSpec {
  opcode: number;
  payload?: Buffer | string;
  /** FIN bit; default true. */
  fin?: boolean;
  /** RSV1-3 as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3); default 0. */
  rsv?: number;
  /** Mask the payload (clients must); default true. */
  mask?: boolean;
  /**
   * Length to declare in the header instead of the payload's real length (to lie about it).
   * A bigint forces the 64-bit form, so the top bit can be set.
   */
  declaredLength?: number | bigint;
}

/** Encodes one frame exactly as specified. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : (spec.payload ?? Buffer.alloc(0));
  const mask = spec.mask ?? true;
  const declared = spec.declaredLength ?? payload.length;
  let lenBytes: Buffer;
  let len7: number;
  if (typeof declared === 'bigint' || declared > 0xffff) {
    len7 = 127;
    lenBytes = Buffer.alloc(8);
    lenBytes.writeBigUInt64BE(BigInt(declared));
  } else if (declared > 125) {
    len7 = 126;
    lenBytes = Buffer.alloc(2);
    lenBytes.writeUInt16BE(declared);
  } else {
    len7 = declared;
    lenBytes = Buffer.alloc(0);
  }
  const head = Buffer.from([
    ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0xf),
    (mask ? 0x80 : 0) | len7,
  ]);
  if (!mask) return Buffer.concat([head, lenBytes, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, lenBytes, key, body]);
}

/** A close frame body: a 2-byte code and a reason (raw bytes allowed, to send bad UTF-8). */
export function closeBody(code: number, reason: Buffer | string = ''): Buffer {
  const r = typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason;
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code);
  r.copy(b, 2);
  return b;
}

/** One frame the server sent. */
export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  /** Servers must not mask (RFC 6455 5.1); recorded so a conformance test can check it. */
  masked: boolean;
  payload: Buffer;
}

/** Incremental parser of the server's byte stream. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every frame now complete. */
  push(chunk: Buffer): ServerFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: ServerFrame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return out;
      const b0 = b[0] as number;
      const b1 = b[1] as number;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return out;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return out;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const keyAt = off;
      if (masked) off += 4;
      if (b.length < off + len) return out;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (b[keyAt + (i & 3)] as number);
      out.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0xf, masked, payload });
      this.buf = b.subarray(off + len);
    }
  }
}

/** The close a raw client observed: the server's close frame, or 1006 when the TCP stream just ended. */
export interface ObservedClose {
  code: number;
  reason: string;
  /** The raw close payload (to check its UTF-8 and length). */
  body: Buffer;
}

/** Options for opening a raw WebSocket. */
export interface RawOpenOptions {
  path?: string;
  headers?: Record<string, string>;
  /** Answer the server's close frame with a close frame (a well-behaved client does). Default true. */
  echoClose?: boolean;
  /** Answer pings with pongs, as a live client does (heartbeats then pass). Default false. */
  autoPong?: boolean;
  timeoutMs?: number;
}

/** A WebSocket connection driven byte by byte. */
export class RawWs {
  readonly frames: ServerFrame[] = [];
  /** Text messages parsed as JSON, in arrival order (parsed once, as they arrive). */
  readonly messages: Record<string, any>[] = [];
  closeFrame: ObservedClose | undefined;
  /** When the close frame arrived (Date.now()). */
  closedAt: number | undefined;
  /** Set when the TCP connection is gone (FIN, reset or destroy). */
  ended = false;
  /** Bytes received after the handshake. */
  received = 0;
  private readonly parser = new FrameParser();
  private nextId = 1;

  private constructor(
    readonly socket: Socket,
    /** The 101 response head. */
    readonly handshake: string,
    private readonly echoClose: boolean,
    private readonly autoPong: boolean,
  ) {}

  /** Opens a TCP connection and completes the upgrade; rejects with the status line on a refusal. */
  static async open(port: number, options: RawOpenOptions = {}): Promise<RawWs> {
    const key = randomBytes(16).toString('base64');
    const extra = Object.entries(options.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    return new Promise<RawWs>((resolve, reject) => {
      let head: Buffer = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('timed out waiting for the upgrade response'));
      }, options.timeoutMs ?? 5000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.off('error', fail);
        clearTimeout(timer);
        const text = head.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(text)) {
          socket.destroy();
          reject(new Error(`upgrade refused: ${text.split('\r\n', 1)[0]}`));
          return;
        }
        const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text)?.[1];
        const expected = createHash('sha1')
          .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
          .digest('base64');
        if (accept !== expected) {
          socket.destroy();
          reject(new Error(`Sec-WebSocket-Accept is ${accept}, expected ${expected}`));
          return;
        }
        const ws = new RawWs(socket, text, options.echoClose ?? true, options.autoPong ?? false);
        ws.attach();
        const rest = head.subarray(end + 4);
        if (rest.length > 0) ws.onBytes(rest);
        resolve(ws);
      };
      socket.on('data', onData);
      socket.once('error', fail);
      socket.write(
        `GET ${options.path ?? '/ws'} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
  }

  /** Opens a connection and completes the protocol's `connect` (anonymous unless a token is given). */
  static async connect(port: number, token?: string, options: RawOpenOptions = {}): Promise<RawWs> {
    const ws = await RawWs.open(port, options);
    const reply = await ws.request({ op: 'connect', v: 1, ...(token ? { token } : {}) });
    if (reply['op'] !== 'connected') {
      ws.destroy();
      throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    }
    return ws;
  }

  private attach(): void {
    this.socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.ended = true;
    });
  }

  private onBytes(chunk: Buffer): void {
    this.received += chunk.length;
    for (const f of this.parser.push(chunk)) {
      this.frames.push(f);
      if (f.opcode === Op.Text) this.messages.push(JSON.parse(f.payload.toString('utf8')) as Record<string, any>);
      if (f.opcode === Op.Ping && this.autoPong) this.sendFrame({ opcode: Op.Pong, payload: f.payload });
      if (f.opcode === Op.Close && !this.closeFrame) {
        this.closedAt = Date.now();
        this.closeFrame = {
          code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005,
          reason: f.payload.subarray(2).toString('utf8'),
          body: f.payload,
        };
        if (this.echoClose && this.socket.writable) this.socket.write(encodeFrame({ opcode: Op.Close, payload: f.payload.subarray(0, 2) }));
      }
    }
  }

  /** Writes raw bytes; swallows the error if the server already hung up (that is often the point). */
  write(bytes: Buffer): void {
    if (this.socket.writable) this.socket.write(bytes);
  }

  /** Sends one frame as specified. */
  sendFrame(spec: FrameSpec): void {
    this.write(encodeFrame(spec));
  }

  /** Sends one masked text message. */
  sendText(text: string): void {
    this.sendFrame({ opcode: Op.Text, payload: text });
  }

  /** Text messages received, parsed as JSON (protocol frames). */
  json(): Record<string, any>[] {
    return this.messages;
  }

  /** Sends a protocol request with a fresh id and waits for the reply carrying it. */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Record<string, any>> {
    const id = this.nextId++;
    this.sendText(JSON.stringify({ ...frame, id }));
    return waitFor(
      `reply to ${String(frame['op'])} #${id}`,
      () => {
        const reply = this.json().find((f) => f['id'] === id);
        if (reply) return reply;
        if (this.closeFrame) return { op: 'closed', code: this.closeFrame.code, reason: this.closeFrame.reason };
        if (this.ended) return { op: 'closed', code: 1006, reason: '' };
        return undefined;
      },
      timeoutMs,
    );
  }

  /** Waits for the server's close frame; 1006 when the connection ended without one. */
  async waitClose(timeoutMs = 5000): Promise<ObservedClose> {
    return waitFor(
      'the server to close the connection',
      () => this.closeFrame ?? (this.ended ? { code: 1006, reason: '', body: Buffer.alloc(0) } : undefined),
      timeoutMs,
    );
  }

  /** Waits until the TCP connection is gone. */
  async waitEnded(timeoutMs = 5000): Promise<void> {
    await waitFor('the TCP connection to end', () => this.ended, timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** An HTTP response read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `request` verbatim over TCP and reads the response (until the server closes, or the
 * declared body arrived). Resolves status 0 when the server hung up without answering.
 */
export function rawHttp(port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(data));
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      reject(new Error(`no complete HTTP response within ${timeoutMs} ms (got ${JSON.stringify(data.toString('latin1').slice(0, 200))})`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      // A 101 has no body: the bytes after it are WebSocket frames.
      if (/^HTTP\/1\.1 101 /.test(head)) return finish();
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
      if (len !== undefined && data.length >= end + 4 + Number(len)) finish();
    });
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.write(request);
  });
}

function parseResponse(data: Buffer): RawResponse {
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: text };
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body: text.slice(end + 4) };
}

/** A well-formed upgrade request, with `overrides` replacing (or, as null, removing) headers. */
export function upgradeRequest(port: number, overrides: Record<string, string | null> = {}, method = 'GET', path = '/ws'): string {
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...overrides,
  };
  const lines = Object.entries(headers)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `${method} ${path} HTTP/1.1\r\n${lines}\r\n`;
}
