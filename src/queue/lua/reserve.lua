-- reserve: move up to N envelopes from the head of the queue (its right end) into a processing list.
-- KEYS[1] queue list (producers LPUSH, herald takes from the right: FIFO)
-- KEYS[2] processing list of one worker task
-- ARGV[1] N, the most envelopes to take
-- Returns the envelopes taken, newest first (the order LRANGE gives).
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
