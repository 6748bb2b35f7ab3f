/**
 * The paced drain: every connection is asked to reconnect elsewhere, spread evenly over a window in
 * small batches, each with a jittered retry delay, so the rest of the fleet absorbs them without a
 * storm.
 */
import type { Logger } from 'pino';
import { CloseCode } from '@gatehouse/protocol';
import type { ClientProtocol } from './client-protocol.js';
import type { GatewayMetrics } from './metrics.js';
import type { SessionRegistry } from './registry.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';

/** Ms between two batches. */
const STEP_MS = 100;

/** What a drain works on. */
export interface DrainDeps {
  registry: SessionRegistry;
  protocol: ClientProtocol;
  metrics: GatewayMetrics;
  log: Logger;
  /** How long a close may take before the connection is dropped. */
  closeTimeoutMs: number;
}

/** Closes every connection with the drain code over `windowMs`; resolves when all are gone. */
export function pacedDrain(d: DrainDeps, windowMs: number): Promise<void> {
  const sessions = [...d.registry];
  // Shuffle so each batch mixes clients from every shard and connect time.
  for (let i = sessions.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [sessions[i], sessions[j]] = [sessions[j] as Session, sessions[i] as Session];
  }
  const steps = Math.max(1, Math.floor(windowMs / STEP_MS));
  const perStep = Math.max(1, Math.ceil(sessions.length / steps));
  d.log.info({ connections: sessions.length, windowMs, perStep }, 'drain started');
  return new Promise<void>((resolve) => {
    let i = 0;
    const step = () => {
      const end = Math.min(sessions.length, i + perStep);
      for (; i < end; i++) {
        const s = sessions[i] as Session;
        if (s.state === SessionState.Closing) continue;
        d.metrics.drainClosed.inc();
        d.protocol.closeSession(s, CloseCode.Drain, 'node draining; reconnect elsewhere', Math.floor(Math.random() * 1000));
      }
      if (i < sessions.length) {
        setTimeout(step, STEP_MS);
        return;
      }
      // Everyone was asked; wait for the closes (bounded by the close timeout).
      const deadline = Date.now() + d.closeTimeoutMs + 1000;
      const wait = () => {
        if (d.registry.size === 0 || Date.now() > deadline) {
          d.log.info({ remaining: d.registry.size }, 'drain finished');
          resolve();
        } else setTimeout(wait, 50);
      };
      wait();
    };
    step();
  });
}
