-- Marks a node alive at Redis's own time, and forgets nodes silent for too long.
-- KEYS[1] ns:nodes (sorted set: node -> last heartbeat, ms); ARGV: node, forget after (ms)
-- Returns the Redis time used, in ms.
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (ms - tonumber(ARGV[2])))
return string.format('%.0f', ms)
