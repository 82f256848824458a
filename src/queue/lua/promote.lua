-- promote: move delayed envelopes that are due onto the back of their queue.
-- KEYS[1] delayed zset   KEYS[2] queue list
-- ARGV[1] now (ms)       ARGV[2] the most envelopes to move in one call
-- Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then
  return 0
end
redis.call('ZREM', KEYS[1], unpack(due))
-- Earliest due first: LPUSH puts the last argument furthest from the head.
redis.call('LPUSH', KEYS[2], unpack(due))
return #due
