-- Translates the rule book's keep-alive: coordinator/rules/lease.rs (`keep_alive`).
-- Extends a lease, only if it still holds this run's id.
-- KEYS[1] the lease; ARGV: run id, TTL (ms). Returns 1 if extended, 0 if the lease is not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
