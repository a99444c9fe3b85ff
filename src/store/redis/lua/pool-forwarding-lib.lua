-- Forwarding pool: state and rules shared by every operation. RedisSlotStore loads pool-forwarding-reads.lua,
-- this file and pool-forwarding-ops.lua as ONE script (SCRIPT LOAD, then EVALSHA), so each operation is atomic.
-- The rules mirror src/core/pool-rules.ts and src/store/memory/slot-store.ts; change them together.
-- Every key comes in through KEYS and shares the {fwd} hash tag (Redis Cluster keeps them in one slot).
-- Time is Redis TIME only: no broker clock takes part in a decision.

local K = {
  sessions = KEYS[1],          -- HASH session id -> session JSON
  sessionExpiry = KEYS[2],     -- ZSET session id by expiresAt
  forwards = KEYS[3],          -- HASH channel id -> {fence, ids, agencies, protected, lingerUntil}
  lingers = KEYS[4],           -- ZSET channel id by lingerUntil (idle forwards only)
  agencyForwards = KEYS[5],    -- HASH agency id -> distinct channels its sessions are on (its quota use)
  fence = KEYS[6],             -- STRING last forward fence (INCR)
  queue = KEYS[7],             -- ZSET ticket id by queue score (priority band, then arrival)
  tickets = KEYS[8],           -- HASH ticket id -> {deadline, request}
  ticketSeq = KEYS[9],         -- STRING last ticket sequence number (INCR)
  outcomes = KEYS[10],         -- HASH ticket id -> outcome JSON (granted/dropped), kept for late pollers
  outcomeExpiry = KEYS[11],    -- ZSET ticket id by forget time
  idempotency = KEYS[12],      -- HASH principal "\n" key -> session id
  idempotencyExpiry = KEYS[13], -- ZSET idempotency field by expiry
  abandoned = KEYS[14]         -- ZSET session id by forget time: grants the broker gave up on (never to be made)
}

local LIMIT = tonumber(ARGV[2])
local IDLE_CLOSE_MS = tonumber(ARGV[3])

-- Constants of src/core/pool-rules.ts.
local RANK = { normal = 0, urgent = 1, emergency = 2 }
local TOP_RANK = 2
local QUEUE_BAND = 1e12
local IDEMPOTENCY_WINDOW_MS = 600000
local TICKET_OUTCOME_RETENTION_MS = 60000
-- How long an abandoned session id is refused, should its 'open' still arrive (a command Redis ran late).
local ABANDONED_RETENTION_MS = 600000
local RETRY_AFTER_MIN_MS = 1000
local RETRY_AFTER_MAX_MS = 30000
local QUOTA_RETRY_AFTER_MS = 0
-- A sweep handles at most this many lapsed items of each kind, so one script never blocks Redis for long;
-- the rest wait for the next sweep (~250 ms later).
local SWEEP_BATCH = 500

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Scores as plain integers: Lua's tostring would write 3e+12.
local function int(x)
  return string.format('%.0f', x)
end

local function new_events()
  return { endedSessions = {}, endedReservations = {}, closedForwards = {}, grantedTickets = {}, droppedTickets = {} }
end

local function load_json(key, field)
  local raw = redis.call('HGET', key, field)
  if raw then
    return cjson.decode(raw)
  end
  return nil
end

local function save_forward(channel_id, fwd)
  redis.call('HSET', K.forwards, channel_id, cjson.encode(fwd))
end

local function forwards_held(agency_id)
  return tonumber(redis.call('HGET', K.agencyForwards, agency_id) or 0)
end

-- Joining a channel the agency already has a session on takes no quota; any other channel takes one.
local function over_quota(req)
  local fwd = load_json(K.forwards, req.channelId)
  if fwd and fwd.agencies[req.agencyId] then
    return false
  end
  return forwards_held(req.agencyId) >= tonumber(req.agencyQuota)
end

