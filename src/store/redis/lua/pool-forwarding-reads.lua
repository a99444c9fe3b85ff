-- Forwarding pool reads that need none of the pool's rules, put BEFORE pool-forwarding-lib.lua in the one
-- script RedisSlotStore loads. Every EVALSHA runs the script from the top, and the lib's top level (its tables
-- and some forty functions, made anew on each call) was most of what a 'get' cost Redis; a read answered here
-- returns before any of it runs. KEYS[1] is the sessions hash (K.sessions in the lib).

if ARGV[1] == 'get' then
  return redis.call('HGET', KEYS[1], ARGV[4]) or 'null'
end
