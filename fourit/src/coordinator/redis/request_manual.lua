-- Translates the rule book's manual request: coordinator/rules/manual.rs (`request`).
-- Records a manual run request at Redis's time (its tick), or one millisecond past the job's
-- latest request when that is not earlier (field `~latest`): each request has a tick of its own.
-- KEYS[1] ns:{job}:manual; ARGV: request id, who, "1" to force
-- Returns the request's tick (ms, as text).
local now = redis.call('TIME')
local at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local latest = tonumber(redis.call('HGET', KEYS[1], '~latest'))
if latest and latest >= at then
  at = latest + 1
end
local ms = string.format('%.0f', at)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\t' .. ms .. '\t' .. ARGV[3] .. '\tpending',
  '~latest', ms)
return ms
