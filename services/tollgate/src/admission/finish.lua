-- Ends a request in one round trip: corrects token buckets by their deltas (positive takes,
-- negative gives back, on the server clock) and releases the request's concurrency slots.
-- KEYS: N buckets, then M slot sorted sets.
-- ARGV: N, M, member, now_ms ("" = the server clock; a number only in tests),
--       then N x (capacity, per_minute, delta).
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local member = ARGV[3]
local U = 60000
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local cap = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local delta = tonumber(ARGV[base + 3])
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
  level = math.max(0, math.min(full, level - delta * U))
  redis.call('HSET', KEYS[i], 'l', string.format('%.0f', level), 't', string.format('%.0f', at))
  redis.call('PEXPIRE', KEYS[i], math.ceil((full - level) / rate) + 1000)
end
for j = 1, m do
  redis.call('ZREM', KEYS[n + j], member)
end
return n + m
