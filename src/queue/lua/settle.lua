-- settle: acknowledge one reserved batch, atomically with its retries and dead letters.
-- KEYS[1] processing list holding the batch
-- KEYS[2] delayed zset       KEYS[3] failed hash       KEYS[4] failed index zset
-- KEYS[5] activity hash of the current minute (queue/activity.rs)
-- KEYS[6] parked index set   KEYS[7] parked-ready set (keys.rs parked_index, parked_ready)
-- ARGV[1] cap on dead letters kept (0 = no cap)
-- ARGV[2] prefix of the Pusher delivery records (keys.rs pusher_sent_prefix, this slot): an
--         evicted dead letter's record goes with it
-- ARGV[3] prefix of the parked zsets (keys.rs parked_prefix, this slot)
-- ARGV[4] R, then R pairs:   due (ms), envelope to retry
-- then    P, then P triples: circuit, age stamp (ms), envelope parked until the circuit closes;
--         the circuit leaves the ready set, so reserve stops handing out what it would defer
-- then    D, then D triples: dead-letter id, dead-letter entry (JSON), its failed_at (ms): the
--         index is scored by the entry's own time, so newest-first is failed_at order even when
--         batches decided in one order settle in another
-- then    S, envelopes settled (0: count nothing, and nothing follows)
-- then    the activity hash's TTL (ms), F, then F pairs: field, increment
-- Returns the number of dead letters evicted by the cap, or -1 when the processing list is
-- gone: a reaper already returned the batch to the queue (this process was presumed dead), so
-- the batch will be redelivered and nothing here may be applied twice.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local i = 4
local r = tonumber(ARGV[i]); i = i + 1
if r > 0 then
  local zadd = {}
  for _ = 1, r do
    zadd[#zadd + 1] = ARGV[i]
    zadd[#zadd + 1] = ARGV[i + 1]
    i = i + 2
  end
  redis.call('ZADD', KEYS[2], unpack(zadd))
end
local p = tonumber(ARGV[i]); i = i + 1
for _ = 1, p do
  redis.call('ZADD', ARGV[3] .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
  redis.call('SADD', KEYS[6], ARGV[i])
  redis.call('SREM', KEYS[7], ARGV[i])
  i = i + 3
end
local d = tonumber(ARGV[i]); i = i + 1
for _ = 1, d do
  local id = ARGV[i]
  local field = id
  local k = 1
  -- Two dead letters of one envelope id (or two producers reusing an id) must both be kept.
  while redis.call('HEXISTS', KEYS[3], field) == 1 do
    k = k + 1
    field = id .. '#' .. k
  end
  redis.call('HSET', KEYS[3], field, ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 2], field)
  i = i + 3
end
local evicted = 0
local cap = tonumber(ARGV[1])
if d > 0 and cap > 0 then
  -- At most 1000 per call (unpack's limit); a lowered cap is reached over the next settles.
  local over = math.min(redis.call('ZCARD', KEYS[4]) - cap, 1000)
  if over > 0 then
    local old = redis.call('ZRANGE', KEYS[4], 0, over - 1)
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1)
    for _, field in ipairs(old) do
      -- A repeated id's dead letter is field id#k; its record is the id's.
      redis.call('DEL', ARGV[2] .. (string.match(field, '^(.*)#%d+$') or field))
    end
    evicted = over
  end
end
local settled = tonumber(ARGV[i]); i = i + 1
if settled > 0 then
  -- The minute's first settle creates the hash and is the one to give it its TTL.
  if redis.call('HINCRBY', KEYS[5], 'settled', settled) == settled then
    redis.call('PEXPIRE', KEYS[5], ARGV[i])
  end
  local f = tonumber(ARGV[i + 1]); i = i + 2
  for _ = 1, f do
    redis.call('HINCRBY', KEYS[5], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
redis.call('DEL', KEYS[1])
return evicted
