-- Forwarding pool operations, appended to pool-forwarding-lib.lua. ARGV[1] names the operation, ARGV[2] and
-- ARGV[3] are the pool's limit and idle close time, ARGV[4..] the operation's arguments. Replies are JSON.

local op = ARGV[1]
local now = now_ms()

local function granted(s, new_forward, preempted, closed)
  return cjson.encode({ kind = 'granted', session = s, newForward = new_forward, replayed = false, preempted = preempted, closedForwards = closed })
end

local function replay(req)
  if type(req.idempotencyKey) ~= 'string' then
    return nil
  end
  local field = req.principalId .. '\n' .. req.idempotencyKey
  local expires_at = redis.call('ZSCORE', K.idempotencyExpiry, field)
  if not expires_at or tonumber(expires_at) <= now then
    return nil
  end
  -- The key's session ended: nothing left to replay, the request is served as a new one.
  return load_json(K.sessions, redis.call('HGET', K.idempotency, field))
end

if op == 'open' then
  local req = cjson.decode(ARGV[4])
  local ticket_id = ARGV[5]
  -- The broker gave up on this request (its reply was lost or late) and told us so first: take nothing.
  if redis.call('ZSCORE', K.abandoned, req.sessionId) then
    return cjson.encode({ kind = 'denied', reason = 'capacity', retryAfterMs = RETRY_AFTER_MIN_MS })
  end
  local earlier = replay(req)
  if earlier then
    return cjson.encode({ kind = 'granted', session = earlier, newForward = false, replayed = true, preempted = {}, closedForwards = {} })
  end
  if over_quota(req) then
    return cjson.encode({ kind = 'denied', reason = 'quota', retryAfterMs = QUOTA_RETRY_AFTER_MS })
  end
  local existing = load_json(K.forwards, req.channelId)
  if existing then
    return granted(add_session(req, existing, true, now), false, {}, {})
  end
  local rank = RANK[req.priority]
  if room() > queued_at_or_above(rank) then
    local closed = {}
    return granted(add_session(req, take_room(closed), false, now), true, {}, closed)
  end
  if req.priority == 'emergency' and req.mayPreempt == true then
    local victim = choose_victim()
    if victim then
      local events = new_events()
      close_forward(victim, 'preempted', now, events)
      local s = add_session(req, take_room(events.closedForwards), false, now)
      local preempted = {}
      for _, ended in ipairs(events.endedSessions) do
        preempted[#preempted + 1] = ended.session
      end
      return granted(s, true, preempted, events.closedForwards)
    end
  end
  if tonumber(req.waitMs) > 0 then
    local seq = redis.call('INCR', K.ticketSeq)
    redis.call('HSET', K.tickets, ticket_id, cjson.encode({ deadline = now + tonumber(req.waitMs), request = req }))
    redis.call('ZADD', K.queue, int((TOP_RANK - rank) * QUEUE_BAND + seq), ticket_id)
    return cjson.encode({ kind = 'queued', ticketId = ticket_id, position = redis.call('ZRANK', K.queue, ticket_id) + 1 })
  end
  return cjson.encode({ kind = 'denied', reason = 'capacity', retryAfterMs = capacity_retry_after(now) })
end

if op == 'ticket-outcome' or op == 'cancel' then
  local ticket_id = ARGV[4]
  if redis.call('HEXISTS', K.tickets, ticket_id) == 1 then
    if op == 'ticket-outcome' then
      return cjson.encode({ kind = 'pending' })
    end
    redis.call('ZREM', K.queue, ticket_id)
    redis.call('HDEL', K.tickets, ticket_id)
    return cjson.encode({ kind = 'timeout' })
  end
  -- Unknown or forgotten (older than the retention): the waiter has nothing left to wait for.
  local outcome = redis.call('HGET', K.outcomes, ticket_id) or cjson.encode({ kind = 'timeout' })
  if op == 'cancel' then
    redis.call('HDEL', K.outcomes, ticket_id)
    redis.call('ZREM', K.outcomeExpiry, ticket_id)
  end
  return outcome
end

-- Grants a broker answered with an error although they may have been made (the reply was lost or came too
-- late): whatever they took is given back, and an 'open' that has not run yet never will. ARGV[4] is a JSON
-- list of {sessionId, ticketId}. Idempotent, so a broker repeats it until it gets an answer.
if op == 'abandon' then
  local events = new_events()
  for _, a in ipairs(cjson.decode(ARGV[4])) do
    redis.call('ZADD', K.abandoned, int(now + ABANDONED_RETENTION_MS), a.sessionId)
    if type(a.ticketId) == 'string' then
      redis.call('ZREM', K.queue, a.ticketId)
      redis.call('HDEL', K.tickets, a.ticketId)
      redis.call('HDEL', K.outcomes, a.ticketId)
      redis.call('ZREM', K.outcomeExpiry, a.ticketId)
    end
    local s = load_json(K.sessions, a.sessionId)
    if s then
      end_session(s, 'released', now, events)
    end
  end
  serve_queue(now, events)
  return cjson.encode(events)
end

if op == 'heartbeat' then
  local s = load_json(K.sessions, ARGV[4])
  -- A lapsed lease is dead even before the sweep reports it: a late heartbeat must not revive it.
  if not s or s.expiresAt <= now then
    return 'null'
  end
  s.expiresAt = now + tonumber(ARGV[5])
  redis.call('HSET', K.sessions, s.id, cjson.encode(s))
  redis.call('ZADD', K.sessionExpiry, int(s.expiresAt), s.id)
  return cjson.encode(s)
end

if op == 'end' then
  local s = load_json(K.sessions, ARGV[4])
  if not s then
    return 'null'
  end
  local events = new_events()
  end_session(s, ARGV[5], now, events)
  -- ARGV[6] '1': a grant that could not be completed leaves no lingering forward behind.
  if ARGV[6] == '1' then
    local fwd = load_json(K.forwards, s.channelId)
    if fwd and #fwd.ids == 0 then
      drop_forward(s.channelId, fwd, events.closedForwards)
    end
  end
  serve_queue(now, events)
  return cjson.encode(events)
end

-- 'get' is answered in pool-forwarding-reads.lua, before the lib.

-- Revocation and listings scan the sessions hash: they are rare, and a scan keeps one source of truth.
if op == 'list' or op == 'end-all' then
  local matching = {}
  for _, raw in ipairs(redis.call('HVALS', K.sessions)) do
    local s = cjson.decode(raw)
    if (op == 'list' and (ARGV[4] == '' or s.agencyId == ARGV[4]) and (ARGV[5] == '' or s.principalId == ARGV[5]))
      or (op == 'end-all' and s.principalId == ARGV[4]) then
      matching[#matching + 1] = s
    end
  end
  if op == 'list' then
    return cjson.encode(matching)
  end
  local events = new_events()
  for _, s in ipairs(matching) do
    end_session(s, ARGV[5], now, events)
  end
  serve_queue(now, events)
  return cjson.encode(events)
end

if op == 'fail' then
  local events = new_events()
  local fwd = load_json(K.forwards, ARGV[4])
  -- A stale fence is a report about an earlier forward of this channel: the current one is not to be touched.
  if fwd and fwd.fence == tonumber(ARGV[5]) then
    close_forward(ARGV[4], 'source-failed', now, events)
    serve_queue(now, events)
  end
  return cjson.encode(events)
end

if op == 'sweep' then
  local events = new_events()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.sessionExpiry, '-inf', int(now), 'LIMIT', 0, SWEEP_BATCH)) do
    end_session(load_json(K.sessions, id), 'expired', now, events)
  end
  for _, channel_id in ipairs(redis.call('ZRANGEBYSCORE', K.lingers, '-inf', int(now), 'LIMIT', 0, SWEEP_BATCH)) do
    drop_forward(channel_id, load_json(K.forwards, channel_id), events.closedForwards)
  end
  serve_queue(now, events)
  for _, ticket_id in ipairs(redis.call('ZRANGEBYSCORE', K.outcomeExpiry, '-inf', int(now), 'LIMIT', 0, SWEEP_BATCH)) do
    redis.call('HDEL', K.outcomes, ticket_id)
    redis.call('ZREM', K.outcomeExpiry, ticket_id)
  end
  for _, field in ipairs(redis.call('ZRANGEBYSCORE', K.idempotencyExpiry, '-inf', int(now), 'LIMIT', 0, SWEEP_BATCH)) do
    redis.call('HDEL', K.idempotency, field)
    redis.call('ZREM', K.idempotencyExpiry, field)
  end
  redis.call('ZREMRANGEBYSCORE', K.abandoned, '-inf', int(now))
  return cjson.encode(events)
end

if op == 'usage' then
  local agencies = {}
  local held = redis.call('HGETALL', K.agencyForwards)
  for i = 1, #held, 2 do
    agencies[held[i]] = tonumber(held[i + 1])
  end
  return cjson.encode({ used = redis.call('HLEN', K.forwards), queued = redis.call('ZCARD', K.queue), agencies = agencies })
end

if op == 'forward-of' then
  local fwd = load_json(K.forwards, ARGV[4])
  if not fwd then
    return 'null'
  end
  return cjson.encode({ fence = fwd.fence, sessions = #fwd.ids })
end

if op == 'now' then
  return cjson.encode(now)
end

error('unknown forwarding operation: ' .. tostring(op))
