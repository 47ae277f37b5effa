-- Takes a running slot of a tenant (jobs/tenant-running-slots.ts).
-- KEYS[1] its running tasks, KEYS[2] the limit; ARGV task id, slot ttl (ms).
-- 1 when taken (or already held: a renewal, or the same task again), 0 when the tenant is at its limit. Without a
-- limit every task gets a slot and nothing is stored. Slots whose worker stopped renewing them lapse first.
local limit = tonumber(redis.call("GET", KEYS[2]) or "")
if not limit then return 1 end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
if redis.call("ZSCORE", KEYS[1], ARGV[1]) or redis.call("ZCARD", KEYS[1]) < limit then
  redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
return 0
