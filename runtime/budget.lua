-- A tenant's count for one UTC day against its daily budget (runtime/budget.py, RedisLedger).
-- KEYS[1]: a hash with `tokens` and `cost` (whole units of 1e-8 USD): what its calls used plus
--          what calls in flight have reserved.
-- ARGV: mode ('take' or 'give'), tokens, cost, ttl_s; for 'take' also the token and cost limits
--       (-1: none) and the floor's tokens and cost (the count is raised to the floor first).
-- 'take' adds tokens and cost only while the count is under every limit; it returns 0 (taken),
-- 1 (the token limit is reached) or 2 (the cost limit is). 'give' adds them (negative: gives
-- back) and returns 0.
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or 0)
local cost = tonumber(redis.call('HGET', KEYS[1], 'cost') or 0)
if ARGV[1] == 'take' then
  tokens = math.max(tokens, tonumber(ARGV[7]))
  cost = math.max(cost, tonumber(ARGV[8]))
  local token_limit, cost_limit = tonumber(ARGV[5]), tonumber(ARGV[6])
  if token_limit >= 0 and tokens >= token_limit then
    return 1
  end
  if cost_limit >= 0 and cost >= cost_limit then
    return 2
  end
end
redis.call('HSET', KEYS[1], 'tokens', tokens + tonumber(ARGV[2]), 'cost', cost + tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 0
