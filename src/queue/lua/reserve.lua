-- reserve: move up to N envelopes from the head of the queue (its right end) into a processing list.
-- KEYS[1] queue list (producers LPUSH, herald takes from the right: FIFO)
-- KEYS[2] processing list of one worker task
-- KEYS[3] parked-ready set (keys.rs parked_ready)   KEYS[4] parked index set
-- ARGV[1] N, the most envelopes to take
-- ARGV[2] prefix of the parked zsets (keys.rs parked_prefix, this slot)
-- Returns the envelopes taken, newest first (the order LRANGE gives).
--
-- Envelopes parked for a circuit seen closed come first, oldest first: they were taken from
-- the queue before anything still in it, so the backlog of an outage drains in order of age.
-- The processing list stays a slice of the queue in queue order, so returning it to the queue
-- (requeue.lua) is one RPUSH that restores the original order.
--
-- A task's processing list is empty between batches. If it is not, an earlier reserve (or
-- BLMOVE) ran but its reply never reached the worker (connection lost, Redis restarted): hand
-- that batch back instead of adding to it, or the next settle would delete it unseen.
local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held > 0 then
  return held
end
local n = tonumber(ARGV[1])
local circuit = redis.call('SRANDMEMBER', KEYS[3])
while circuit do
  local parked = ARGV[2] .. circuit
  local popped = redis.call('ZPOPMIN', parked, n)
  if redis.call('EXISTS', parked) == 0 then
    redis.call('SREM', KEYS[3], circuit)
    redis.call('SREM', KEYS[4], circuit)
  end
  if #popped > 0 then
    local oldest_first, newest_first = {}, {}
    for i = 1, #popped, 2 do
      oldest_first[#oldest_first + 1] = popped[i]
    end
    for i = #oldest_first, 1, -1 do
      newest_first[#newest_first + 1] = oldest_first[i]
    end
    redis.call('LPUSH', KEYS[2], unpack(oldest_first))
    return newest_first
  end
  circuit = redis.call('SRANDMEMBER', KEYS[3])
end
local items = redis.call('LRANGE', KEYS[1], -n, -1)
if #items == 0 then
  return items
end
redis.call('LTRIM', KEYS[1], 0, -n - 1)
local oldest_first = {}
for i = #items, 1, -1 do
  oldest_first[#oldest_first + 1] = items[i]
end
redis.call('LPUSH', KEYS[2], unpack(oldest_first))
return items
