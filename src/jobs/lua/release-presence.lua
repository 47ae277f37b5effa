-- Shortens a worker's presence to the grace period, but only if it still belongs to the closing connection
-- (domains/pools/workers.ts). KEYS[1] the presence; ARGV the connection id, the grace period (ms).
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0
