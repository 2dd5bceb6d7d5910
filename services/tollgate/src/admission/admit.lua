-- Tollgate admission, atomically, on the Redis server's clock.
-- KEYS: N bucket hashes, then M concurrency sorted sets.
-- ARGV: N, M, member, lease_ms, now_ms ("" = the server clock; a number only in tests),
--       then N x (capacity, per_minute, cost), then M x max.
-- Levels are in units of 1/60000 token (see tollgate_domain::quota), integers below 2^53,
-- stored with %.0f so no digit is lost. All-or-nothing: a refused request changes nothing.
-- Returns {admitted, refusing index (1-based, buckets then slots), retry_ms (-1 = never),
--          then per bucket: remaining whole tokens, ms until full}.
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local member = ARGV[3]
local lease = tonumber(ARGV[4])
local U = 60000
local out = {1, 0, 0}
local new = {}
for i = 1, n do
  local base = 5 + (i - 1) * 3
  local cap = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local full = cap * U
  local level = full
  local at = now
  local st = redis.call('HMGET', KEYS[i], 'l', 't')
  if st[1] then
    level = tonumber(st[1])
    at = tonumber(st[2])
    local elapsed = now - at
    if elapsed < 0 then elapsed = 0 end
    level = math.min(full, level + elapsed * rate)
    if now > at then at = now end
  end
  local need = cost * U
  local left = level
  if need <= level then
    left = level - need
  else
    local retry = -1
    if need <= full then retry = math.ceil((need - level) / rate) end
    if out[1] == 1 or out[3] ~= -1 and (retry == -1 or retry > out[3]) then
      out[1] = 0
      out[2] = i
      out[3] = retry
    end
  end
  new[i] = {left, at, full, rate}
  table.insert(out, math.floor(left / U))
  table.insert(out, math.ceil((full - left) / rate))
end
if out[1] == 1 then
  for j = 1, m do
    local key = KEYS[n + j]
    local max = tonumber(ARGV[5 + n * 3 + j])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= max then
      out[1] = 0
      out[2] = n + j
      out[3] = 1000
      break
    end
  end
end
if out[1] == 1 then
  for i = 1, n do
    redis.call('HSET', KEYS[i], 'l', string.format('%.0f', new[i][1]), 't', string.format('%.0f', new[i][2]))
    redis.call('PEXPIRE', KEYS[i], math.ceil((new[i][3] - new[i][1]) / new[i][4]) + 1000)
  end
  for j = 1, m do
    redis.call('ZADD', KEYS[n + j], now + lease, member)
    redis.call('PEXPIRE', KEYS[n + j], lease)
  end
end
return out
