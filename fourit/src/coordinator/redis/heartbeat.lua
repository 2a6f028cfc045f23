-- Translates the rule book's heartbeat: coordinator/rules/members.rs (`heartbeat`).
-- Marks a node alive at Redis's own time, forgets nodes silent for too long, and answers the
-- time, the membership's version and, only when the caller's copy is out of date, the members.
-- KEYS[1] ns:nodes (sorted set: node -> last heartbeat, ms)
-- KEYS[2] ns:nodes:version{ns:nodes} (string: the membership's version; same slot as KEYS[1])
-- KEYS[3] ns:nodes:manual{ns:nodes} (sorted set: the manual runs waiting for a member)
-- KEYS[4] ns:nodes:clocks{ns:nodes} (hash: node -> how far its clock runs ahead, µs)
-- ARGV: node, forget after (ms), the version the caller knows ("" for none), the node's
-- clock offset (µs; "" when it has not measured one)
-- Returns {time (µs, as text), version, manual runs waiting, how many were forgotten, each
-- forgotten member, member, member, ...}: the members only when the version differs from the
-- caller's, so a steady fleet's heartbeat costs the same at any size.
local now = redis.call('TIME')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local changed = redis.call('ZADD', KEYS[1], ms, ARGV[1])
local joined = changed == 1
-- Members silent for too long went away without leaving: forgotten, and named in the answer.
-- Oldest first, one at a time (ZRANGE and ZREM only: the minimal ACL's commands).
local cutoff = ms - tonumber(ARGV[2])
local silent = {}
while true do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #oldest == 0 or tonumber(oldest[2]) >= cutoff then
    break
  end
  redis.call('ZREM', KEYS[1], oldest[1])
  silent[#silent + 1] = oldest[1]
end
changed = changed + #silent
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
end
local version = redis.call('GET', KEYS[2])
if changed > 0 or not version then
  -- The membership changed: the offsets of members gone go too (rare, so it may cost).
  local clocks = redis.call('HGETALL', KEYS[4])
  if #clocks > 0 then
    local live = {}
    for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
      live[member] = true
    end
    redis.call('DEL', KEYS[4])
    for i = 1, #clocks, 2 do
      -- A member joining (again: it may have left) without an offset has none yet: one
      -- from before it left is not its current one.
      local stale_own = joined and ARGV[4] == '' and clocks[i] == ARGV[1]
      if live[clocks[i]] and not stale_own then
        redis.call('HSET', KEYS[4], clocks[i], clocks[i + 1])
      end
    end
  end
  -- A version never handed out before, even after Redis lost its data: Redis's time (µs),
  -- above the previous version.
  -- A leave left a token of its own in place of the version (`left-<random>`): the first
  -- version after it carries the token, so it differs from every version handed out before
  -- the leave even when Redis's clock has not moved since (or went back).
  local fresh = us
  local previous = version and tonumber(string.match(version, '^%d+'))
  if previous and previous >= fresh then
    fresh = previous + 1
  end
  if version and string.sub(version, 1, 5) == 'left-' then
    version = string.format('%.0f', fresh) .. ':' .. version
  else
    version = string.format('%.0f', fresh)
  end
  redis.call('SET', KEYS[2], version)
end
local reply = {string.format('%.0f', us), version, tostring(redis.call('ZCARD', KEYS[3])), tostring(#silent)}
for i = 1, #silent do
  reply[#reply + 1] = silent[i]
end
if version ~= ARGV[3] then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  for i = 1, #members do
    reply[#reply + 1] = members[i]
  end
end
return reply
