/**
 * @gatehouse/client, Node entry (picked by the "node" export condition). Node 20 has no global
 * WebSocket, so this entry defaults to the `ws` package (an optional peer dependency) and falls
 * back to the global one (Node 22+) when `ws` is not installed.
 */
import { ClientCore } from './client.js';
import type { ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport.js';

export * from './public.js';

async function loadWs(): Promise<WebSocketConstructor | undefined> {
  try {
    return (await import('ws')).default;
  } catch {
    return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  }
}

const NodeWebSocket = await loadWs();

/**
 * A connection to a Gatehouse gateway that reconnects and resubscribes by itself. Create it,
 * subscribe, then call `connect()`. Uses the `ws` package unless `options.WebSocket` is set.
 */
export class GatehouseClient extends ClientCore {
  constructor(url: string, options: ClientOptions = {}) {
    super(url, options, NodeWebSocket);
  }
}
