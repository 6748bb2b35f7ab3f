/**
 * Publishing straight into the backbone, the way an outside service does (docs/backbones.md):
 * with the adapter's own `publish`, so offsets come from the backbone exactly as they do for the
 * gateways (Redis: the publish script; JetStream: the stream sequence; Kafka: the partition
 * offset; NATS core: the documented envelope on the mapped subject).
 */
import { backboneKind as registryKind, createBackbone, type BackboneKind } from '@gatehouse/backbones';

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

/** The backbones several processes can share. */
export type SharedBackboneKind = Exclude<BackboneKind, 'memory'>;

/** The adapter a backbone URL names: `redis`, `nats`, `jetstream` or `kafka` (memory is refused). */
export function backboneKind(url: string): SharedBackboneKind {
  const kind = registryKind(url);
  if (kind === 'memory')
    throw new TypeError('backbone "memory" cannot be shared by processes; use redis://, nats://, jetstream:// or kafka://');
  return kind;
}

/** True when the backbone gives publications positions (every one except NATS core). */
export function isSequenced(url: string): boolean {
  return backboneKind(url) !== 'nats';
}

const IGNORE = { onPublication: () => {}, onStateChange: () => {}, onControl: () => {} };

/**
 * Connects a direct publisher for the backbone at `urls` (the same URLs, and so the same adapter
 * defaults: key prefix, subject prefix, stream, topic, as `gatehouse start --backbone`). Nothing
 * is subscribed, so the adapter only publishes (Redis opens no subscriber connection).
 */
export async function connectDirectPublisher(urls: readonly string[], retention: Retention): Promise<DirectPublisher> {
  const kind = backboneKind(urls[0] as string);
  const backbone = await createBackbone(urls);
  await backbone.start(IGNORE);
  return {
    kind,
    publish: async (channel, dataJson) => {
      const p = await backbone.publish(channel, dataJson, retention);
      return { epoch: p.epoch, offset: p.offset };
    },
    close: () => backbone.close(),
  };
}
