-- Translates the rule book's manual claim: coordinator/rules/manual.rs (`claim`).
-- Takes a manual run (fourit trigger) for one member, once fleet-wide.
-- KEYS[1] ns:{job}, KEYS[2] ns:{job}:lease, KEYS[3] ns:{job}:runs,
-- KEYS[4] ns:{job}:lease:m:<requested ms> (the run's own lease when forced or overlap is
-- allowed: apart from the scheduled runs' leases), KEYS[5] ns:{job}:manual (hash: request id -> "by\tms\tforce\tstate...")
-- ARGV: request id, node, lease TTL (ms), "1" if overlap is allowed, history cap
-- Returns {0} if another member took it (or it is gone), {2, holder} if skipped as an overlap,
-- {1, fence} to run it. The high-water mark does not move.
local record = redis.call('HGET', KEYS[5], ARGV[1])
if not record then
  return {0}
end
local by, ms, force, state = string.match(record, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)')
if state ~= 'pending' then
  return {0}
end
local base = by .. '\t' .. ms .. '\t' .. force .. '\t'
local own = ARGV[4] == '1' or force == '1'
if not own then
  local holder = redis.call('GET', KEYS[2])
  if holder then
    redis.call('HSET', KEYS[5], ARGV[1], base .. 'skipped\t' .. holder)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'tick', ms, 'node', ARGV[2],
      'outcome', 'overlap', 'detail', 'manual run asked by ' .. by .. ' skipped: ' .. holder)
    return {2, holder}
  end
end
local now = redis.call('TIME')
local now_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local fence = (tonumber(redis.call('HGET', KEYS[1], 'fence')) or 0) + 1
local run_id = ARGV[2] .. ':' .. fence .. ':' .. ms
local lease = KEYS[2]
if own then
  lease = KEYS[4]
end
redis.call('SET', lease, run_id, 'PX', ARGV[3])
-- The winning claim's id goes: a scheduled claim sent again can no longer resume (the
-- job's fence is this run's now).
redis.call('HSET', KEYS[1], 'fence', fence, 'node', ARGV[2], 'started', now_ms,
  'outcome', 'running', 'finished', '', 'error', '', 'claim', '')
redis.call('HSET', KEYS[5], ARGV[1], base .. 'started\t' .. ARGV[2] .. '\t' .. fence)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'tick', ms, 'node', ARGV[2],
  'outcome', 'manual', 'detail', 'asked by ' .. by, 'fence', fence)
return {1, fence}
