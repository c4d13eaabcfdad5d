-- Take weights from GCRA token buckets, all or nothing, on Redis's own clock (runtime/ratelimit.py).
-- KEYS[i]: one bucket each; its value is the theoretical arrival time (TAT) in microseconds.
-- ARGV: max_wait_us (-1: no bound), force (1: settle, never refuse), then per key:
--       emission_us (microseconds per unit), tolerance_us (burst * emission_us), weight.
-- Returns {granted, wait_us, index, now_us}: granted 1 / 0 (slot too far) / -1 (weight > burst);
-- index (1-based) is the key that set the wait or can never hold the weight, 0 if none;
-- now_us is Redis's clock when it decided (a granted slot is at now_us + wait_us).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local force = ARGV[2] == '1'
local wait, blocking, tats = 0, 0, {}
for i = 1, #KEYS do
  local emission = tonumber(ARGV[3 * i])
  local tolerance = tonumber(ARGV[3 * i + 1])
  local weight = tonumber(ARGV[3 * i + 2])
  if not force and weight * emission > tolerance + 0.5 then
    return {-1, 0, i, now}
  end
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  local new_tat = math.max(tat + weight * emission, now)
  local needed = new_tat - tolerance - now
  if needed > wait then
    wait, blocking = needed, i
  end
  tats[i] = new_tat
end
if not force and max_wait >= 0 and wait > max_wait then
  return {0, math.ceil(wait), blocking, now}
end
for i = 1, #KEYS do
  local ttl = math.floor((tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], math.floor(tats[i] + 0.5), 'PX', ttl)
end
return {1, math.ceil(wait), blocking, now}
