-- retry_failed: put dead letters back on their queue, each once.
-- KEYS[1] failed hash   KEYS[2] failed index zset   KEYS[3] queue list
-- ARGV    pairs: dead-letter id, the envelope to push (oldest first: the first pair is
--         consumed first)
-- Returns one integer per pair: 1 when pushed, 0 when that dead letter was already gone
-- (retried or forgotten by someone else meanwhile), so two concurrent retries never push one
-- twice.
local out = {}
for i = 1, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('LPUSH', KEYS[3], ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
