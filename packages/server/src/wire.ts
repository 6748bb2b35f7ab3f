/**
 * Server-to-client WebSocket frames built by hand, once, so the same bytes can be written to every
 * subscriber's socket. Server frames are never masked (RFC 6455 section 5.1), so a frame is a 2, 4
 * or 10 byte header followed by the payload, in one buffer.
 */

const OP_TEXT = 0x1;
const OP_PING = 0x9;

/** One complete, unmasked, final WebSocket frame carrying `payload` as UTF-8 text. */
export function textFrame(payload: string): Buffer {
  return frame(OP_TEXT, payload);
}

function frame(opcode: number, payload: string): Buffer {
  const len = Buffer.byteLength(payload);
  const header = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const buf = Buffer.allocUnsafe(header + len);
  buf[0] = 0x80 | opcode;
  if (header === 2) {
    buf[1] = len;
  } else if (header === 4) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(0, 2);
    buf.writeUInt32BE(len, 6);
  }
  buf.write(payload, header, 'utf8');
  return buf;
}

/**
 * The heartbeat: a WebSocket ping (answered by every client, browsers included, which proves the
 * path is alive) and the application ping the SDK watches (browsers cannot see protocol pings),
 * in one buffer so a beat costs one write per socket.
 */
export const HEARTBEAT_FRAMES: Buffer = Buffer.concat([frame(OP_PING, ''), textFrame('{"op":"ping"}')]);