-- Free slots plus idle lingering forwards: a new forward may take either.
local function room()
  return LIMIT - redis.call('HLEN', K.forwards) + redis.call('ZCARD', K.lingers)
end

local function queued_at_or_above(rank)
  return redis.call('ZCOUNT', K.queue, '-inf', '(' .. int((TOP_RANK - rank + 1) * QUEUE_BAND))
end

local function drop_forward(channel_id, fwd, closed)
  redis.call('HDEL', K.forwards, channel_id)
  redis.call('ZREM', K.lingers, channel_id)
  closed[#closed + 1] = { channelId = channel_id, fence = fwd.fence }
end

-- A new forward, in a free slot if there is one; with the pool full, ANY priority reclaims the idle forward
-- closest to its own close (closing it at once). Callers check room() first, so HLEN never passes LIMIT.
-- The forward is saved by the add_session that follows.
local function take_room(closed)
  if redis.call('HLEN', K.forwards) >= LIMIT then
    local idle = redis.call('ZRANGE', K.lingers, 0, 0)[1]
    if not idle then
      error('forwarding pool full: callers must check room before taking it')
    end
    drop_forward(idle, load_json(K.forwards, idle), closed)
  end
  return { fence = redis.call('INCR', K.fence), ids = {}, agencies = {}, protected = 0, lingerUntil = 0 }
end

local function add_session(req, fwd, shared, now)
  local s = {
    id = req.sessionId, channelId = req.channelId, principalId = req.principalId, agencyId = req.agencyId,
    purpose = req.purpose, priority = req.priority, shared = shared,
    createdAt = now, expiresAt = now + tonumber(req.ttlMs), fence = fwd.fence, requestedCodec = req.requestedCodec
  }
  redis.call('HSET', K.sessions, s.id, cjson.encode(s))
  redis.call('ZADD', K.sessionExpiry, int(s.expiresAt), s.id)
  fwd.ids[#fwd.ids + 1] = s.id
  if fwd.lingerUntil ~= 0 then
    fwd.lingerUntil = 0
    redis.call('ZREM', K.lingers, req.channelId)
  end
  if s.priority ~= 'normal' then
    fwd.protected = fwd.protected + 1
  end
  local on_channel = (fwd.agencies[s.agencyId] or 0) + 1
  fwd.agencies[s.agencyId] = on_channel
  if on_channel == 1 then
    redis.call('HINCRBY', K.agencyForwards, s.agencyId, 1)
  end
  save_forward(req.channelId, fwd)
  if type(req.idempotencyKey) == 'string' then
    local field = req.principalId .. '\n' .. req.idempotencyKey
    redis.call('HSET', K.idempotency, field, s.id)
    redis.call('ZADD', K.idempotencyExpiry, int(now + IDEMPOTENCY_WINDOW_MS), field)
  end
  return s
end

-- Ends one session; its forward lingers when it was the last one.
local function end_session(s, reason, now, events)
  redis.call('HDEL', K.sessions, s.id)
  redis.call('ZREM', K.sessionExpiry, s.id)
  events.endedSessions[#events.endedSessions + 1] = { session = s, reason = reason }
  local fwd = load_json(K.forwards, s.channelId)
  local ids = {}
  for _, id in ipairs(fwd.ids) do
    if id ~= s.id then
      ids[#ids + 1] = id
    end
  end
  fwd.ids = ids
  if s.priority ~= 'normal' then
    fwd.protected = fwd.protected - 1
  end
  local on_channel = fwd.agencies[s.agencyId] - 1
  if on_channel > 0 then
    fwd.agencies[s.agencyId] = on_channel
  else
    fwd.agencies[s.agencyId] = nil
    if redis.call('HINCRBY', K.agencyForwards, s.agencyId, -1) <= 0 then
      redis.call('HDEL', K.agencyForwards, s.agencyId)
    end
  end
  if #ids == 0 then
    fwd.lingerUntil = now + IDLE_CLOSE_MS
    redis.call('ZADD', K.lingers, int(fwd.lingerUntil), s.channelId)
  end
  save_forward(s.channelId, fwd)
end

-- Ends every session of a forward with `reason` and frees its slot at once (no linger).
local function close_forward(channel_id, reason, now, events)
  local fwd = load_json(K.forwards, channel_id)
  for _, id in ipairs(fwd.ids) do
    end_session(load_json(K.sessions, id), reason, now, events)
  end
  drop_forward(channel_id, fwd, events.closedForwards)
end

-- chooseVictim of src/core/pool-rules.ts: among live forwards whose sessions are all normal, the agency holding
-- the most forwards loses its most recently started one (highest fence); equal loads go to the newest candidate.
local function choose_victim()
  local all = redis.call('HGETALL', K.forwards)
  local newest = {}
  for i = 1, #all, 2 do
    local fwd = cjson.decode(all[i + 1])
    if #fwd.ids > 0 and fwd.protected == 0 then
      for agency_id in pairs(fwd.agencies) do
        local current = newest[agency_id]
        if not current or fwd.fence > current.fence then
          newest[agency_id] = { channelId = all[i], fence = fwd.fence }
        end
      end
    end
  end
  local victim, victim_load = nil, -1
  for agency_id, candidate in pairs(newest) do
    local load = forwards_held(agency_id)
    if load > victim_load or (load == victim_load and candidate.fence > victim.fence) then
      victim, victim_load = candidate, load
    end
  end
  return victim and victim.channelId
end

local function finish_ticket(ticket_id, outcome, now)
  redis.call('ZREM', K.queue, ticket_id)
  redis.call('HDEL', K.tickets, ticket_id)
  redis.call('HSET', K.outcomes, ticket_id, cjson.encode(outcome))
  redis.call('ZADD', K.outcomeExpiry, int(now + TICKET_OUTCOME_RETENTION_MS), ticket_id)
end

-- Grants waiting tickets in order. A ticket whose channel is already forwarded joins it (no room needed);
-- the others take room while there is any. Quota is checked again at grant time.
local function serve_queue(now, events)
  for _, ticket_id in ipairs(redis.call('ZRANGE', K.queue, 0, -1)) do
    local ticket = load_json(K.tickets, ticket_id)
    local req = ticket.request
    local outcome = nil
    if ticket.deadline <= now then
      outcome = { kind = 'timeout' }
      events.droppedTickets[#events.droppedTickets + 1] = { ticketId = ticket_id, reason = 'timeout' }
    else
      local fwd = load_json(K.forwards, req.channelId)
      if fwd or room() > 0 then
        if over_quota(req) then
          outcome = { kind = 'denied', reason = 'quota' }
          events.droppedTickets[#events.droppedTickets + 1] = { ticketId = ticket_id, reason = 'quota' }
        else
          local new_forward = fwd == nil
          local s = add_session(req, fwd or take_room(events.closedForwards), not new_forward, now)
          outcome = { kind = 'granted', session = s, newForward = new_forward }
          events.grantedTickets[#events.grantedTickets + 1] = { ticketId = ticket_id, session = s, newForward = new_forward }
        end
      end
    end
    if outcome then
      finish_ticket(ticket_id, outcome, now)
    end
  end
end

-- Earliest moment a slot may free by itself: a lease lapsing or a linger running out.
local function next_free_at()
  local next_at = nil
  for _, key in ipairs({ K.sessionExpiry, K.lingers }) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if not next_at or at < next_at then
        next_at = at
      end
    end
  end
  return next_at
end

local function capacity_retry_after(now)
  local at = next_free_at()
  if not at then
    return RETRY_AFTER_MAX_MS
  end
  return math.min(RETRY_AFTER_MAX_MS, math.max(RETRY_AFTER_MIN_MS, at - now))
end
