/**
 * One way to build a backbone from its URLs and settings, for the CLI, the fleet drills and
 * anything else that starts one. Adapters are imported only when chosen, so a memory-backbone
 * node never loads a Redis, NATS or Kafka client.
 */
import type { Backbone } from '@gatehouse/backbone-kit';
import type { KafkaBackboneOptions } from '@gatehouse/backbone-kafka';
import type { JetStreamBackboneOptions, NatsBackboneOptions } from '@gatehouse/backbone-nats';
import type { RedisBackboneOptions } from '@gatehouse/backbone-redis';
import { MemoryBackbone, OptionsError } from '@gatehouse/server';
import { backboneKindOf, backboneNames } from './names.js';
import { BACKBONE_SETTINGS, checkSettings, type BackboneSettings, type SectionName } from './settings.js';

/** How to build a backbone besides its URLs. */
export interface BackboneOptions extends BackboneSettings {
  /**
   * The fleet's name on shared backbone servers (`--backbone-namespace`): sets the Redis key
   * prefix, NATS subject prefix, JetStream stream and Kafka topic (see `backboneNames`).
   */
  readonly namespace?: string | undefined;
  /** Told about each incoming message an adapter dropped as malformed: why, and where it came from. */
  readonly onMalformed?: ((reason: string, where: string) => void) | undefined;
}

/** The adapter to build and exactly what it is given: `createBackbone` without the import. */
export type BackbonePlan =
  | { readonly kind: 'memory' }
  | { readonly kind: 'redis'; readonly options: RedisBackboneOptions }
  | { readonly kind: 'nats'; readonly options: NatsBackboneOptions }
  | { readonly kind: 'jetstream'; readonly options: JetStreamBackboneOptions }
  | { readonly kind: 'kafka'; readonly options: KafkaBackboneOptions };

/** The setting a namespace sets, per section: giving both is a contradiction. */
const NAMED_BY_NAMESPACE: Readonly<Record<SectionName, string>> = {
  redis: 'keyPrefix',
  nats: 'subjectPrefix',
  jetstream: 'stream',
  kafka: 'topic',
};

/**
 * Works out which adapter `urls` name and the options it gets: the sections that apply, the
 * namespace's names, the malformed-message hook. Checks kinds and names (`OptionsError` naming the
 * setting); the adapter checks ranges when it is created.
 */
export function planBackbone(urls: readonly string[], options: BackboneOptions = {}): BackbonePlan {
  const kind = backboneKindOf(urls);
  const settings = checkSettings({ redis: options.redis, nats: options.nats, jetstream: options.jetstream, kafka: options.kafka });
  if (options.namespace !== undefined) {
    for (const [section, key] of Object.entries(NAMED_BY_NAMESPACE) as [SectionName, string][]) {
      if ((settings[section] as Record<string, unknown> | undefined)?.[key] !== undefined) {
        throw new OptionsError(`backbone.${section}.${key} and backbone-namespace both name the fleet's ${key}; set one of them`);
      }
    }
  }
  const names = options.namespace === undefined ? undefined : backboneNames(options.namespace);
  const hook = options.onMalformed;
  switch (kind) {
    case 'memory':
      return { kind };
    case 'redis':
      return {
        kind,
        options: {
          ...settings.redis,
          ...(names && { keyPrefix: names.redisKeyPrefix }),
          ...(hook && { onMalformed: hook }),
          urls: [...urls],
        },
      };
    case 'nats':
      return {
        kind,
        options: {
          ...settings.nats,
          ...(names && { subjectPrefix: names.natsSubjectPrefix }),
          ...(hook && { onMalformed: hook }),
          servers: [...urls],
        },
      };
    case 'jetstream':
      return {
        kind,
        options: {
          ...settings.nats,
          ...settings.jetstream,
          ...(names && { subjectPrefix: names.natsSubjectPrefix, stream: names.jetStream }),
          ...(hook && { onMalformed: hook }),
          servers: [...urls],
        },
      };
    case 'kafka':
      return {
        kind,
        options: {
          ...settings.kafka,
          ...(names && { topic: names.kafkaTopic }),
          ...(hook && { onMalformed: hook }),
          brokers: [...urls],
        },
      };
  }
}

/** The section that holds setting `key` for adapter `kind`, for naming it in an error. */
function sectionOf(kind: BackbonePlan['kind'], key: string): SectionName | undefined {
  const candidates: SectionName[] = kind === 'jetstream' ? ['jetstream', 'nats'] : kind === 'memory' ? [] : [kind];
  return candidates.find((s) => Object.hasOwn(BACKBONE_SETTINGS[s], key));
}

/**
 * Turns an adapter's option error into one naming the setting: the adapter says
 * `JetStreamBackbone option "replicas" must be ...`, the operator wrote `backbone.jetstream.replicas`.
 */
function settingError(kind: BackbonePlan['kind'], err: unknown): unknown {
  if (!(err instanceof TypeError)) return err;
  const option = /option "(\w+)"/.exec(err.message)?.[1];
  const section = option === undefined ? undefined : sectionOf(kind, option);
  const where = section === undefined ? `backbone (${kind})` : `backbone.${section}.${option}`;
  return new OptionsError(`${where}: ${err.message}`);
}

/**
 * Creates (does not start) the backbone `urls` name, all of one adapter: `memory` (or nothing),
 * one or several `redis://` / `rediss://` shards or `redis+cluster://` seeds, `nats://` or
 * `jetstream://` cluster seeds, `kafka://` bootstrap brokers. Bad URLs and settings reject with an
 * `OptionsError` naming them.
 */
export async function createBackbone(urls: readonly string[], options: BackboneOptions = {}): Promise<Backbone> {
  const plan = planBackbone(urls, options);
  try {
    switch (plan.kind) {
      case 'memory':
        return new MemoryBackbone();
      case 'redis': {
        const { RedisBackbone } = await import('@gatehouse/backbone-redis');
        return new RedisBackbone(plan.options);
      }
      case 'nats': {
        const { NatsBackbone } = await import('@gatehouse/backbone-nats');
        return new NatsBackbone(plan.options);
      }
      case 'jetstream': {
        const { JetStreamBackbone } = await import('@gatehouse/backbone-nats');
        return new JetStreamBackbone(plan.options);
      }
      case 'kafka': {
        const { createKafkaBackbone } = await import('@gatehouse/backbone-kafka');
        const { brokers, ...rest } = plan.options;
        return createKafkaBackbone([...brokers], rest);
      }
    }
  } catch (err) {
    throw settingError(plan.kind, err);
  }
}
