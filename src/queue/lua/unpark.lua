-- unpark: let the envelopes parked for one circuit come back, once the circuit lets requests
-- through again (worker/maintenance.rs decides when).
-- KEYS[1] the circuit's parked zset   KEYS[2] parked index set   KEYS[3] parked-ready set
-- KEYS[4] queue list
-- ARGV[1] the circuit   ARGV[2] 'closed' or 'probe'
-- 'closed': the circuit joins the ready set, so reserve hands out its envelopes before the
--   list's, oldest first. Nothing goes onto the list: there it would wait behind them. A task
--   blocked on an empty queue finds them when its wait times out (worker.block_timeout).
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
