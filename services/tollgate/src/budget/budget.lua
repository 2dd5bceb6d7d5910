-- Spend holds on Redis, atomic, on the server's clock. One script, three operations.
--
-- A meter is a hash: `u` = spend known when the meter was loaded from the store (the ledger),
-- `d` = spend settled since, `h` = open holds. A hold fits a meter when
-- u + d + h + amount <= limit (the limit comes with each call, from the key's settings).
-- A meter without `u` must be loaded first: `hold` answers {2, indexes} and the caller loads
-- them (`init`, HSETNX so the first loader wins) and calls again. Every race this leaves can only
-- count spend twice (refusing early), never miss it.
--
-- KEYS: the n meters, then the hold record, then the zset of open holds by deadline.
-- hold:   ARGV = 'hold', id, amount, ttl_ms, limit_1 .. limit_n
--         -> {1} held | {0, i, headroom} meter i refuses | {2, i...} meters to load first
-- settle: ARGV = 'settle', id, amount, charged   (charged = 0: void)  -> {1} | {0} hold was gone
-- init:   ARGV = 'init', value_1, ttl_ms_1, .. value_n, ttl_ms_n (ttl 0: none)  -> {1}
local op = ARGV[1]
local n = #KEYS - 2
local hold_key, holds = KEYS[n + 1], KEYS[n + 2]

if op == 'init' then
  for i = 1, n do
    if redis.call('HSETNX', KEYS[i], 'u', ARGV[2 * i]) == 1 then
      local ttl = tonumber(ARGV[2 * i + 1])
      if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
    end
  end
  return {1}
end

local function release(record)
  -- record: "amount meter meter ..."
  local amount = nil
  for word in string.gmatch(record, '%S+') do
    if amount == nil then
      amount = tonumber(word)
    elseif amount ~= 0 then
      redis.call('HINCRBY', word, 'h', -amount)
    end
  end
end

if op == 'settle' then
  local id, amount, charged = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local existed = redis.call('DEL', hold_key)
  redis.call('ZREM', holds, id)
  for i = 1, n do
    if existed == 1 and amount ~= 0 then redis.call('HINCRBY', KEYS[i], 'h', -amount) end
    if charged > 0 then redis.call('HINCRBY', KEYS[i], 'd', charged) end
  end
  return {existed}
end

-- hold
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Holds a crashed replica left behind: release a few per call.
local due = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 8)
for _, old in ipairs(due) do
  local key = 'tg:b:h:' .. old
  local record = redis.call('GET', key)
  if record then release(record) end
  redis.call('DEL', key)
  redis.call('ZREM', holds, old)
end

local id, amount, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local missing = {2}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[i], 'u') == 0 then missing[#missing + 1] = i end
end
if #missing > 1 then return missing end
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 'u', 'd', 'h')
  local spent = tonumber(v[1]) + tonumber(v[2] or '0') + tonumber(v[3] or '0')
  local limit = tonumber(ARGV[4 + i])
  if spent + amount > limit then
    return {0, i, limit - spent}
  end
end
local record = ARGV[3]
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'h', amount)
  record = record .. ' ' .. KEYS[i]
end
redis.call('SET', hold_key, record, 'PX', ttl + 60000)
redis.call('ZADD', holds, now + ttl, id)
return {1}
