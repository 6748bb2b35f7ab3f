/**
 * Which adapter a backbone URL names, and the names a fleet uses on shared backbone servers.
 */
import { OptionsError } from '@gatehouse/server';

/** The backbones Gatehouse ships. */
export type BackboneKind = 'memory' | 'redis' | 'nats' | 'jetstream' | 'kafka';

/** The schemes `--backbone` takes, for error messages. */
const SUPPORTED = 'memory, redis://, rediss://, redis+cluster://, nats://, jetstream:// or kafka://';

/** The adapter a backbone URL names. Throws `OptionsError` for anything else. */
export function backboneKind(url: string): BackboneKind {
  if (url === 'memory') return 'memory';
  const scheme = typeof url === 'string' && url.includes('://') ? url.slice(0, url.indexOf('://')) : undefined;
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
      throw new OptionsError(`backbone ${JSON.stringify(String(url).slice(0, 200))} is not supported; use ${SUPPORTED}`);
  }
}

/**
 * The one adapter a list of backbone URLs names: empty means memory; several URLs must share an
 * adapter (Redis shards, which may mix redis:// and rediss://, NATS cluster seeds, Kafka bootstrap
 * brokers), and memory stands alone.
 */
export function backboneKindOf(urls: readonly string[]): BackboneKind {
  if (urls.length === 0) return 'memory';
  const kinds = new Set(urls.map(backboneKind));
  if (kinds.size !== 1) throw new OptionsError(`backbone URLs must all name one backbone, got ${[...kinds].join(', ')}`);
  const kind = [...kinds][0] as BackboneKind;
  if (kind === 'memory' && urls.length > 1) throw new OptionsError('backbone "memory" stands alone; give it once');
  return kind;
}

/**
 * A fleet's name on shared backbone servers: lowercase letters, digits and `-`, up to 32. It
 * becomes part of every name the adapter uses (see `backboneNames`).
 */
export function checkBackboneNamespace(ns: string): void {
  if (typeof ns !== 'string' || !/^[a-z0-9][a-z0-9-]{0,31}$/.test(ns)) {
    throw new OptionsError(
      `backbone-namespace must be 1-32 characters of a-z 0-9 and "-", starting with a letter or digit, got ${JSON.stringify(String(ns).slice(0, 64))}`,
    );
  }
}

/** The names one fleet uses on the backbone servers. */
export interface BackboneNames {
  /** Redis: prefix of every key and pub/sub channel (data, control and records). */
  readonly redisKeyPrefix: string;
  /** NATS and JetStream: first subject token of every subject (data, control and records). */
  readonly natsSubjectPrefix: string;
  /** JetStream: the stream. */
  readonly jetStream: string;
  /** Kafka: the topic (control traffic and records use topics named after it). */
  readonly kafkaTopic: string;
}

/**
 * The names a fleet uses on the backbone servers. With a namespace each one gets its own first
 * token, so two fleets never overlap: a JetStream stream capturing `gatehouse.>` would also capture
 * `gatehouse.<ns>.>`, and JetStream refuses overlapping streams.
 */
export function backboneNames(ns: string | undefined): BackboneNames {
  if (ns === undefined) return { redisKeyPrefix: 'gh', natsSubjectPrefix: 'gatehouse', jetStream: 'GATEHOUSE', kafkaTopic: 'gatehouse' };
  checkBackboneNamespace(ns);
  return { redisKeyPrefix: `gh-${ns}`, natsSubjectPrefix: `gatehouse-${ns}`, jetStream: `GATEHOUSE-${ns}`, kafkaTopic: `gatehouse-${ns}` };
}
