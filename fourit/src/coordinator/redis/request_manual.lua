-- Translates the rule book's manual request: coordinator/rules/manual.rs (`request`).
-- Records a manual run request at Redis's time (its tick).
-- KEYS[1] ns:{job}:manual; ARGV: request id, who, "1" to force
-- Returns the request's time (ms, as text).
local now = redis.call('TIME')
local ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\t' .. ms .. '\t' .. ARGV[3] .. '\tpending')
return ms
