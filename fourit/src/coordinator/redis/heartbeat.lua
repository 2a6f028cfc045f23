-- Marks a node alive at Redis's own time, forgets nodes silent for too long, and answers the
-- time and the live members.
-- KEYS[1] ns:nodes (sorted set: node -> last heartbeat, ms); ARGV: node, forget after (ms)
-- Returns {time (µs, as text), member, member, ...}.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', ms - tonumber(ARGV[2])))
local reply = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(reply, 1, string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2])))
return reply
