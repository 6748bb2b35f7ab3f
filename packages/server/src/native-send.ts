/**
 * The fan-out's batched send (native/send.c, built into dist/native/gatehouse_send.node): one call
 * that writes the same bytes to a run of sockets, one send(2) each, instead of one trip through
 * net.Socket per socket. Optional: where it is not built or does not load, the gateway writes
 * through net.Socket as before (`nativeWrites: 'auto'`), and says which at start.
 */
import { createRequire } from 'node:module';

/** What the module exports. */
export interface NativeSend {
  /**
   * Sends all of `bytes` to each of the first `count` descriptors of `fds` (non-blocking).
   * `results[i]` is what the kernel took: `bytes.length` when all of it, less when its buffer
   * filled, or -errno. Returns how many took it all.
   */
  sendEach(fds: Int32Array, count: number, bytes: Uint8Array, results: Int32Array): number;
}

/** Whether the gateway uses the batched send: when it loads, always (start fails without it), never. */
export type NativeWrites = 'auto' | 'on' | 'off';

/** Where the build puts the module, from this file's compiled place (dist/src). */
const MODULE_PATH = '../native/gatehouse_send.node';

let loaded: { send: NativeSend | undefined; error: string | undefined } | undefined;

/** The module, or why it is not available. Loaded once per process. */
export function loadNativeSend(): { send: NativeSend | undefined; error: string | undefined } {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    return (loaded = { send: undefined, error: `not built on ${process.platform}` });
  }
  try {
    const mod = createRequire(import.meta.url)(MODULE_PATH) as Partial<NativeSend>;
    if (typeof mod.sendEach !== 'function') throw new Error('the module has no sendEach');
    loaded = { send: mod as NativeSend, error: undefined };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n', 1)[0] : String(err);
    loaded = {
      send: undefined,
      error: `${message} (npm run build compiles it with a C compiler; see packages/server/native/send.c)`,
    };
  }
  return loaded;
}

/** The batched send for `mode`, or undefined for net.Socket writes; throws when 'on' cannot be had. */
export function nativeSendFor(mode: NativeWrites): NativeSend | undefined {
  if (mode === 'off') return undefined;
  const { send, error } = loadNativeSend();
  if (send === undefined && mode === 'on') throw new Error(`nativeWrites is 'on' but the batched send did not load: ${error}`);
  return send;
}
