-- Admits one more connection of a tenant if the cluster-wide total stays within the limit (limits/tenant-connections.ts).
-- KEYS[1] the tenant's hash (instance -> count), KEYS[2] the live instances (instance -> valid until, ms).
-- ARGV: this instance, its count including the new connection, the limit, how long the instance stays live (ms).
-- A field counts only while its instance is live; the fields of dead instances are deleted on the way. The clock
-- is Redis's own, so the nodes' clocks do not matter. Returns { 1, total } when admitted (this instance's field is
-- then set to its count), { 0, the other instances' total } when not (nothing is written).
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call("ZADD", KEYS[2], now + ttl, ARGV[1])
redis.call("PEXPIRE", KEYS[2], ttl)
local others = 0
local fields = redis.call("HGETALL", KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] then
    local liveUntil = redis.call("ZSCORE", KEYS[2], fields[i])
    if liveUntil and tonumber(liveUntil) > now then
      others = others + tonumber(fields[i + 1])
    else
      redis.call("HDEL", KEYS[1], fields[i])
    end
  end
end
local mine = tonumber(ARGV[2])
if others + mine > tonumber(ARGV[3]) then return { 0, others } end
redis.call("HSET", KEYS[1], ARGV[1], mine)
redis.call("PEXPIRE", KEYS[1], ttl)
return { 1, others + mine }
