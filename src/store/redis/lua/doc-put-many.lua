-- Bulk upsert (catalog import) of one chunk, announced as one message.
-- KEYS[1] docs hash   ARGV[1] change channel  ARGV[2] change message  ARGV[3..] id, doc JSON, id, doc JSON, ...
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 'OK'
