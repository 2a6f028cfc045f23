-- Translates the rule book's claim: coordinator/rules/claim.rs (`claim`, with `resend`), its
-- texts from rules/texts.rs; the missed ticks (rules/missed.rs) are recorded by the caller.
-- Claims one tick of one job. Atomic: the whole script runs as one Redis command.
-- KEYS[1] ns:{job}        hash: tick (high-water mark), fence, node, claim (the winning claim's
--                         id, until its release), started, finished, outcome, error
-- KEYS[2] ns:{job}:lease  run id (node:fence:tick) of the run in progress, with a TTL
-- KEYS[3] ns:{job}:runs   capped stream of finished and skipped ticks
-- KEYS[4] ns:{job}:lease:<tick>  with overlap allowed, this run's own lease (every key the
--                         script touches is declared, as Redis Cluster asks)
-- ARGV: tick (ms), node id, lease TTL (ms), "1" if overlap is allowed, history cap,
--       preferred node ("" for none), handoff (ms), how far ahead of Redis's clock a tick may
--       be (ms), the claim's id, the schedule's tick before this one ("" if unknown), and,
--       only when others may be waiting out the handoff, the notice channel and the job name
-- Returns {1, fence} to run, {0} if the tick (or a later one) is already claimed,
-- {2, holder} if the previous run still holds the lease (the tick is skipped as an overlap),
-- {3, at, now} if the claimer is not the preferred node and must wait until `at` (ms),
-- {4, now} if the tick is still in Redis's future: retry at the tick. `now` is Redis's time (ms).
-- {5, fence} if this very claim (same id) had already won the tick: the answer to a claim
-- sent again after its first answer was lost.
-- {6} if the job is paused (hash field `paused` = 1): the tick is decided as paused, run by
-- no one; the pause counts it, and its first paused tick goes to history.
-- Replies 1, 2 and 6 end with the old high-water mark when it is older than the schedule's
-- previous tick: the ticks in between were never decided (missed); the caller records them.
local tick = tonumber(ARGV[1])
-- A decided tick's reply, with the old mark when it skipped scheduled ticks.
local function decided(reply, mark)
  local previous = tonumber(ARGV[10])
  if mark and previous and tonumber(mark) < previous then
    table.insert(reply, mark)
  end
  return reply
end

local state = redis.call('HMGET', KEYS[1], 'tick', 'fence', 'claim', 'paused', 'paused_ticks')
if state[1] and tonumber(state[1]) >= tick then
  -- This very claim sent again, because its answer was lost (a cut connection, a timeout):
  -- the same run with the same fence. Its lease is taken again if it expired meanwhile: no
  -- other claim of this tick can have been admitted.
  if tonumber(state[1]) == tick and state[3] == ARGV[9] and state[2] then
    local lease = KEYS[2]
    if ARGV[4] == '1' then
      lease = KEYS[4]
    end
    local run_id = ARGV[2] .. ':' .. state[2] .. ':' .. ARGV[1]
    local holder = redis.call('GET', lease)
    if holder == run_id or (not holder and redis.call('SET', lease, run_id, 'PX', ARGV[3], 'NX')) then
      return {5, tonumber(state[2])}
    end
  end
  return {0}
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- A tick in Redis's future is refused, whoever asks: a host whose clock runs or steps ahead
-- must never move the mark past Redis's present (the fleet's ticks in between would all be
-- refused as taken). Nothing is recorded.
if tick > now_ms + tonumber(ARGV[8]) then
  return {4, string.format('%.0f', now_ms)}
end
-- The preferred node has the tick to itself until tick + handoff, by Redis's clock.
if ARGV[6] ~= '' and ARGV[6] ~= ARGV[2] then
  local open_at = tick + tonumber(ARGV[7])
  if now_ms < open_at then
    return {3, string.format('%.0f', open_at), string.format('%.0f', now_ms)}
  end
end

-- A paused job: the tick is decided, as paused (the preferred member decides it, as a run).
if state[4] == '1' then
  local count = (tonumber(state[5]) or 0) + 1
  redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'paused_ticks', count, 'paused_last', ARGV[1])
  if count == 1 then
    local meta = redis.call('HMGET', KEYS[1], 'paused_by', 'paused_note')
    local detail = 'paused by ' .. (meta[1] or '')
    if meta[2] and meta[2] ~= '' then
      detail = detail .. ': ' .. meta[2]
    end
    redis.call('HSET', KEYS[1], 'paused_first', ARGV[1])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
      'tick', ARGV[1], 'node', ARGV[2], 'outcome', 'paused', 'detail', detail)
  end
  if ARGV[11] then
    redis.pcall('PUBLISH', ARGV[11], ARGV[1] .. ' ' .. ARGV[12])
  end
  return decided({6}, state[1])
end

local fence = (tonumber(state[2]) or 0) + 1
-- The tick in the run id keeps it unique even when a Redis restart without persistence
-- resets the fence counter.
local run_id = ARGV[2] .. ':' .. fence .. ':' .. ARGV[1]
if ARGV[4] == '1' then
  -- A job that allows overlap gives each run a lease of its own, under the same hash tag.
  redis.call('SET', KEYS[4], run_id, 'PX', ARGV[3])
elseif not redis.call('SET', KEYS[2], run_id, 'PX', ARGV[3], 'NX') then
  -- The previous run still holds the lease: the tick is decided, as skipped.
  local holder = redis.call('GET', KEYS[2])
  redis.call('HSET', KEYS[1], 'tick', ARGV[1])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
    'tick', ARGV[1], 'node', ARGV[2], 'outcome', 'overlap', 'detail', holder)
  -- Tell the members waiting out the handoff that this tick is decided, so they need not
  -- claim it. Best effort (pcall): a refused or lost notice only costs them a refused claim.
  if ARGV[11] then
    redis.pcall('PUBLISH', ARGV[11], ARGV[1] .. ' ' .. ARGV[12])
  end
  return decided({2, holder}, state[1])
end
-- One write for the high-water mark, the fence and the new run; the last run's end is cleared.
redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'fence', fence, 'node', ARGV[2], 'claim', ARGV[9],
  'started', string.format('%.0f', now_ms), 'outcome', 'running', 'finished', '', 'error', '')
if ARGV[11] then
  redis.pcall('PUBLISH', ARGV[11], ARGV[1] .. ' ' .. ARGV[12])
end
return decided({1, fence}, state[1])
