-- Marks a node alive at Redis's own time, forgets nodes silent for too long, and answers the
-- time, the membership's version and, only when the caller's copy is out of date, the members.
-- KEYS[1] ns:nodes (sorted set: node -> last heartbeat, ms)
-- KEYS[2] ns:nodes:version{ns:nodes} (string: the membership's version; same slot as KEYS[1])
-- KEYS[3] ns:nodes:manual{ns:nodes} (sorted set: the manual runs waiting for a member)
-- ARGV: node, forget after (ms), the version the caller knows ("" for none)
-- Returns {time (µs, as text), version, manual runs waiting, member, member, ...}: the
-- members only when the
-- version differs from the caller's, so a steady fleet's heartbeat costs the same at any size.
local now = redis.call('TIME')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local changed = redis.call('ZADD', KEYS[1], ms, ARGV[1])
changed = changed + redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', ms - tonumber(ARGV[2])))
local version = redis.call('GET', KEYS[2])
if changed > 0 or not version then
  -- A version never handed out before, even after Redis lost its data: Redis's time (µs),
  -- above the previous version.
  local fresh = us
  if version and tonumber(version) and tonumber(version) >= fresh then
    fresh = tonumber(version) + 1
  end
  version = string.format('%.0f', fresh)
  redis.call('SET', KEYS[2], version)
end
local reply = {string.format('%.0f', us), version, tostring(redis.call('ZCARD', KEYS[3]))}
if version ~= ARGV[3] then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  for i = 1, #members do
    reply[i + 3] = members[i]
  end
end
return reply
