/** Cleanup for CLI suites that start gateways on the shared JetStream server. */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { SERVICES } from '@gatehouse/testkit';

/** What the shared server says about stream `name`, or undefined when there is none. */
export async function streamConfig(
  name: string,
): Promise<{ storage: string; max_msgs_per_subject: number; num_replicas: number } | undefined> {
  const nc = await connect({ servers: `${SERVICES.nats.host}:${SERVICES.nats.port}` });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(name).catch(() => undefined);
    return info?.config;
  } finally {
    await nc.close();
  }
}

/**
 * Deletes every stream whose name contains `token` (a test run's random part): the fleet's stream
 * and whatever else its adapter made beside it, such as the records bucket.
 */
export async function deleteStreamsContaining(token: string): Promise<void> {
  const nc = await connect({ servers: `${SERVICES.nats.host}:${SERVICES.nats.port}` });
  try {
    const jsm = await jetstreamManager(nc);
    const doomed: string[] = [];
    for await (const name of jsm.streams.names()) if (name.includes(token)) doomed.push(name);
    for (const name of doomed) await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}
