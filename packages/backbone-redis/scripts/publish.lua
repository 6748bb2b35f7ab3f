--[[
Gatehouse: publish one message into a channel on Redis (envelope v1).

Every gateway runs this script for every publish, and a service that publishes straight into
Redis runs the same file (docs/backbones.md, "Publishing from outside"). It assigns the next
offset, appends the message to the channel's history stream and PUBLISHes the envelope, all in
one atomic step, so every publisher and every gateway agrees on one order per channel.

KEYS[1]  <prefix>:{<channel>}:pos   hash: e = epoch, o = last offset, t = history TTL (s)
KEYS[2]  <prefix>:{<channel>}:log   stream: entry id <offset>-0, fields d = data, t = ts (ms)
ARGV[1]  channel                    e.g. chat:room-1 (the one inside the braces of both keys)
ARGV[2]  data                       the payload as JSON text, e.g. {"text":"hi"}
ARGV[3]  ts                         ms since the Unix epoch (digits, optional fraction);
                                    empty: the Redis server's clock
ARGV[4]  historySize                publications kept for recovery (0: none)
ARGV[5]  historyTtlSeconds          how long they stay recoverable (0: no limit but idleTtlSeconds)
ARGV[6]  idleTtlSeconds             how long the position outlives the last publish (gateways'
                                    idleTtlSeconds, 86400 by default)
ARGV[7]  epochNonce                 1-16 characters of A-Z a-z 0-9 _ -, starts the epoch this
                                    publish creates if the channel has none
ARGV[8]  sharded                    1: SPUBLISH, 0: PUBLISH (the gateways' `sharded` setting)

The envelope goes to the pub/sub channel <prefix>:{<channel>} (KEYS[1] without ":pos"):
  {"v":1,"via":"publish.lua","channel":"<channel>","epoch":"<e>","offset":<n>,"ts":<ts>,"data":<data>}
Gateways drop a message on that channel that does not begin with {"v":1,"via":"publish.lua",
so a hand-made PUBLISH (which would skip the offset and the history) never reaches clients.

Returns {epoch, offset}. Bad arguments return an error naming the argument; nothing is written.
The script does not parse `data`: JSON that does not parse is dropped by the gateways
(counted as malformed), and clients subscribed to the channel are told of a gap.
]]
local pos, log = KEYS[1], KEYS[2]
local channel, data, ts = ARGV[1], ARGV[2], ARGV[3]

local function fail(what)
  return redis.error_reply('gatehouse publish.lua: ' .. what)
end
local function count(s)
  return type(s) == 'string' and string.match(s, '^%d+$') ~= nil and #s <= 15
end

if #KEYS ~= 2 or #ARGV ~= 8 then return fail('expects 2 keys and 8 arguments') end
if type(pos) ~= 'string' or string.sub(pos, -4) ~= ':pos' then return fail('KEYS[1] must be <prefix>:{<channel>}:pos') end
local base = string.sub(pos, 1, -5)
if channel == '' or string.sub(base, -(#channel + 2)) ~= '{' .. channel .. '}' then
  return fail('ARGV[1] channel must be the one in the braces of KEYS[1]')
end
if log ~= base .. ':log' then return fail('KEYS[2] must be ' .. base .. ':log') end
if data == '' then return fail('ARGV[2] data must be JSON text') end
if ts == '' then
  local t = redis.call('TIME')
  ts = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
elseif not (string.match(ts, '^%d+$') or string.match(ts, '^%d+%.%d+$')) then
  return fail('ARGV[3] ts must be ms since the Unix epoch, or empty')
end
if not count(ARGV[4]) then return fail('ARGV[4] historySize must be an integer >= 0') end
if not count(ARGV[5]) then return fail('ARGV[5] historyTtlSeconds must be an integer >= 0') end
if not count(ARGV[6]) or tonumber(ARGV[6]) < 1 then return fail('ARGV[6] idleTtlSeconds must be an integer >= 1') end
if not string.match(ARGV[7], '^[A-Za-z0-9_-]+$') or #ARGV[7] > 16 then
  return fail('ARGV[7] epochNonce must be 1-16 characters of A-Z a-z 0-9 _ -')
end
if ARGV[8] ~= '0' and ARGV[8] ~= '1' then return fail('ARGV[8] sharded must be 0 or 1') end

local size, ttl, idle = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local epoch = redis.call('HGET', pos, 'e')
if not epoch then
  -- A new epoch whenever the channel has no position (first publish, or it expired): clients
  -- holding a position from before are told to reload instead of trusting reused offsets.
  local t = redis.call('TIME')
  epoch = ARGV[7] .. t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', pos, 'e', epoch, 'o', 0)
  redis.call('DEL', log)
end
local offset = redis.call('HINCRBY', pos, 'o', 1)
redis.call('HSET', pos, 't', ttl)
-- The position outlives the history so offsets stay stable while old entries age out.
redis.call('EXPIRE', pos, math.max(idle, ttl))
if size > 0 then
  redis.call('XADD', log, 'MAXLEN', size, offset .. '-0', 'd', data, 't', ts)
  redis.call('EXPIRE', log, ttl > 0 and ttl or idle)
else
  redis.call('DEL', log)
end
local env = '{"v":1,"via":"publish.lua","channel":' .. cjson.encode(channel) .. ',"epoch":"' .. epoch ..
  '","offset":' .. offset .. ',"ts":' .. ts .. ',"data":' .. data .. '}'
redis.call(ARGV[8] == '1' and 'SPUBLISH' or 'PUBLISH', base, env)
return {epoch, offset}
