-- Counts one arriving login attempt and decides on it in one atomic step (issue 8, point 4: counting
-- after the password check let concurrent guesses all through). Fixed windows: the first attempt
-- opens a key's window. Counting stops at the first count past its limit (see AttemptCount in
-- src/accounts/login-throttle.ts): a refused attempt makes no pair or username key.
-- KEYS[1] address counter   KEYS[2] (username, address) counter   KEYS[3] username counter
-- ARGV[1] window length in ms   ARGV[2] address limit   ARGV[3] pair limit
-- Returns {count, ms left} for each key counted, in that order (2, 4 or 6 numbers).
local window = tonumber(ARGV[1])
local function count(key)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  -- A count without a window (a new key, or one left so by anything else) would never drop.
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return n, ttl
end
local a, aTtl = count(KEYS[1])
if a > tonumber(ARGV[2]) then return { a, aTtl } end
local p, pTtl = count(KEYS[2])
if p > tonumber(ARGV[3]) then return { a, aTtl, p, pTtl } end
local u, uTtl = count(KEYS[3])
return { a, aTtl, p, pTtl, u, uTtl }
