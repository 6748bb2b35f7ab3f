/**
 * Picks the backbone adapter from `--backbone` URLs. The adapters are imported only when chosen,
 * so a memory-backbone node never loads a Redis, NATS or Kafka client.
 */
import { MemoryBackbone, OptionsError } from '@gatehouse/server';
import type { Backbone } from '@gatehouse/server';

/** Creates the backbone named by `urls` (all of one scheme; several only for sharded Redis). */
export async function createBackbone(urls: string[]): Promise<Backbone> {
  if (urls.length === 0 || (urls.length === 1 && urls[0] === 'memory')) return new MemoryBackbone();
  const schemes = new Set(urls.map((u) => u.split('://', 1)[0]));
  if (schemes.size !== 1) throw new OptionsError(`backbone URLs must share one scheme, got ${[...schemes].join(', ')}`);
  const scheme = [...schemes][0];
  switch (scheme) {
    case 'redis':
    case 'rediss':
    case 'redis+cluster': {
      const { createRedisBackbone } = await import('@gatehouse/backbone-redis');
      return createRedisBackbone(urls);
    }
    case 'nats': {
      const { createNatsBackbone } = await import('@gatehouse/backbone-nats');
      return createNatsBackbone(urls);
    }
    case 'jetstream': {
      const { createJetStreamBackbone } = await import('@gatehouse/backbone-nats');
      return createJetStreamBackbone(urls.map((u) => u.replace(/^jetstream:/, 'nats:')));
    }
    case 'kafka': {
      const { createKafkaBackbone } = await import('@gatehouse/backbone-kafka');
      return createKafkaBackbone(urls.map((u) => u.replace(/^kafka:\/\//, '').replace(/\/.*$/, '')));
    }
    default:
      throw new OptionsError(`backbone "${urls[0]}" is not supported; use memory, redis://, redis+cluster://, nats://, jetstream:// or kafka://`);
  }
}
