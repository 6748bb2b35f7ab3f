/**
 * Key naming and the two server-side Lua scripts. The offset is assigned by the publish script
 * atomically with the history append and the PUBLISH, so every publisher (gateway or outside
 * service) and every node agrees on one order per channel. docs/backbones.md documents both
 * scripts' KEYS and ARGV so services in other languages can run them too.
 *
 * Per channel (the hash tag `{channel}` keeps all three in one Redis Cluster slot):
 *   `<prefix>:{<channel>}:pos`  hash: e = epoch, o = last offset, t = history TTL in seconds
 *   `<prefix>:{<channel>}:log`  stream: entry id `<offset>-0`, fields d = data (JSON), t = ts (ms)
 *   `<prefix>:{<channel>}`      the pub/sub channel carrying the JSON envelope
 */
import { createHash } from 'node:crypto';

/** The Redis names one channel uses. */
export interface ChannelKeys {
  readonly pos: string;
  readonly log: string;
  readonly pubsub: string;
}

/** The keys and pub/sub channel of `channel` under `prefix`. */
export function channelKeys(prefix: string, channel: string): ChannelKeys {
  const base = `${prefix}:{${channel}}`;
  return { pos: `${base}:pos`, log: `${base}:log`, pubsub: base };
}

/**
 * Publish. KEYS: pos, log. ARGV: 1 pub/sub channel, 2 envelope head (`{"v":1,"channel":"<json>"`),
 * 3 data (JSON text), 4 ts (ms), 5 history size, 6 history TTL s (0: none), 7 pos expiry s,
 * 8 log expiry s, 9 epoch nonce, 10 "1" for SPUBLISH. Returns {epoch, offset}.
 */
export const PUBLISH_LUA = `
local pos, log = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', pos, 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = ARGV[9] .. t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', pos, 'e', epoch, 'o', 0)
  redis.call('DEL', log)
end
local offset = redis.call('HINCRBY', pos, 'o', 1)
redis.call('HSET', pos, 't', ARGV[6])
redis.call('EXPIRE', pos, ARGV[7])
local size = tonumber(ARGV[5])
if size > 0 then
  redis.call('XADD', log, 'MAXLEN', size, offset .. '-0', 'd', ARGV[3], 't', ARGV[4])
  redis.call('EXPIRE', log, ARGV[8])
else
  redis.call('DEL', log)
end
local env = ARGV[2] .. ',"epoch":"' .. epoch .. '","offset":' .. offset .. ',"ts":' .. ARGV[4] .. ',"data":' .. ARGV[3] .. '}'
if ARGV[10] == '1' then
  redis.call('SPUBLISH', ARGV[1], env)
else
  redis.call('PUBLISH', ARGV[1], env)
end
return {epoch, offset}
`;

/**
 * History read. KEYS: pos, log. ARGV: 1 expected epoch ('' for position only), 2 after offset,
 * 3 limit, 4 expiry s for a position created here, 5 epoch nonce.
 * Returns {epoch, offset, ttl, entries or false}. Entries come back only when the epoch matches
 * and the missed publications fit the limit; a channel nobody published to gets a position here,
 * so every node sees the same epoch before the first publication.
 */
export const READ_LUA = `
local pos, log = KEYS[1], KEYS[2]
local m = redis.call('HMGET', pos, 'e', 'o', 't')
local epoch = m[1]
if not epoch then
  local t = redis.call('TIME')
  epoch = ARGV[5] .. t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', pos, 'e', epoch, 'o', 0)
  redis.call('EXPIRE', pos, ARGV[4])
  return {epoch, 0, 0, false}
end
local offset = tonumber(m[2])
local ttl = tonumber(m[3] or '0')
local after = tonumber(ARGV[2])
if ARGV[1] ~= epoch or after >= offset or offset - after > tonumber(ARGV[3]) then
  return {epoch, offset, ttl, false}
end
return {epoch, offset, ttl, redis.call('XRANGE', log, (after + 1) .. '-0', '+', 'COUNT', offset - after)}
`;

/** A script with its SHA1, computed once so the hot path sends EVALSHA. */
export interface LoadedScript {
  readonly lua: string;
  readonly sha: string;
}

function load(lua: string): LoadedScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** The publish script and its SHA1. */
export const PUBLISH_SCRIPT = load(PUBLISH_LUA);
/** The history script and its SHA1. */
export const READ_SCRIPT = load(READ_LUA);
