-- Analytics pool: one reservation = one slot. Loaded once (SCRIPT LOAD) and called by EVALSHA, so each
-- operation is atomic. Every key comes in through KEYS and shares the {ana} hash tag. Time is Redis TIME only.
-- ARGV[1] names the operation, ARGV[2] is the pool's limit, ARGV[3..] the operation's arguments. Replies are JSON.
-- Mirrors src/store/memory/slot-store.ts; change them together.

local K = {
  reservations = KEYS[1],       -- HASH reservation id -> reservation JSON
  reservationExpiry = KEYS[2],  -- ZSET reservation id by expiresAt
  agencyReservations = KEYS[3], -- HASH agency id -> reservations held (its quota use)
  fence = KEYS[4],              -- STRING last reservation fence (INCR)
  abandoned = KEYS[5]           -- ZSET reservation id by forget time: grants the broker gave up on (never to be made)
}
local LIMIT = tonumber(ARGV[2])
-- Constants of src/core/pool-rules.ts.
local RETRY_AFTER_MIN_MS = 1000
local RETRY_AFTER_MAX_MS = 30000
local QUOTA_RETRY_AFTER_MS = 0
local SWEEP_BATCH = 500
-- How long an abandoned reservation id is refused, should its 'open' still arrive (a command Redis ran late).
local ABANDONED_RETENTION_MS = 600000

local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function int(x)
  return string.format('%.0f', x)
end

local function load(id)
  local raw = redis.call('HGET', K.reservations, id)
  if raw then
    return cjson.decode(raw)
  end
  return nil
end

local function end_reservation(r, reason, events)
  redis.call('HDEL', K.reservations, r.id)
  redis.call('ZREM', K.reservationExpiry, r.id)
  if redis.call('HINCRBY', K.agencyReservations, r.agencyId, -1) <= 0 then
    redis.call('HDEL', K.agencyReservations, r.agencyId)
  end
  events.endedReservations[#events.endedReservations + 1] = { reservation = r, reason = reason }
end

local function new_events()
  return { endedSessions = {}, endedReservations = {}, closedForwards = {}, grantedTickets = {}, droppedTickets = {} }
end

if op == 'open' then
  local req = cjson.decode(ARGV[3])
  -- The broker gave up on this request (its reply was lost or late) and told us so first: take nothing.
  if redis.call('ZSCORE', K.abandoned, req.reservationId) then
    return cjson.encode({ kind = 'denied', reason = 'capacity', retryAfterMs = RETRY_AFTER_MIN_MS })
  end
  if tonumber(redis.call('HGET', K.agencyReservations, req.agencyId) or 0) >= tonumber(req.agencyQuota) then
    return cjson.encode({ kind = 'denied', reason = 'quota', retryAfterMs = QUOTA_RETRY_AFTER_MS })
  end
  if redis.call('HLEN', K.reservations) >= LIMIT then
    local first = redis.call('ZRANGE', K.reservationExpiry, 0, 0, 'WITHSCORES')
    local retry = RETRY_AFTER_MAX_MS
    if first[2] then
      retry = math.min(RETRY_AFTER_MAX_MS, math.max(RETRY_AFTER_MIN_MS, tonumber(first[2]) - now))
    end
    return cjson.encode({ kind = 'denied', reason = 'capacity', retryAfterMs = retry })
  end
  local r = {
    id = req.reservationId, channelId = req.channelId, principalId = req.principalId, agencyId = req.agencyId,
    task = req.task, ttlMs = tonumber(req.ttlMs), createdAt = now, expiresAt = now + tonumber(req.ttlMs),
    fence = redis.call('INCR', K.fence)
  }
  redis.call('HSET', K.reservations, r.id, cjson.encode(r))
  redis.call('ZADD', K.reservationExpiry, int(r.expiresAt), r.id)
  redis.call('HINCRBY', K.agencyReservations, r.agencyId, 1)
  return cjson.encode({ kind = 'granted', reservation = r })
end

if op == 'heartbeat' then
  local r = load(ARGV[3])
  -- A lapsed lease is dead even before the sweep reports it: a late heartbeat must not revive it.
  if not r or r.expiresAt <= now then
    return 'null'
  end
  r.expiresAt = now + r.ttlMs
  redis.call('HSET', K.reservations, r.id, cjson.encode(r))
  redis.call('ZADD', K.reservationExpiry, int(r.expiresAt), r.id)
  return cjson.encode(r)
end

if op == 'end' then
  local r = load(ARGV[3])
  if not r then
    return 'null'
  end
  local events = new_events()
  end_reservation(r, ARGV[4], events)
  return cjson.encode(events)
end

if op == 'get' then
  return redis.call('HGET', K.reservations, ARGV[3]) or 'null'
end

-- Revocation and listings scan the reservations hash: they are rare, and at most LIMIT reservations exist.
if op == 'list' or op == 'end-all' then
  local matching = {}
  for _, raw in ipairs(redis.call('HVALS', K.reservations)) do
    local r = cjson.decode(raw)
    if (op == 'list' and (ARGV[3] == '' or r.agencyId == ARGV[3]) and (ARGV[4] == '' or r.principalId == ARGV[4]))
      or (op == 'end-all' and r.principalId == ARGV[3]) then
      matching[#matching + 1] = r
    end
  end
  if op == 'list' then
    return cjson.encode(matching)
  end
  local events = new_events()
  for _, r in ipairs(matching) do
    end_reservation(r, ARGV[4], events)
  end
  return cjson.encode(events)
end

if op == 'sweep' then
  local events = new_events()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.reservationExpiry, '-inf', int(now), 'LIMIT', 0, SWEEP_BATCH)) do
    end_reservation(load(id), 'expired', events)
  end
  redis.call('ZREMRANGEBYSCORE', K.abandoned, '-inf', int(now))
  return cjson.encode(events)
end

-- Reservations a broker answered with an error although they may have been made: given back, and an 'open'
-- that has not run yet never will. ARGV[3] is a JSON list of reservation ids. Idempotent.
if op == 'abandon' then
  local events = new_events()
  for _, id in ipairs(cjson.decode(ARGV[3])) do
    redis.call('ZADD', K.abandoned, int(now + ABANDONED_RETENTION_MS), id)
    local r = load(id)
    if r then
      end_reservation(r, 'released', events)
    end
  end
  return cjson.encode(events)
end

if op == 'usage' then
  local agencies = {}
  local held = redis.call('HGETALL', K.agencyReservations)
  for i = 1, #held, 2 do
    agencies[held[i]] = tonumber(held[i + 1])
  end
  return cjson.encode({ used = redis.call('HLEN', K.reservations), agencies = agencies })
end

error('unknown analytics operation: ' .. tostring(op))
