/**
 * @gatehouse/client, browser entry: uses the native WebSocket. No Node APIs anywhere below.
 */
import { ClientCore } from './client.js';
import type { ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport.js';

export * from './public.js';

/**
 * A connection to a Gatehouse gateway that reconnects and resubscribes by itself. Create it,
 * subscribe, then call `connect()`. Uses `globalThis.WebSocket` unless `options.WebSocket` is set.
 */
export class GatehouseClient extends ClientCore {
  constructor(url: string, options: ClientOptions = {}) {
    super(url, options, (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket);
  }
}
