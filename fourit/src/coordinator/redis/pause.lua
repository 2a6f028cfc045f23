-- Translates the rule book's pause: coordinator/rules/pause.rs (`pause`).
-- Pauses a job fleet-wide: its ticks are decided as paused by the claim script until resumed.
-- KEYS[1] ns:{job}; ARGV: who, note ("" for none)
-- Pausing a paused job replaces who and why and keeps its count. Returns 1.
local now = redis.call('TIME')
local ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
if redis.call('HGET', KEYS[1], 'paused') ~= '1' then
  redis.call('HSET', KEYS[1], 'paused_ticks', 0, 'paused_first', '', 'paused_last', '')
end
redis.call('HSET', KEYS[1], 'paused', '1', 'paused_by', ARGV[1], 'paused_note', ARGV[2],
  'paused_at', ms)
return 1
