-- The waiting jobs of many pools, summed (jobs/queues.ts waitingTotal). KEYS: each pool's `wait` list, then its
-- `prioritized` and `delayed` sorted sets, in that order. Each call is O(1) per pool: a batch of 250 pools holds
-- Redis for about half a millisecond.
local total = 0
for i = 1, #KEYS, 3 do
  total = total + redis.call("LLEN", KEYS[i]) + redis.call("ZCARD", KEYS[i + 1]) + redis.call("ZCARD", KEYS[i + 2])
end
return total
