/**
 * Key naming and the server-side Lua scripts. The offset is assigned by the publish script
 * atomically with the history append and the PUBLISH, so every publisher (gateway or outside
 * service) and every node agrees on one order per channel. docs/backbones.md documents the
 * publish script's KEYS and ARGV (and its redis-cli recipe) so services in other languages can run
 * it too.
 *
 * Per channel (the hash tag `{channel}` keeps all three in one Redis Cluster slot):
 *   `<prefix>:{<channel>}:pos`  hash: e = epoch, o = last offset, t = history TTL in seconds
 *   `<prefix>:{<channel>}:log`  stream: entry id `<offset>-0`, fields d = data (JSON), t = ts (ms)
 *   `<prefix>:{<channel>}`      the pub/sub channel carrying the JSON envelope
 *
 * The control plane (a `#` can never appear in a channel name, so these never meet a channel's):
 *   `<prefix>:{<prefix>#control}`              the pub/sub channel carrying control messages
 *   `<prefix>:{<prefix>#records.<kind>}:v`     hash: record key -> encoded record (kit's encodeRecord)
 *   `<prefix>:{<prefix>#records.<kind>}:x`     sorted set: record key scored by expiresAt (ms)
 * The prefix inside the hash tag spreads the fleets sharing a cluster over its slots.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

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
 * The publish script, read from the package's `scripts/publish.lua` (shipped with the package, so
 * a service in another language runs the very file the gateways run; its header documents KEYS
 * and ARGV). KEYS: pos, log. ARGV: channel, data, ts, history size, history TTL s, idle TTL s,
 * epoch nonce, "1" for SPUBLISH. Returns {epoch, offset}.
 */
export const PUBLISH_LUA = readFileSync(new URL('../../scripts/publish.lua', import.meta.url), 'utf8');

/**
 * How every envelope the publish script writes begins. A message on a channel's pub/sub channel
 * that begins otherwise did not come through the script (it has no offset of its own and no
 * history entry), so subscribers drop it instead of delivering a made-up position.
 */
export const SCRIPT_ENVELOPE_START = '{"v":1,"via":"publish.lua",';

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

/** The pub/sub channel of the control plane under `prefix`. */
export function controlChannel(prefix: string): string {
  return `${prefix}:{${prefix}#control}`;
}

/** The two keys holding the records of `kind` under `prefix` (one hash tag: one cluster slot). */
export interface RecordKeys {
  /** Hash: record key -> encoded record. */
  readonly values: string;
  /** Sorted set: record key scored by its expiresAt, so expired ones are found without a scan. */
  readonly expiry: string;
}

/** The keys of the records of `kind` under `prefix`. */
export function recordKeys(prefix: string, kind: string): RecordKeys {
  const base = `${prefix}:{${prefix}#records.${kind}}`;
  return { values: `${base}:v`, expiry: `${base}:x` };
}

/**
 * Shared head of both record scripts: drops the records that expired by ARGV[1] (the caller's
 * clock, ms), in slices so no single command outgrows Lua's stack however many expired at once.
 */
const RECORDS_SWEEP = `
local values, expiry = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for i = 1, #gone, 500 do
  local slice = {unpack(gone, i, math.min(i + 499, #gone))}
  redis.call('HDEL', values, unpack(slice))
  redis.call('ZREM', expiry, unpack(slice))
end
`;

/**
 * Put a record. KEYS: values, expiry. ARGV: 1 now (ms), 2 record key, 3 encoded record,
 * 4 expiresAt (ms), 5 most records per kind, 6 extra key lifetime (ms).
 * Returns the number of records now kept, or -1 when the kind is full (nothing written). A
 * record that already expired removes its key. Both keys expire, relative to `now` so the
 * server's clock does not matter, once their longest-lived record has (plus the extra lifetime):
 * a kind nobody writes any more leaves nothing behind.
 */
export const PUT_RECORD_LUA =
  RECORDS_SWEEP +
  `
local key, expiresAt = ARGV[2], tonumber(ARGV[4])
if expiresAt <= now then
  redis.call('HDEL', values, key)
  redis.call('ZREM', expiry, key)
else
  if redis.call('HEXISTS', values, key) == 0 and redis.call('ZCARD', expiry) >= tonumber(ARGV[5]) then
    return -1
  end
  redis.call('HSET', values, key, ARGV[3])
  redis.call('ZADD', expiry, ARGV[4], key)
end
local last = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
if last[2] then
  local ttl = math.ceil(tonumber(last[2]) - now) + tonumber(ARGV[6])
  redis.call('PEXPIRE', values, ttl)
  redis.call('PEXPIRE', expiry, ttl)
end
return redis.call('ZCARD', expiry)
`;

/**
 * Read the records of a kind. KEYS: values, expiry. ARGV: 1 now (ms). Drops the expired ones
 * first, then returns the encoded records left.
 */
export const READ_RECORDS_LUA =
  RECORDS_SWEEP +
  `
return redis.call('HVALS', values)
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
/** The record-writing script and its SHA1. */
export const PUT_RECORD_SCRIPT = load(PUT_RECORD_LUA);
/** The record-reading script and its SHA1. */
export const READ_RECORDS_SCRIPT = load(READ_RECORDS_LUA);
/** Every script, loaded into each server's cache as a connection becomes ready. */
export const SCRIPTS: readonly LoadedScript[] = [PUBLISH_SCRIPT, READ_SCRIPT, PUT_RECORD_SCRIPT, READ_RECORDS_SCRIPT];
