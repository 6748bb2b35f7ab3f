/**
 * Protocol v1, per connection: the `connect` handshake and authentication, then subscribe,
 * unsubscribe, publish and refresh, inbound rate limits, and every close the server starts. One
 * handler serves all sessions; a session is handed to it by a transport's door (the WebSocket
 * upgrade today) through `accept`.
 */
import type { Logger } from 'pino';
import { CloseCode, DecodeError, PROTOCOL_VERSION, decodeClientFrame, encodeServerFrame, formatCloseReason } from '@gatehouse/protocol';
import type { ClientFrame, ConnectFrame, ErrorCode, PublishFrame, RefreshFrame, SubscribeFrame } from '@gatehouse/protocol';
import { publishRefusal, subscribeRefusal } from './access.js';
import { retryDelay } from './admission.js';
import { ANONYMOUS, AuthError } from './auth.js';
import type { TokenVerifier } from './auth.js';
import { HEARTBEAT_SKIP_BYTES } from './heartbeat.js';
import { ApiError } from './http-api.js';
import type { Hub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import type { Publisher } from './publish.js';
import type { SessionRegistry } from './registry.js';
import { Session, SessionState } from './session.js';
import type { SessionHandler } from './session.js';
import type { Transport } from './transport.js';

/** Frames a client may send after `connect` before the reply; more closes the connection (1008). */
export const MAX_HELD_FRAMES = 64;

/** What the protocol handler works with. */
export interface ClientProtocolDeps {
  options: GatewayOptions;
  hub: Hub;
  registry: SessionRegistry;
  verifier: TokenVerifier;
  publisher: Publisher;
  metrics: GatewayMetrics;
  log: Logger;
  presence?: { query(s: Session, frame: ClientFrame, error: (code: ErrorCode, message: string) => void): void };
}

/** Protocol v1 for every session of the node. */
export class ClientProtocol implements SessionHandler {
  private readonly anonymousAllowed: boolean;
  private seq = 0;

  constructor(private readonly d: ClientProtocolDeps) {
    this.anonymousAllowed = Object.values(d.options.namespaces).some((ns) => ns.anonymous);
  }

  /** Takes a new connection: registers its session and waits for `connect`. */
  accept(transport: Transport): Session {
    const s = new Session(transport, this);
    this.d.registry.add(s);
    s.authTimer = setTimeout(() => {
      this.d.metrics.authFailures.inc({ reason: 'timeout' });
      this.closeSession(s, CloseCode.AuthTimeout, `no connect frame within ${this.d.options.authTimeoutMs} ms`);
    }, this.d.options.authTimeoutMs);
    transport.listen(s);
    return s;
  }

  /**
   * Starts a close with `code`; the transport drops the connection if the peer does not finish it
   * in time. What is queued for the client in this tick (replies, errors) goes out first, unless
   * `discard` (a slow consumer, whose queue is what overflowed).
   */
  closeSession(s: Session, code: number, reason: string, retryMs?: number, discard = false): void {
    if (s.state === SessionState.Closing) return;
    s.state = SessionState.Closing;
    s.closeCode = code;
    if (s.authTimer) clearTimeout(s.authTimer);
    s.held = undefined;
    s.closeAfter = undefined;
    if (discard) s.clearQueued();
    else s.writeQueued();
    // Reasons can quote client input (an unknown op) and formatCloseReason counts characters, not
    // bytes: non-ASCII could pass 123 bytes, and ws throws on that (abuse case 27).
    s.transport.close(s.transport.framing.closeCode?.(code) ?? code, formatCloseReason(reason.replace(/[^\x20-\x7e]/g, '?'), retryMs));
  }

  /**
   * Closes `s` once the operations it started are answered (at most a second from now): nothing
   * more is read from it meanwhile, and every reply goes out before the close frame.
   */
  closeAfterReplies(s: Session, code: number, reason: string): void {
    if (s.state === SessionState.Closing || s.closeAfter) return;
    if (s.inflight === 0) return this.closeSession(s, code, reason);
    s.closeAfter = { code, reason };
    const timer = setTimeout(() => {
      if (s.closeAfter) this.closeSession(s, s.closeAfter.code, s.closeAfter.reason);
    }, 1000);
    timer.unref();
  }

  /** Counts an operation started on `s`; `done` when it was answered. */
  private started(s: Session): void {
    s.inflight++;
  }

  private done(s: Session): void {
    s.inflight--;
    if (s.inflight === 0 && s.closeAfter && s.state !== SessionState.Closing) {
      // A publish's reply is queued right after this (its `then` follows this `finally`): close on
      // the next turn; closeSession writes what is queued before the close frame.
      const { code, reason } = s.closeAfter;
      setImmediate(() => this.closeSession(s, code, reason));
    }
  }

  /** Closes `s` and drops it if the peer has not finished the close within `dropAfterMs`. */
  closeAndDrop(s: Session, code: number, reason: string, retryMs?: number, discard = false, dropAfterMs = 1000): void {
    this.closeSession(s, code, reason, retryMs, discard);
    const timer = setTimeout(() => s.transport.terminate(), Math.min(this.d.options.closeTimeoutMs, dropAfterMs));
    timer.unref();
  }

  /** The hub found `s`'s outbound queue full. */
  onSlowConsumer(s: Session): void {
    if (s.state === SessionState.Closing) return;
    this.d.metrics.slowConsumerDisconnects.inc();
    this.d.log.info({ client: s.id, pendingBytes: s.pendingBytes }, 'slow consumer disconnected');
    // What waited in the queue is dropped; the close frame follows at most the transport's backlog
    // (bounded by the hub's high-water mark), which a client that still reads gets through in a
    // few seconds. One that does not read is dropped then.
    this.closeAndDrop(s, CloseCode.SlowConsumer, 'slow consumer: outbound queue full', 500 + Math.floor(Math.random() * 1000), true, 5000);
  }

  // ---- transport events ----

  onPing(s: Session, data: Buffer): void {
    s.alive = true;
    const second = Math.floor(Date.now() / 1000);
    if (s.pingWindow !== second) {
      s.pingWindow = second;
      s.pingCount = 0;
    }
    if (++s.pingCount > this.d.options.maxPingsPerSecond) {
      this.closeSession(s, CloseCode.PolicyViolation, 'ping rate above the limit');
      return;
    }
    // Pongs never pile up: a connection that is not reading gets none.
    if (s.state !== SessionState.Closing && s.transport.bufferedBytes < HEARTBEAT_SKIP_BYTES) s.transport.pong(data);
  }

  onError(s: Session, err: Error & { code?: string }): void {
    this.d.metrics.protocolErrors.inc({ code: err.code ?? 'ws_error' });
    this.d.log.debug({ client: s.id, code: err.code, msg: err.message }, 'transport error');
  }

  onClose(s: Session, code: number): void {
    if (s.authTimer) clearTimeout(s.authTimer);
    const wasOpen = s.grant !== undefined;
    s.state = SessionState.Closing;
    this.d.hub.removeSession(s);
    this.d.registry.delete(s);
    if (wasOpen && s.grant && s.grant.user !== '') this.d.registry.removeUser(s.grant.user);
    this.d.metrics.disconnectsTotal.inc({ code: String(s.closeCode || code), transport: s.transport.kind, protocol: 'gatehouse' });
  }

  onMessage(s: Session, data: Buffer, isBinary: boolean): void {
    if (s.state === SessionState.Closing || s.closeAfter) return;
    s.alive = true;
    const max = this.d.options.maxMessagesPerSecond;
    const second = Math.floor(Date.now() / 1000);
    if (s.msgWindow !== second) {
      s.msgWindow = second;
      s.msgCount = 0;
    }
    const count = ++s.msgCount;
    if (count > max * 2) {
      this.d.metrics.protocolErrors.inc({ code: 'rate_limited' });
      this.closeAfterReplies(s, CloseCode.PolicyViolation, 'message rate above the limit');
      return;
    }
    if (count > max) {
      this.replyError(s, undefined, 'rate_limited', `more than ${max} messages per second; slow down`);
      return;
    }
    if (s.state === SessionState.Connecting) {
      // The client did not wait for `connected`: keep its frames, in order, for after the reply.
      const held = (s.held ??= []);
      if (isBinary || held.length >= MAX_HELD_FRAMES) {
        this.d.metrics.protocolErrors.inc({ code: 'bad_request' });
        this.closeSession(
          s,
          isBinary ? CloseCode.BadRequest : CloseCode.PolicyViolation,
          isBinary ? 'binary frames are not part of protocol v1' : `more than ${MAX_HELD_FRAMES} frames before connected`,
        );
        return;
      }
      held.push(data);
      return;
    }
    this.handle(s, data, isBinary);
  }

  /** Decodes and acts on one inbound message (rate limits already applied). */
  private handle(s: Session, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      if (s.state === SessionState.Authenticating) this.closeSession(s, CloseCode.BadRequest, 'binary frames are not part of protocol v1');
      else this.replyError(s, undefined, 'bad_request', 'binary frames are not part of protocol v1; send JSON text');
      return;
    }
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(data.toString('utf8'));
    } catch (err) {
      const e = err as DecodeError;
      if (s.state === SessionState.Authenticating) {
        this.d.metrics.protocolErrors.inc({ code: e.code });
        this.closeSession(s, CloseCode.BadRequest, `first frame must be connect: ${e.message}`);
      } else {
        this.replyError(s, e.id, e.code, e.message);
      }
      return;
    }
    if (frame.op === 'pong') return;
    if (s.state === SessionState.Authenticating) {
      if (frame.op !== 'connect') {
        this.d.metrics.protocolErrors.inc({ code: 'bad_request' });
        this.closeSession(s, CloseCode.BadRequest, `first frame must be connect, got ${frame.op}`);
        return;
      }
      void this.onConnect(s, frame);
      return;
    }
    switch (frame.op) {
      case 'connect':
        this.replyError(s, frame.id, 'bad_request', 'already connected');
        return;
      case 'subscribe':
        this.onSubscribe(s, frame);
        return;
      case 'unsubscribe':
        if (this.d.hub.unsubscribe(s, frame.channel)) this.d.hub.send(s, encodeServerFrame({ op: 'ok', id: frame.id }));
        else this.replyError(s, frame.id, 'not_subscribed', `not subscribed to ${frame.channel}`);
        return;
      case 'publish':
        this.onPublish(s, frame);
        return;
      case 'refresh':
        this.started(s);
        void this.onRefresh(s, frame).finally(() => this.done(s));
        return;
      case 'presence':
      case 'presence_stats':
        return this.d.presence?.query(s, frame, (code, message) => this.replyError(s, frame.id, code, message));
    }
  }

  // ---- operations ----

  private replyError(s: Session, id: number | undefined, code: ErrorCode, message: string): void {
    this.d.metrics.protocolErrors.inc({ code });
    this.d.hub.send(s, encodeServerFrame(id === undefined ? { op: 'error', code, message } : { op: 'error', id, code, message }));
  }

  private async onConnect(s: Session, frame: ConnectFrame): Promise<void> {
    const { options, metrics, registry } = this.d;
    if (frame.v !== PROTOCOL_VERSION) {
      metrics.authFailures.inc({ reason: 'version' });
      this.closeSession(s, CloseCode.UnsupportedVersion, `protocol v${frame.v} is not supported; this server speaks v${PROTOCOL_VERSION}`);
      return;
    }
    // Frames that follow before the reply wait in `held` (onMessage) and are handled after it.
    if (s.authTimer) clearTimeout(s.authTimer);
    s.authTimer = undefined;
    s.state = SessionState.Connecting;
    let grant = ANONYMOUS;
    if (frame.token !== undefined) {
      try {
        grant = await this.d.verifier.verify(frame.token);
      } catch (err) {
        const reason = err instanceof AuthError ? err.message : 'token could not be verified';
        metrics.authFailures.inc({ reason: err instanceof AuthError && err.expired ? 'expired' : 'invalid' });
        this.d.log.info({ address: s.address, reason }, 'connect refused');
        this.closeSession(s, CloseCode.Unauthorized, reason);
        return;
      }
    } else if (!this.anonymousAllowed) {
      metrics.authFailures.inc({ reason: 'missing' });
      this.closeSession(s, CloseCode.Unauthorized, 'a token is required');
      return;
    }
    // The connection may have closed while the token was verified.
    if ((s.state as SessionState) === SessionState.Closing) return;
    if (grant.user !== '') {
      const n = registry.userConnections(grant.user);
      if (n >= options.maxConnectionsPerUser) {
        metrics.admissionRejects.inc({ reason: 'user_limit' });
        this.closeSession(
          s,
          CloseCode.UserConnectionLimit,
          `user holds ${n} connections; the limit is ${options.maxConnectionsPerUser}`,
          retryDelay(5),
        );
        return;
      }
      registry.addUser(grant.user);
    }
    s.grant = grant;
    s.state = SessionState.Open;
    s.openedAt = Date.now();
    s.id = `${options.nodeId}-${++this.seq}`;
    metrics.connectsTotal.inc({ transport: s.transport.kind, protocol: 'gatehouse' });
    if (frame.reconnect) metrics.reconnectsTotal.inc();
    this.d.hub.send(
      s,
      encodeServerFrame({
        op: 'connected',
        id: frame.id,
        client: s.id,
        node: options.nodeId,
        heartbeat: options.heartbeatMs,
        ...(grant.expiresAt !== undefined ? { expires: grant.expiresAt } : {}),
      }),
    );
    const held = s.held;
    s.held = undefined;
    if (held) for (const data of held) if (s.state === SessionState.Open) this.handle(s, data, false);
  }

  private onSubscribe(s: Session, frame: SubscribeFrame): void {
    const refusal = subscribeRefusal(this.d.publisher, s.grant ?? ANONYMOUS, frame.channel);
    if (refusal) return this.replyError(s, frame.id, ...refusal);
    if (s.channels.includes(frame.channel)) {
      return this.replyError(s, frame.id, 'already_subscribed', `already subscribed to ${frame.channel}`);
    }
    const max = this.d.options.maxSubscriptions;
    if (s.channels.length >= max) return this.replyError(s, frame.id, 'limit_exceeded', `at most ${max} subscriptions per connection`);
    this.started(s);
    this.d.hub
      .subscribe(s, frame.channel, frame.id, frame.since)
      .catch((err: unknown) => {
        this.d.log.warn({ err, channel: frame.channel }, 'subscribe failed');
        if (s.state !== SessionState.Closing) this.replyError(s, frame.id, 'unavailable', 'backbone unavailable; retry');
      })
      .finally(() => this.done(s));
  }

  private onPublish(s: Session, frame: PublishFrame): void {
    const refusal = publishRefusal(this.d.publisher, s.grant ?? ANONYMOUS, frame.channel);
    if (refusal) return this.replyError(s, frame.id, ...refusal);
    let data: string;
    try {
      data = JSON.stringify(frame.data);
    } catch {
      // JSON.parse accepts nesting that JSON.stringify overflows the stack on (abuse case 27).
      return this.replyError(s, frame.id, 'bad_request', '"data" is nested too deeply');
    }
    this.started(s);
    this.d.publisher
      .publish(frame.channel, data, 'client')
      .finally(() => this.done(s))
      .then(
        (pub) => {
          if (s.state !== SessionState.Closing) {
            this.d.hub.send(
              s,
              encodeServerFrame({ op: 'published', id: frame.id, channel: pub.channel, epoch: pub.epoch, offset: pub.offset }),
            );
          }
        },
        (err: unknown) => {
          if (s.state === SessionState.Closing) return;
          if (err instanceof ApiError) this.replyError(s, frame.id, err.code, err.message);
          else this.replyError(s, frame.id, 'internal', 'publish failed');
        },
      );
  }

  private async onRefresh(s: Session, frame: RefreshFrame): Promise<void> {
    try {
      const grant = await this.d.verifier.verify(frame.token);
      if (s.state === SessionState.Closing) return;
      if (grant.user !== (s.grant ?? ANONYMOUS).user) {
        this.replyError(s, frame.id, 'forbidden', 'a refreshed token must be for the same user');
        return;
      }
      s.grant = grant;
      s.refreshAsked = false;
      this.d.hub.send(s, encodeServerFrame({ op: 'ok', id: frame.id }));
    } catch (err) {
      if (s.state === SessionState.Closing) return;
      this.replyError(s, frame.id, 'unauthorized', err instanceof AuthError ? err.message : 'token could not be verified');
    }
  }
}
