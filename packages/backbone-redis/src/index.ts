/**
 * @gatehouse/backbone-redis: the Redis backbone (Pub/Sub + Streams, one Lua script per publish),
 * channel sharding over several servers by rendezvous hashing, and the pieces outside services
 * need to publish straight into Redis.
 */
export { RedisBackbone, createRedisBackbone, connectRedisPublisher, type RedisBackboneStats } from './redis-backbone.js';
export { REDIS_DEFAULTS, resolveRedisOptions, parseRedisUrl, type RedisBackboneOptions, type ResolvedRedisOptions, type RedisServer } from './options.js';
export { RendezvousHash, murmur3, murmur3Bytes } from '@gatehouse/backbone-kit';
export { channelKeys, PUBLISH_LUA, READ_LUA, PUBLISH_SCRIPT, READ_SCRIPT, type ChannelKeys, type LoadedScript } from './scripts.js';
export { decodeEnvelope, envelopeHead, ENVELOPE_VERSION } from './envelope.js';
