/**
 * Picks the backbone adapter from `--backbone` URLs. The adapters are imported only when chosen,
 * so a memory-backbone node never loads a Redis, NATS or Kafka client.
 */
import { MemoryBackbone, OptionsError } from '@gatehouse/server';
import type { Backbone } from '@gatehouse/server';

/**
 * A fleet's name on shared backbone servers: lowercase letters, digits and `-`, up to 32. It
 * becomes part of every name the adapter uses (see `backboneNames`).
 */
export function checkBackboneNamespace(ns: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(ns)) {
    throw new OptionsError(`backbone-namespace must be 1-32 characters of a-z 0-9 and "-", starting with a letter or digit, got ${JSON.stringify(ns.slice(0, 64))}`);
  }
}

/**
 * The names a fleet uses on the backbone servers. With a namespace each one gets its own first
 * token, so two fleets never overlap: a JetStream stream capturing `gatehouse.>` would also capture
 * `gatehouse.<ns>.>`, and JetStream refuses overlapping streams.
 */
export function backboneNames(ns: string | undefined): { redisKeyPrefix: string; natsSubjectPrefix: string; jetStream: string; kafkaTopic: string } {
  if (ns === undefined) return { redisKeyPrefix: 'gh', natsSubjectPrefix: 'gatehouse', jetStream: 'GATEHOUSE', kafkaTopic: 'gatehouse' };
  checkBackboneNamespace(ns);
  return { redisKeyPrefix: `gh-${ns}`, natsSubjectPrefix: `gatehouse-${ns}`, jetStream: `GATEHOUSE-${ns}`, kafkaTopic: `gatehouse-${ns}` };
}

/** Creates the backbone named by `urls` (all of one scheme; several only for sharded Redis). */
export async function createBackbone(urls: string[], namespace?: string): Promise<Backbone> {
  if (urls.length === 0 || (urls.length === 1 && urls[0] === 'memory')) return new MemoryBackbone();
  const schemes = new Set(urls.map((u) => u.split('://', 1)[0]));
  if (schemes.size !== 1) throw new OptionsError(`backbone URLs must share one scheme, got ${[...schemes].join(', ')}`);
  const scheme = [...schemes][0];
  const names = backboneNames(namespace);
  switch (scheme) {
    case 'redis':
    case 'rediss':
    case 'redis+cluster': {
      const { createRedisBackbone } = await import('@gatehouse/backbone-redis');
      return createRedisBackbone(urls, { keyPrefix: names.redisKeyPrefix });
    }
    case 'nats': {
      const { createNatsBackbone } = await import('@gatehouse/backbone-nats');
      return createNatsBackbone(urls, { subjectPrefix: names.natsSubjectPrefix });
    }
    case 'jetstream': {
      const { createJetStreamBackbone } = await import('@gatehouse/backbone-nats');
      return createJetStreamBackbone(urls, { subjectPrefix: names.natsSubjectPrefix, stream: names.jetStream });
    }
    case 'kafka': {
      const { createKafkaBackbone } = await import('@gatehouse/backbone-kafka');
      return createKafkaBackbone(urls, { topic: names.kafkaTopic });
    }
    default:
      throw new OptionsError(`backbone "${urls[0]}" is not supported; use memory, redis://, redis+cluster://, nats://, jetstream:// or kafka://`);
  }
}
