-- Counts one failed login for a key in a fixed window: the first failure opens the window.
-- KEYS[1] the counter   ARGV[1] window length in ms
-- Returns {count, ms left in the window}.
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { count, redis.call('PTTL', KEYS[1]) }
