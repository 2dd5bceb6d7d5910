-- Tollgate quotas, atomically, on the Redis server's clock: first the endings of earlier
-- requests (token corrections, slot releases and returned leases, batched), then one admission,
-- which may also lease spare quota to the calling replica.
-- KEYS: F corrected buckets, R released slot sets, N checked buckets, M acquired slot sets.
-- ARGV: F, R, N, M, member, lease_ms, now_ms ("" = the server clock; a number only in tests),
--       prefix (names of leased slots: prefix..1, prefix..2, ...),
--       then F x (capacity, per_minute, delta), R x member, N x (capacity, per_minute, cost, want),
--       M x (max, want).
-- Levels are in units of 1/60000 token (see tollgate_domain::quota), integers below 2^53,
-- stored with %.0f so no digit is lost. A bucket is one string, "level:at", written with its
-- expiry in the same SET (one call instead of HSET + PEXPIRE). A slot set holds one member per
-- request (or per leased slot), scored by its lease's end; live leases are counted with ZCOUNT,
-- and expired members (left by crashed replicas) are removed only when a set is full. A
-- correction's positive delta takes, a negative one gives back. The admission is
-- all-or-nothing: a refused request changes nothing and is granted nothing (the corrections
-- before it still apply). With N = M = 0 the script only applies the endings.
-- Leases (tollgate_domain::quota::Limit::grant): after an admission, up to `want` whole tokens
-- of a bucket are granted, but only what lies above half of it; up to `want` slots of a set,
-- but only while the set stays at most half full.
-- Returns {admitted, refusing index (1-based, buckets then slots), retry_ms (-1 = never),
--          then per checked bucket: remaining whole tokens, ms until full, tokens granted,
--          then per slot set: slots granted}.
local now = tonumber(ARGV[7])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local f = tonumber(ARGV[1])
local r = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local member = ARGV[5]
local lease = tonumber(ARGV[6])
local U = 60000
local prefix = ARGV[8]
local a = 8

-- A bucket's level now: {level, at, full}.
local function refill(key, cap, rate)
  local full = cap * U
  local level = full
  local at = now
  local st = redis.call('GET', key)
  if st then
    local l, t = string.match(st, '^(%d+):(%d+)$')
    level = tonumber(l) or full
    at = tonumber(t) or now
    local elapsed = now - at
    if elapsed < 0 then elapsed = 0 end
    level = math.min(full, level + elapsed * rate)
    if now > at then at = now end
  end
  return level, at, full
end

local function store(key, level, at, full, rate)
  redis.call('SET', key, string.format('%.0f:%.0f', level, at),
    'PX', math.ceil((full - level) / rate) + 1000)
end

for i = 1, f do
  local cap = tonumber(ARGV[a + 1])
  local rate = tonumber(ARGV[a + 2])
  local delta = tonumber(ARGV[a + 3])
  a = a + 3
  local level, at, full = refill(KEYS[i], cap, rate)
  level = math.max(0, math.min(full, level - delta * U))
  store(KEYS[i], level, at, full, rate)
end
for j = 1, r do
  redis.call('ZREM', KEYS[f + j], ARGV[a + j])
end
a = a + r

local k = f + r
local out = {1, 0, 0}
if n + m == 0 then return out end
local new = {}
for i = 1, n do
  local cap = tonumber(ARGV[a + 1])
  local rate = tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local want = tonumber(ARGV[a + 4])
  a = a + 4
  local level, at, full = refill(KEYS[k + i], cap, rate)
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
  new[i] = {left, at, full, rate, want}
end
local live = {}
if out[1] == 1 then
  for j = 1, m do
    local key = KEYS[k + n + j]
    local max = tonumber(ARGV[a + 2 * j - 1])
    live[j] = redis.call('ZCOUNT', key, string.format('(%.0f', now), '+inf')
    if live[j] >= max then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      out[1] = 0
      out[2] = n + j
      out[3] = 1000
      break
    end
  end
end
for i = 1, n do
  local left, at, full, rate, want = new[i][1], new[i][2], new[i][3], new[i][4], new[i][5]
  local granted = 0
  if out[1] == 1 then
    local spare = left - full / 2
    if want > 0 and spare >= U then
      granted = math.min(want, math.floor(spare / U))
      left = left - granted * U
    end
    store(KEYS[k + i], left, at, full, rate)
  end
  table.insert(out, math.floor(left / U))
  table.insert(out, math.ceil((full - left) / rate))
  table.insert(out, granted)
end
for j = 1, m do
  local granted = 0
  if out[1] == 1 then
    local key = KEYS[k + n + j]
    local max = tonumber(ARGV[a + 2 * j - 1])
    local want = tonumber(ARGV[a + 2 * j])
    granted = math.min(want, math.floor(max / 2) - live[j] - 1)
    local add = {now + lease, member}
    if granted > 0 then
      for g = 1, granted do
        table.insert(add, now + lease)
        table.insert(add, prefix .. g)
      end
    else
      granted = 0
    end
    redis.call('ZADD', key, unpack(add))
    redis.call('PEXPIRE', key, lease)
  end
  table.insert(out, granted)
end
return out
