/**
 * Unmodified pusher-js (Node build) and the official `pusher` server library pointed at Gatehouse,
 * with every wait bounded. Both are dev dependencies; nothing here patches them.
 */
import PusherJs from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback, Options, UserAuthenticationCallback } from 'pusher-js';
import PusherServer from 'pusher';
import { withDeadline } from '@gatehouse/testkit';

// pusher-js is CommonJS whose types declare an ES default export: at run time the default import
// is the class itself, to TypeScript it is the module with the class as `default`.
const PusherClass = ((PusherJs as unknown as { default?: unknown }).default ?? PusherJs) as unknown as typeof PusherJs.default;
/** A pusher-js client. */
export type PusherClient = InstanceType<typeof PusherJs.default>;

export const APP = { id: '4242', key: 'gh-test-key', secret: 'gh-test-secret-0123' };

/** `--pusher-app` / `pusherApps` value of APP. */
export const APP_SPEC = `${APP.id}:${APP.key}:${APP.secret}`;

/** The server library for a gateway (or proxy) at `host:port`. */
export function pusherServer(host: string, port: number): PusherServer {
  return new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host, port: String(port), useTLS: false });
}

/** A pusher-js client whose channel authorization and user authentication sign with the server library. */
export function pusherClient(
  host: string,
  port: number,
  server: PusherServer,
  user?: { id: string; info?: object },
  extra: Partial<Options> = {},
): PusherClient {
  return new PusherClass(APP.key, {
    cluster: 'gatehouse',
    wsHost: host,
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) => {
        const presence = channelName.startsWith('presence-') && user ? { user_id: user.id, user_info: user.info ?? {} } : undefined;
        callback(null, server.authorizeChannel(socketId, channelName, presence));
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }: { socketId: string }, callback: UserAuthenticationCallback) => {
        callback(null, server.authenticateUser(socketId, { id: user?.id ?? 'anonymous', ...(user?.info ?? {}) }));
      },
    },
    ...extra,
  });
}

/** The clients a suite opened, so `after` can disconnect them all. */
export class PusherClients {
  private readonly all: PusherClient[] = [];

  constructor(private readonly target: () => { host: string; port: number; server: PusherServer }) {}

  /** A new client for the target (signing as `user` when given). */
  open(user?: { id: string; info?: object }, extra: Partial<Options> = {}): PusherClient {
    const { host, port, server } = this.target();
    const c = pusherClient(host, port, server, user, extra);
    this.all.push(c);
    return c;
  }

  disconnectAll(): void {
    for (const c of this.all) c.disconnect();
  }
}

/** Resolves once the client is connected (its socket id set). */
export function connected(client: PusherClient, timeoutMs = 10_000): Promise<string> {
  return withDeadline(
    'pusher-js connected',
    new Promise<string>((resolve) => {
      if (client.connection.state === 'connected') return resolve(client.connection.socket_id);
      const onState = (s: { current: string }) => {
        if (s.current !== 'connected') return;
        client.connection.unbind('state_change', onState);
        resolve(client.connection.socket_id);
      };
      client.connection.bind('state_change', onState);
    }),
    timeoutMs,
  );
}

/** Subscribes and resolves on `pusher:subscription_succeeded` (rejects on `pusher:subscription_error`). */
export function subscribed(client: PusherClient, name: string, timeoutMs = 10_000): Promise<Channel> {
  const channel = client.subscribe(name);
  return withDeadline(
    `subscribed to ${name}`,
    new Promise<Channel>((resolve, reject) => {
      if (channel.subscribed) return resolve(channel);
      channel.bind('pusher:subscription_succeeded', () => resolve(channel));
      channel.bind('pusher:subscription_error', (e: unknown) => reject(new Error(`subscription_error on ${name}: ${JSON.stringify(e)}`)));
    }),
    timeoutMs,
  );
}

/** The next `event` on `channel`. */
export function nextPusherEvent<T = unknown>(channel: Channel, event: string, timeoutMs = 10_000): Promise<T> {
  return withDeadline(
    `event ${event} on ${channel.name}`,
    new Promise<T>((resolve) => {
      const fn = (data: T) => {
        channel.unbind(event, fn);
        resolve(data);
      };
      channel.bind(event, fn);
    }),
    timeoutMs,
  );
}

export type { PusherServer };
