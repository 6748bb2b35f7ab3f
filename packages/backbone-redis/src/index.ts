/**
 * @gatehouse/backbone-redis: the Redis backbone (Pub/Sub + Streams, one Lua script per publish),
 * channel sharding over several servers by rendezvous hashing, and the pieces outside services
 * need to publish straight into Redis.
 */
export {
  RedisBackbone,
  createRedisBackbone,
  connectRedisPublisher,
  REDIS_MAX_RECORDS_PER_KIND,
  type RedisBackboneStats,
} from './redis-backbone.js';
export {
  REDIS_DEFAULTS,
  resolveRedisOptions,
  parseRedisUrl,
  type RedisBackboneOptions,
  type ResolvedRedisOptions,
  type RedisServer,
} from './options.js';
export {
  channelKeys,
  controlChannel,
  recordKeys,
  PUBLISH_LUA,
  SCRIPT_ENVELOPE_START,
  READ_LUA,
  PUBLISH_SCRIPT,
  READ_SCRIPT,
  PUT_RECORD_LUA,
  READ_RECORDS_LUA,
  PUT_RECORD_SCRIPT,
  READ_RECORDS_SCRIPT,
  SCRIPTS,
  type ChannelKeys,
  type RecordKeys,
  type LoadedScript,
} from './scripts.js';
