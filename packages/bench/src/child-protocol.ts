import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/**
 * How the coordinator talks to the server processes it starts (a gateway, or the raw `ws`
 * baseline): the configuration passed as the first argument (JSON), the ready line, and the few
 * IPC messages that drive a measurement.
 */

/** Configuration of a bench-started server process. */
export interface ServerChildConfig {
  host: string;
  /** 0 picks a free port; a restart after a kill passes the port it had. */
  port: number;
  apiKey: string;
  heartbeatMs: number;
  /** Gateway only: admission limits (the bench ramps its own connections). */
  connectRate?: number;
  connectRatePerAddress?: number;
  maxConnections?: number;
  /** Gateway only: refuse connections above this event-loop lag (the gateway's default when absent). */
  admissionLagMs?: number;
  /** Gateway only: the hub's flush window, ms (the gateway's default when absent). */
  coalesceMs?: number;
  /** Gateway only: the bound on adaptive batching's added delay, ms (the gateway's default when absent). */
  maxBatchDelayMs?: number;
  /** Gateway only: the batched send, auto, on or off (the gateway's default when absent). */
  nativeWrites?: 'auto' | 'on' | 'off';
  nodeId?: string;
  /** Gateway only: a Pusher app (id, key, secret) for Pusher clients on /app/{key}. */
  pusherApp?: { id: string; key: string; secret: string };
  /** Raw baseline only: how a publication reaches the sockets. */
  mode?: BaselineMode;
}

/**
 * The raw baselines of the performance guide: on `ws`, `send()` per socket; the frame built once
 * and its bytes written to every socket; and built once with everything queued for a socket within
 * one tick written in one call. `uws`: a bare uWebSockets.js broadcast (raw-uws-server.ts), where a
 * build loads on the running Node.
 */
export type BaselineMode = 'send' | 'frame' | 'coalesce' | 'uws';
export const BASELINE_MODES: readonly BaselineMode[] = ['send', 'frame', 'coalesce', 'uws'];

/** Printed on stdout (one JSON line) and sent over IPC when the server listens. */
export interface ReadyMessage {
  type: 'ready';
  pid: number;
  host: string;
  port: number;
}

/** Coordinator to server process. */
export type ToServerChild =
  | { type: 'gc'; seq: number }
  | { type: 'profile-start'; seq: number }
  | { type: 'profile-stop'; seq: number; file: string }
  | { type: 'stop' };

/** Server process to coordinator. */
export type FromServerChild =
  | ReadyMessage
  | { type: 'gc-done'; seq: number }
  | { type: 'profile-started'; seq: number }
  | { type: 'profile-written'; seq: number; file: string; error?: string }
  | { type: 'error'; message: string };

/** Reads the configuration from argv[2]; exits with a message when it is missing or not JSON. */
export function readChildConfig(argv: string[]): ServerChildConfig {
  const raw = argv[2];
  if (!raw) {
    console.error('usage: node <child>.js \'{"host":"127.0.0.1","port":0,"apiKey":"...","heartbeatMs":25000}\'');
    process.exit(2);
  }
  try {
    return JSON.parse(raw) as ServerChildConfig;
  } catch {
    console.error(`configuration is not JSON: ${raw.slice(0, 80)}`);
    process.exit(2);
  }
}

/** Runs a full garbage collection when the process was started with --expose-gc. */
export function fullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

/** Announces readiness on stdout and over IPC. */
export function announceReady(host: string, port: number): void {
  const msg: ReadyMessage = { type: 'ready', pid: process.pid, host, port };
  process.stdout.write(JSON.stringify(msg) + '\n');
  process.send?.(msg);
}

/**
 * Wires the IPC messages and signals: `gc` answers after a full collection; `profile-start` and
 * `profile-stop` take a CPU profile of the window between them; `stop`, SIGTERM, SIGINT and a
 * lost coordinator call `close` and exit 0.
 */
export function serveChildControl(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  let inspector: Session | undefined;
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) => (inspector as Session).post(method, (err, result) => (err ? reject(err) : resolve(result))));
  process.on('message', (msg: ToServerChild) => {
    if (msg.type === 'gc') {
      fullGc();
      process.send?.({ type: 'gc-done', seq: msg.seq } satisfies FromServerChild);
    } else if (msg.type === 'profile-start') {
      // Only the measured window is profiled: start-up and the connection ramp stay out of it.
      inspector ??= new Session();
      inspector.connect();
      void post('Profiler.enable')
        .then(() => post('Profiler.start'))
        .finally(() => process.send?.({ type: 'profile-started', seq: msg.seq } satisfies FromServerChild));
    } else if (msg.type === 'profile-stop') {
      post('Profiler.stop')
        .then((result) => {
          writeFileSync(msg.file, JSON.stringify((result as { profile: unknown }).profile));
          inspector?.disconnect();
          process.send?.({ type: 'profile-written', seq: msg.seq, file: msg.file } satisfies FromServerChild);
        })
        .catch((err: unknown) => {
          process.send?.({ type: 'profile-written', seq: msg.seq, file: msg.file, error: String(err) } satisfies FromServerChild);
        });
    } else if (msg.type === 'stop') {
      stop();
    }
  });
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
