/**
 * Shared pieces of the Kafka suites: where the broker is, names no other run uses, a handler that
 * records what it is given, and topic cleanup.
 */
import { randomBytes } from 'node:crypto';
import { Admin } from '@platformatic/kafka';
import type { BackboneState } from '@gatehouse/backbone-kit';
import { RecordingHandler } from '@gatehouse/conformance';
import { SERVICES, waitFor } from '@gatehouse/testkit';
import { controlTopicName, recordsTopicName } from '../src/index.js';

/** Deadline for one awaited delivery, ms: generous, because the machine may be loaded. */
export const WAIT = 15_000;

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

/** The conformance suite's recording handler, plus a wait for a reported state. */
export class Recorder extends RecordingHandler {
  /** Resolves once the last reported state is `state`. */
  async state(state: BackboneState, who: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${who} to report '${state}' (saw ${this.states.join(' -> ') || 'nothing'})`,
      () => this.states.at(-1) === state,
      timeoutMs,
      10,
    );
  }
}

/** Deletes test data topics and the control-plane topics beside them; a missing one is fine. */
export async function deleteTopics(brokers: readonly string[], topics: readonly string[]): Promise<void> {
  const admin = new Admin({ clientId: 'gatehouse-test-cleanup', bootstrapBrokers: [...brokers], retries: 1 });
  const all = topics.flatMap((t) => [t, controlTopicName(t), recordsTopicName(t)]);
  try {
    // One call per topic: a batch fails as a whole when one of its topics is missing.
    await Promise.all(all.map((t) => admin.deleteTopics({ topics: [t] }).catch(() => {})));
  } finally {
    await admin.close().catch(() => {});
  }
}
