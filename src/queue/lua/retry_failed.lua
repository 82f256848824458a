-- retry_failed: put a dead letter back on its queue, once.
-- KEYS[1] failed hash   KEYS[2] failed index zset   KEYS[3] queue list
-- ARGV[1] dead-letter id   ARGV[2] the envelope to push
-- Returns 1 when pushed, 0 when the dead letter was already gone (retried or forgotten by
-- someone else meanwhile), so two concurrent `herald failed retry` never push it twice.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1
