-- Marks this instance live for another ttl and forgets dead ones (limits/tenant-connections.ts).
-- KEYS[1] the live instances; ARGV instance, ttl (ms).
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call("PEXPIRE", KEYS[1], ARGV[2])
