-- Compare-and-append a batch of audit entries chained in Node from the head the caller last saw.
-- If another broker appended meanwhile, nothing is written and the current head is returned so the
-- caller can re-chain from it. This keeps the chain single-file across processes without locks.
-- KEYS[1] head hash {seq, hash, at}   KEYS[2] entries stream (ID "<seq>-0", field e = entry JSON)
-- ARGV[1] expected head seq ('0' when empty)  ARGV[2] expected head hash
-- ARGV[3] new head seq  ARGV[4] new head hash  ARGV[5] new head at  ARGV[6..] entry JSON, oldest first
-- Returns {1} when appended, {0, seq, hash, at} when the head had moved.
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash', 'at')
local seq = head[1] or '0'
if seq ~= ARGV[1] or (head[1] and head[2] ~= ARGV[2]) then
  return { 0, seq, head[2] or '', head[3] or '' }
end
local base = tonumber(ARGV[1])
for i = 6, #ARGV do
  redis.call('XADD', KEYS[2], string.format('%d-0', base + i - 5), 'e', ARGV[i])
end
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'hash', ARGV[4], 'at', ARGV[5])
return { 1 }
