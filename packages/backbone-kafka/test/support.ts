/**
 * Shared pieces of the Kafka suites: where the broker is, names no other run uses, a handler that
 * records what it is given, and topic cleanup.
 */
import { randomBytes } from 'node:crypto';
import { Admin } from '@platformatic/kafka';
import type { BackboneHandler, BackboneState, Publication } from '@gatehouse/server';
import { SERVICES, waitFor } from '@gatehouse/testkit';

/** The shared test broker (scripts/services.sh start). */
export const BROKERS = [`${SERVICES.kafka.host}:${SERVICES.kafka.port}`];

const RUN = randomBytes(4).toString('hex');
let seq = 0;

/** A topic name unique to this run and call. */
export function uniqueTopic(label: string): string {
  return `gatehouse-test-${label}-${RUN}-${++seq}`;
}

/** A channel name unique to this run and call. */
export function uniqueChannel(label: string): string {
  return `kafka-test:${RUN}-${label}-${++seq}`;
}

/** Records publications per channel and every state change. */
export class Recorder implements BackboneHandler {
  readonly states: BackboneState[] = [];
  readonly errors: (Error | undefined)[] = [];
  private readonly byChannel = new Map<string, Publication[]>();

  onPublication(pub: Publication): void {
    let list = this.byChannel.get(pub.channel);
    if (!list) this.byChannel.set(pub.channel, (list = []));
    list.push(pub);
  }

  onStateChange(state: BackboneState, error?: Error): void {
    this.states.push(state);
    this.errors.push(error);
  }

  of(channel: string): Publication[] {
    return this.byChannel.get(channel) ?? [];
  }

  /** Resolves with the channel's publications once there are at least `n`. */
  async count(channel: string, n: number, who: string, timeoutMs = 15_000): Promise<Publication[]> {
    await waitFor(`${n} publication(s) on ${channel} at ${who}`, () => this.of(channel).length >= n, timeoutMs, 5);
    return this.of(channel);
  }

  /** Resolves once the last reported state is `state`. */
  async state(state: BackboneState, who: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${who} to report '${state}' (saw ${this.states.join(' -> ') || 'nothing'})`, () => this.states.at(-1) === state, timeoutMs, 10);
  }
}

/** Deletes test topics; a missing one is fine. */
export async function deleteTopics(brokers: readonly string[], topics: readonly string[]): Promise<void> {
  const admin = new Admin({ clientId: 'gatehouse-test-cleanup', bootstrapBrokers: [...brokers], retries: 1 });
  try {
    await admin.deleteTopics({ topics: [...topics] }).catch(() => {});
  } finally {
    await admin.close().catch(() => {});
  }
}
