-- The attempt was the right password: clear the pair's and the username's counts and take the
-- attempt back from the address (which keeps the rest: a valid account must not reset an address
-- that is spraying others). One step, so it cannot interleave with a count.
-- KEYS[1] address counter   KEYS[2] (username, address) counter   KEYS[3] username counter
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left > 0 then redis.call('DECR', KEYS[1]) end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
