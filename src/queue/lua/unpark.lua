-- unpark: let the envelopes parked for one circuit come back, once the circuit lets requests
-- through again (worker/maintenance.rs decides when).
-- KEYS[1] the circuit's parked zset   KEYS[2] parked index set   KEYS[3] parked-ready set
-- KEYS[4] queue list
-- ARGV[1] the circuit   ARGV[2] 'closed' or 'probe'   ARGV[3] most envelopes moved at once
-- 'closed': the circuit joins the ready set, so reserve hands out its envelopes before the
--   list's, oldest first. One of them alone on the list would wait there behind the others.
--   But when the list is empty (its tasks may be blocked on it, and would find the ready set
--   only when their wait times out, worker.block_timeout) and the circuit holds at most
--   ARGV[3] envelopes, all of them go onto the list instead, oldest at its head: that wakes a
--   blocked task, and nothing is ahead of them. A larger backlog is not moved (it would hold
--   Redis up); as reserve drains it below ARGV[3], the rest goes onto the list the same way.
-- 'probe' (half-open): when the list is empty, the oldest goes onto its head, to carry the one
--   probe request (and wake a blocked task); the rest stay parked until the probe's answer
--   closes the circuit. A list with envelopes in it will carry the probe itself.
-- Returns the number of envelopes moved onto the list.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  return 0
end
if ARGV[2] == 'closed' then
  if redis.call('LLEN', KEYS[4]) == 0 and redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[3]) then
    local all = redis.call('ZRANGE', KEYS[1], 0, -1)
    redis.call('LPUSH', KEYS[4], unpack(all))
    redis.call('DEL', KEYS[1])
    redis.call('SREM', KEYS[2], ARGV[1])
    redis.call('SREM', KEYS[3], ARGV[1])
    return #all
  end
  redis.call('SADD', KEYS[3], ARGV[1])
  return 0
end
if redis.call('LLEN', KEYS[4]) > 0 then
  return 0
end
local popped = redis.call('ZPOPMIN', KEYS[1], 1)
redis.call('RPUSH', KEYS[4], popped[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 1
