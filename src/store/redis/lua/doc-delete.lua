-- Delete one document and release the unique keys it held, then announce it.
-- KEYS[1] docs hash  KEYS[2] unique hash  KEYS[3] held hash
-- ARGV[1] id  ARGV[2] change channel  ARGV[3] change message
local id = ARGV[1]
local held = redis.call('HGET', KEYS[3], id)
if held then
  for _, pair in ipairs(cjson.decode(held)) do
    local field = pair[1] .. '\0' .. pair[2]
    if redis.call('HGET', KEYS[2], field) == id then
      redis.call('HDEL', KEYS[2], field)
    end
  end
  redis.call('HDEL', KEYS[3], id)
end
redis.call('HDEL', KEYS[1], id)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 'OK'
