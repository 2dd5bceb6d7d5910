-- Corrects a bucket by DELTA tokens (positive takes, negative gives back), on the server clock.
-- KEYS[1]: the bucket. ARGV: capacity, per_minute, delta.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local U = 60000
local full = cap * U
local level = full
local at = now
local st = redis.call('HMGET', KEYS[1], 'l', 't')
if st[1] then
  level = tonumber(st[1])
  at = tonumber(st[2])
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = math.min(full, level + elapsed * rate)
  if now > at then at = now end
end
level = math.max(0, math.min(full, level - delta * U))
redis.call('HSET', KEYS[1], 'l', string.format('%.0f', level), 't', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((full - level) / rate) + 1000)
return math.floor(level / U)
