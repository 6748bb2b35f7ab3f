/**
 * Test support for the NATS suites: private nats-server processes on free ports (for tests that
 * restart a server; the shared one is never touched) and stream cleanup.
 */
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { recordsBucket } from '../src/index.js';
import { NATS_RECIPE, PrivateServer, binaryInstalled } from '@gatehouse/testkit';

/** True when the nats-server binary is installed (private servers need it). */
export const natsServerInstalled = (): Promise<boolean> => binaryInstalled('nats-server');

/** A private nats-server with JetStream (see testkit's PrivateServer). */
export type PrivateNats = PrivateServer;

/** Starts a private nats-server on a free port. */
export const startPrivateNats = (): Promise<PrivateServer> => PrivateServer.start(NATS_RECIPE);

/** Deletes a stream and its records bucket if they exist (test cleanup on a shared server). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => false);
    // A KV bucket is the stream KV_<bucket>.
    await jsm.streams.delete(`KV_${recordsBucket(stream)}`).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** A prefix and stream of one suite's own on the shared server, and a connection of an outsider. */
export interface SharedServerPlace {
  readonly prefix: string;
  readonly stream: string;
  /** A plain NATS connection, for writing where the backbones read as any service could. */
  raw(): NatsConnection;
}

/**
 * Registers (inside a `describe`) the hooks that open a raw connection to the shared server at
 * `url` and, afterwards, close it and delete the suite's stream and records bucket.
 */
export function sharedServerPlace(url: string): SharedServerPlace {
  const id = randomBytes(4).toString('hex');
  let raw: NatsConnection | undefined;
  before(async () => {
    raw = await connect({ servers: url });
  });
  after(async () => {
    await raw?.close();
    await deleteStream(url, `GHTEST_${id}`);
  });
  return {
    prefix: `ghtest${id}`,
    stream: `GHTEST_${id}`,
    raw: () => {
      if (!raw) throw new Error('the raw connection is opened in a before hook');
      return raw;
    },
  };
}
