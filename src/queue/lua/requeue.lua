-- requeue: return processing lists to the head of their queue and unregister them.
-- KEYS[1] queue list   KEYS[2] workers set   KEYS[3..] processing lists
-- ARGV[1] '1' when the owner died (count a redelivery in each envelope), '0' on a clean shutdown
-- ARGV[2] '1' to unregister the lists (their process is gone), '0' when their task carries on
--         and must stay visible to reapers
-- Returns the number of envelopes returned.
--
-- A redelivery is counted by raising the envelope's leading "attempts" member, which herald
-- always writes first when it re-encodes an envelope, or by inserting one. Anything that is not
-- a JSON object is returned untouched: decoding rejects it without running any delivery, so it
-- cannot be what killed the worker, and its bytes stay exactly as the producer sent them.
local function count_redelivery(item)
  local n, rest = string.match(item, '^{"attempts":(%d+)(.*)$')
  if n then
    return '{"attempts":' .. (tonumber(n) + 1) .. rest
  end
  local ok, decoded = pcall(cjson.decode, item)
  if not ok or type(decoded) ~= 'table' then
    return item
  end
  local lead, body = string.match(item, '^(%s*{%s*)(.*)$')
  if not lead then
    return item -- a JSON array
  end
  if string.sub(body, 1, 1) == '}' then
    return '{"attempts":1' .. body
  end
  return '{"attempts":1,' .. body
end

local moved = 0
local crashed = ARGV[1] == '1'
for k = 3, #KEYS do
  local items = redis.call('LRANGE', KEYS[k], 0, -1)
  local chunk = {}
  for j = 1, #items do
    if crashed then
      chunk[#chunk + 1] = count_redelivery(items[j])
    else
      chunk[#chunk + 1] = items[j]
    end
    if #chunk == 1000 then
      redis.call('RPUSH', KEYS[1], unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then
    redis.call('RPUSH', KEYS[1], unpack(chunk))
  end
  moved = moved + #items
  redis.call('DEL', KEYS[k])
  if ARGV[2] == '1' then
    redis.call('SREM', KEYS[2], KEYS[k])
  end
end
return moved
