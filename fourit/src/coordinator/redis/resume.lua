-- Translates the rule book's resume: coordinator/rules/pause.rs (`resume`).
-- Resumes a paused job from its next tick, recording how many ticks the pause decided.
-- KEYS[1] ns:{job}, KEYS[2] ns:{job}:runs; ARGV: who, history cap
-- Returns {0} if the job was not paused, else {1, by, note, since (ms), ticks, first, last}.
local p = redis.call('HMGET', KEYS[1], 'paused', 'paused_by', 'paused_note', 'paused_at',
  'paused_ticks', 'paused_first', 'paused_last')
if p[1] ~= '1' then
  return {0}
end
redis.call('HSET', KEYS[1], 'paused', '')
local ticks = tonumber(p[5]) or 0
if ticks > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'tick', p[7], 'node', ARGV[1],
    'outcome', 'resumed',
    'detail', ticks .. ' ticks paused, ' .. p[6] .. ' to ' .. p[7] .. ' (ms); paused by ' ..
      (p[2] or '') .. ', resumed by ' .. ARGV[1])
end
return {1, p[2] or '', p[3] or '', p[4] or '0', tostring(ticks), p[6] or '', p[7] or ''}
