-- budget: take `cost` Pusher messages from a connection's shared token bucket and daily quota.
-- KEYS[1] bucket hash (tokens, ts)      KEYS[2] today's quota counter
-- ARGV[1] now (ms)   ARGV[2] rate per second (0: no rate)   ARGV[3] burst (bucket size)
-- ARGV[4] cost       ARGV[5] daily quota (0: none)          ARGV[6] ms until the day ends (UTC)
-- Returns {granted 1|0, wait ms, tokens left, quota left (-1: none)}. A cost above the burst is
-- granted from a full bucket and leaves it in debt, so a large batch is never refused for ever.
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local quota = tonumber(ARGV[5])
local left = -1
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  left = quota - used
  if cost > left then
    return {0, tonumber(ARGV[6]), 0, left}
  end
end
local tokens = burst
if rate > 0 then
  local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  tokens = tonumber(h[1]) or burst
  local ts = tonumber(h[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  local need = math.min(cost, burst)
  if tokens < need then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
    redis.call('PEXPIRE', KEYS[1], 3600000)
    return {0, math.ceil((need - tokens) * 1000 / rate), math.floor(tokens), left}
  end
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
if quota > 0 then
  redis.call('INCRBY', KEYS[2], cost)
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]) + 3600000)
  left = left - cost
end
return {1, 0, math.floor(tokens), left}
