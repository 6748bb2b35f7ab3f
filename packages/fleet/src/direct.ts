/**
 * Publishing straight into the backbone, the way an outside service does (docs/backbones.md):
 * with the adapter's own `publish`, so offsets come from the backbone exactly as they do for the
 * gateways (Redis: the publish script; JetStream: the stream sequence; Kafka: the partition
 * offset; NATS core: the documented envelope on the mapped subject).
 */

/** Retention a publish carries: the channel's namespace settings, the same the gateways use. */
export interface Retention {
  readonly historySize: number;
  readonly historyTtlSeconds: number;
}

/** A publisher that writes into the backbone without a gateway. */
export interface DirectPublisher {
  readonly kind: string;
  /** Resolves with the position the backbone gave the publication. */
  publish(channel: string, dataJson: string): Promise<{ epoch: string; offset: number }>;
  close(): Promise<void>;
}

/** The scheme of a backbone URL: `redis`, `nats`, `jetstream` or `kafka`. */
export function backboneKind(url: string): 'redis' | 'nats' | 'jetstream' | 'kafka' {
  const scheme = url.split('://', 1)[0];
  switch (scheme) {
    case 'redis':
    case 'rediss':
    case 'redis+cluster':
      return 'redis';
    case 'nats':
    case 'jetstream':
    case 'kafka':
      return scheme;
    default:
      throw new TypeError(`backbone "${url}" cannot be shared by processes; use redis://, nats://, jetstream:// or kafka://`);
  }
}

/** True when the backbone gives publications positions (every one except NATS core). */
export function isSequenced(url: string): boolean {
  return backboneKind(url) !== 'nats';
}

const IGNORE = { onPublication: () => {}, onStateChange: () => {} };

/**
 * Connects a direct publisher for the backbone at `urls` (the same URLs, and so the same adapter
 * defaults: key prefix, subject prefix, stream, topic, as `gatehouse start --backbone`).
 */
export async function connectDirectPublisher(urls: readonly string[], retention: Retention): Promise<DirectPublisher> {
  const kind = backboneKind(urls[0] as string);
  let backbone: { publish(channel: string, data: string, o: Retention): Promise<{ epoch: string; offset: number }>; close(): Promise<void> };
  switch (kind) {
    case 'redis': {
      const { connectRedisPublisher } = await import('@gatehouse/backbone-redis');
      backbone = await connectRedisPublisher(urls);
      break;
    }
    case 'nats': {
      const { createNatsBackbone } = await import('@gatehouse/backbone-nats');
      const b = createNatsBackbone(urls);
      await b.start(IGNORE);
      backbone = b;
      break;
    }
    case 'jetstream': {
      const { createJetStreamBackbone } = await import('@gatehouse/backbone-nats');
      const b = createJetStreamBackbone(urls);
      await b.start(IGNORE);
      backbone = b;
      break;
    }
    case 'kafka': {
      const { createKafkaBackbone } = await import('@gatehouse/backbone-kafka');
      const b = createKafkaBackbone([...urls]);
      await b.start(IGNORE);
      backbone = b;
      break;
    }
  }
  return {
    kind,
    publish: async (channel, dataJson) => {
      const p = await backbone.publish(channel, dataJson, retention);
      return { epoch: p.epoch, offset: p.offset };
    },
    close: () => backbone.close(),
  };
}
