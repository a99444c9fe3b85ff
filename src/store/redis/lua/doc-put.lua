-- Put one document, with the ifAbsent / unique checks in the same atomic step as the write, and announce
-- the change to the other brokers.
-- KEYS[1] docs hash (id -> JSON)   KEYS[2] unique hash ("index\0key" -> id)   KEYS[3] held hash (id -> JSON [[index, key], ...])
-- ARGV[1] id  ARGV[2] doc JSON  ARGV[3] '1' = ifAbsent  ARGV[4] unique index ('' = none)  ARGV[5] unique key
-- ARGV[6] change channel  ARGV[7] change message
-- Returns 'OK', 'EXISTS' or 'TAKEN'.
local id, doc, if_absent, index, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if if_absent == '1' and redis.call('HEXISTS', KEYS[1], id) == 1 then
  return 'EXISTS'
end

if index ~= '' then
  local field = index .. '\0' .. key
  local holder = redis.call('HGET', KEYS[2], field)
  if holder and holder ~= id then
    return 'TAKEN'
  end
  local held = redis.call('HGET', KEYS[3], id)
  local kept = {}
  if held then
    for _, pair in ipairs(cjson.decode(held)) do
      if pair[1] ~= index then
        table.insert(kept, pair)
      elseif pair[2] ~= key then
        redis.call('HDEL', KEYS[2], pair[1] .. '\0' .. pair[2])
      end
    end
  end
  table.insert(kept, { index, key })
  redis.call('HSET', KEYS[3], id, cjson.encode(kept))
  redis.call('HSET', KEYS[2], field, id)
end

redis.call('HSET', KEYS[1], id, doc)
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 'OK'
