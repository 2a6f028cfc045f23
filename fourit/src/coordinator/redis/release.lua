-- Translates the rule book's release: coordinator/rules/lease.rs (`release`).
-- Ends a run: deletes its lease if it is still ours, and records the outcome.
-- KEYS[1] ns:{job}, KEYS[2] the lease, KEYS[3] ns:{job}:runs
-- ARGV: run id, tick (ms), node, fence, outcome, error text, duration (ms), history cap,
--       "1" if the outcome has an error text (which may itself be empty), start delay (ms)
-- Returns 1 if the lease was ours and is deleted, 0 if it had expired or been taken.
-- A release sent again after its answer was lost (the latest released run's, already
-- recorded: `released` holds its run id, even once a later run has started; a hash written
-- before `released` existed has its fence, node and a finish time) changes nothing and
-- answers 1.
-- Each key is read once.
local latest = redis.call('HMGET', KEYS[1], 'fence', 'node', 'finished', 'released')
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[1] and (latest[4] == ARGV[1] or (latest[1] == ARGV[4]
    and latest[2] == ARGV[3] and latest[3] and latest[3] ~= '')) then
  return 1
end
local held = 0
if holder == ARGV[1] then
  redis.call('DEL', KEYS[2])
  held = 1
end
-- The hash describes the latest run only: a stale run's outcome goes to history alone.
if latest[1] == ARGV[4] then
  local now = redis.call('TIME')
  local error_text = ''
  if ARGV[9] == '1' then
    error_text = ARGV[6]
  end
  -- The claim's id goes: the run is over, so a late resend of its claim must not resume it.
  redis.call('HSET', KEYS[1], 'finished', string.format('%.0f', now[1] * 1000 + math.floor(now[2] / 1000)),
    'outcome', ARGV[5], 'error', error_text, 'claim', '', 'released', ARGV[1])
end
local entry = {'tick', ARGV[2], 'node', ARGV[3], 'outcome', ARGV[5],
  'fence', ARGV[4], 'duration_ms', ARGV[7], 'delay_ms', ARGV[10]}
if ARGV[9] == '1' then
  table.insert(entry, 'detail')
  table.insert(entry, ARGV[6])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(entry))
return held
