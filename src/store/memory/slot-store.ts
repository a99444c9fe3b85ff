/**
 * Embedded SlotStore: the forwarding and analytics pools in memory. Every method runs to completion without
 * awaiting, so on one event loop each check-and-take is atomic — the same guarantee the Redis store gets from
 * running each decision as one Lua script. The rules themselves live in src/core/pool-rules.ts.
 *
 * Never one more than the limit: a forward is only ever added by `takeRoom`, which first reclaims an idle forward
 * when `forwards.size` has reached the limit, and is only called after checking that room exists. The analytics
 * pool is its own module (./analytics-pool.ts).
 */
import { randomUUID } from 'node:crypto';
import { MemoryAnalyticsPool } from './analytics-pool.js';
import type { EndReason } from '../../core/model.js';
import {
  DEFAULT_ANALYTICS_LIMIT,
  DEFAULT_FORWARDING_LIMIT,
  DEFAULT_IDLE_CLOSE_MS,
  IDEMPOTENCY_WINDOW_MS,
  PRIORITY_RANK,
  QUOTA_RETRY_AFTER_MS,
  TICKET_OUTCOME_RETENTION_MS,
  arrivalMayTakeRoom,
  capacityRetryAfterMs,
  chooseVictim,
  idempotencyField,
  type PreemptionCandidate,
} from '../../core/pool-rules.js';
import type {
  OpenReservationRequest,
  OpenReservationResult,
  OpenSessionRequest,
  OpenSessionResult,
  PoolUsage,
  ReservationLease,
  SessionLease,
  SlotEvents,
  SlotStore,
  TicketOutcome,
} from '../../core/ports.js';

export interface MemorySlotStoreOptions {
  forwardingLimit?: number;
  analyticsLimit?: number;
  idleCloseMs?: number;
  /** Epoch milliseconds; tests drive it to move time without sleeping. */
  clock?: () => number;
}

/** One channel being relayed, shared by all its sessions. */
interface Forward {
  channelId: string;
  fence: number;
  sessionIds: Set<string>;
  /** Sessions per agency on this channel: an agency's quota counts the forwards it appears in. */
  agencies: Map<string, number>;
  /** Sessions above `normal`: any one of them protects the forward from preemption. */
  protectedSessions: number;
  /** Set while the forward has no session and waits idleCloseMs before closing. */
  lingerUntil: number | null;
}

interface Ticket {
  id: string;
  deadline: number;
  request: OpenSessionRequest;
}

type Closed = Array<{ channelId: string; fence: number }>;

export function emptySlotEvents(): SlotEvents {
  return { endedSessions: [], endedReservations: [], closedForwards: [], grantedTickets: [], droppedTickets: [] };
}

export class MemorySlotStore implements SlotStore {
  readonly #forwardingLimit: number;
  readonly #idleCloseMs: number;
  readonly #clock: () => number;

  readonly #sessions = new Map<string, SessionLease>();
  readonly #forwards = new Map<string, Forward>();
  /** Forwards with no session, waiting out their linger: reclaimable by any new forward. */
  readonly #lingering = new Set<Forward>();
  /** Distinct channels per agency (its forwarding quota use). */
  readonly #agencyForwards = new Map<string, number>();
  #lastFence = 0;
  /** Pending tickets in service order: priority rank desc, then arrival. */
  #queue: Ticket[] = [];
  readonly #outcomes = new Map<string, { outcome: TicketOutcome; forgetAt: number }>();
  readonly #idempotency = new Map<string, { sessionId: string; expiresAt: number }>();
  readonly #analytics: MemoryAnalyticsPool;

  constructor(options: MemorySlotStoreOptions = {}) {
    this.#forwardingLimit = options.forwardingLimit ?? DEFAULT_FORWARDING_LIMIT;
    this.#idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
    this.#clock = options.clock ?? Date.now;
    this.#analytics = new MemoryAnalyticsPool(options.analyticsLimit ?? DEFAULT_ANALYTICS_LIMIT, this.#clock);
  }

  async openSession(req: OpenSessionRequest): Promise<OpenSessionResult> {
    const now = this.#clock();
    const replay = this.#replay(req, now);
    if (replay) return { kind: 'granted', session: replay, newForward: false, replayed: true, preempted: [], closedForwards: [] };

    if (this.#overQuota(req)) return { kind: 'denied', reason: 'quota', retryAfterMs: QUOTA_RETRY_AFTER_MS };
    const existing = this.#forwards.get(req.channelId);
    if (existing) {
      const session = this.#addSession(req, existing, true, now);
      return { kind: 'granted', session, newForward: false, replayed: false, preempted: [], closedForwards: [] };
    }

    const closedForwards: Closed = [];
    let queuedAhead = 0;
    for (const t of this.#queue) if (PRIORITY_RANK[t.request.priority] >= PRIORITY_RANK[req.priority]) queuedAhead++;
    if (arrivalMayTakeRoom(this.#room(), queuedAhead)) {
      const session = this.#addSession(req, this.#takeRoom(req.channelId, closedForwards), false, now);
      return { kind: 'granted', session, newForward: true, replayed: false, preempted: [], closedForwards };
    }

    const victim = req.priority === 'emergency' && req.mayPreempt ? this.#chooseVictim() : null;
    if (victim) {
      const events = emptySlotEvents();
      this.#closeForward(victim, 'preempted', now, events);
      const session = this.#addSession(req, this.#takeRoom(req.channelId, closedForwards), false, now);
      const preempted = events.endedSessions.map((e) => e.session);
      return { kind: 'granted', session, newForward: true, replayed: false, preempted, closedForwards: [...events.closedForwards, ...closedForwards] };
    }

    if (req.waitMs > 0) {
      const ticket: Ticket = { id: randomUUID(), deadline: now + req.waitMs, request: { ...req } };
      // Behind every ticket of the same or higher priority: first come, first served within a priority.
      const at = this.#queue.findIndex((t) => PRIORITY_RANK[t.request.priority] < PRIORITY_RANK[req.priority]);
      const position = at === -1 ? this.#queue.length : at;
      this.#queue.splice(position, 0, ticket);
      return { kind: 'queued', ticketId: ticket.id, position: position + 1 };
    }
    return { kind: 'denied', reason: 'capacity', retryAfterMs: capacityRetryAfterMs(now, this.#nextFreeAt()) };
  }

  async ticketOutcome(ticketId: string): Promise<TicketOutcome> {
    if (this.#queue.some((t) => t.id === ticketId)) return { kind: 'pending' };
    // Unknown or forgotten (older than the retention): the waiter has nothing left to wait for.
    return this.#outcomes.get(ticketId)?.outcome ?? { kind: 'timeout' };
  }

  async cancelTicket(ticketId: string): Promise<TicketOutcome> {
    const index = this.#queue.findIndex((t) => t.id === ticketId);
    if (index !== -1) {
      this.#queue.splice(index, 1);
      return { kind: 'timeout' };
    }
    const outcome = this.#outcomes.get(ticketId)?.outcome ?? { kind: 'timeout' };
    this.#outcomes.delete(ticketId);
    return outcome;
  }

  async heartbeatSession(sessionId: string, ttlMs: number): Promise<SessionLease | null> {
    const now = this.#clock();
    const session = this.#sessions.get(sessionId);
    // A lapsed lease is dead even before the sweep reports it: a late heartbeat must not revive it.
    if (!session || session.expiresAt <= now) return null;
    session.expiresAt = now + ttlMs;
    return { ...session };
  }

  async endSession(sessionId: string, reason: EndReason, options: { closeIdleForward?: boolean } = {}): Promise<SlotEvents | null> {
    const session = this.#sessions.get(sessionId);
    if (!session) return null;
    const now = this.#clock();
    const events = emptySlotEvents();
    this.#endSession(session, reason, now, events);
    const forward = this.#forwards.get(session.channelId);
    // A grant that could not be completed leaves no lingering forward behind.
    if (options.closeIdleForward && forward && forward.sessionIds.size === 0) this.#dropForward(forward, events.closedForwards);
    this.#serveQueue(now, events);
    return events;
  }

  async getSession(sessionId: string): Promise<SessionLease | null> {
    const session = this.#sessions.get(sessionId);
    return session ? { ...session } : null;
  }

  async listSessions(filter: { agencyId?: string; principalId?: string }): Promise<SessionLease[]> {
    return [...this.#sessions.values()]
      .filter((s) => (filter.agencyId === undefined || s.agencyId === filter.agencyId) && (filter.principalId === undefined || s.principalId === filter.principalId))
      .map((s) => ({ ...s }));
  }

  async endAllOf(principalId: string, reason: EndReason): Promise<SlotEvents> {
    const now = this.#clock();
    const events = emptySlotEvents();
    for (const session of [...this.#sessions.values()]) {
      if (session.principalId === principalId) this.#endSession(session, reason, now, events);
    }
    this.#analytics.end((r) => r.principalId === principalId, reason, events);
    this.#serveQueue(now, events);
    return events;
  }

  async failForward(channelId: string, fence: number): Promise<SlotEvents> {
    const now = this.#clock();
    const events = emptySlotEvents();
    const forward = this.#forwards.get(channelId);
    // A stale fence is a report about an earlier forward of this channel: the current one is not to be touched.
    if (!forward || forward.fence !== fence) return events;
    this.#closeForward(forward, 'source-failed', now, events);
    this.#serveQueue(now, events);
    return events;
  }

  async openReservation(req: OpenReservationRequest): Promise<OpenReservationResult> {
    return this.#analytics.open(req);
  }

  async heartbeatReservation(reservationId: string): Promise<ReservationLease | null> {
    return this.#analytics.heartbeat(reservationId);
  }

  async endReservation(reservationId: string, reason: EndReason): Promise<SlotEvents | null> {
    const events = emptySlotEvents();
    return this.#analytics.end((r) => r.id === reservationId, reason, events) ? events : null;
  }

  async getReservation(reservationId: string): Promise<ReservationLease | null> {
    return this.#analytics.get(reservationId);
  }

  async listReservations(filter: { agencyId?: string; principalId?: string }): Promise<ReservationLease[]> {
    return this.#analytics.list(filter);
  }

  /**
   * Runs every ~250 ms. A full scan is fine here: the pools hold a few thousand forwards and sessions, and a
   * scan keeps one source of truth instead of a deadline index to keep in step with every heartbeat.
   */
  async sweep(): Promise<SlotEvents> {
    const now = this.#clock();
    const events = emptySlotEvents();
    for (const session of [...this.#sessions.values()]) {
      if (session.expiresAt <= now) this.#endSession(session, 'expired', now, events);
    }
    for (const forward of [...this.#lingering]) {
      if ((forward.lingerUntil as number) <= now) this.#dropForward(forward, events.closedForwards);
    }
    this.#serveQueue(now, events);
    this.#analytics.sweep(events);
    for (const [ticketId, { forgetAt }] of this.#outcomes) if (forgetAt <= now) this.#outcomes.delete(ticketId);
    for (const [field, { expiresAt }] of this.#idempotency) if (expiresAt <= now) this.#idempotency.delete(field);
    return events;
  }

  async usage(): Promise<PoolUsage> {
    const agencies: PoolUsage['agencies'] = {};
    for (const [agencyId, forwarding] of this.#agencyForwards) agencies[agencyId] = { forwarding, analytics: 0 };
    for (const [agencyId, analytics] of this.#analytics.heldByAgency()) {
      agencies[agencyId] = { forwarding: agencies[agencyId]?.forwarding ?? 0, analytics };
    }
    return {
      forwarding: { limit: this.#forwardingLimit, used: this.#forwards.size, queued: this.#queue.length },
      analytics: { limit: this.#analytics.limit, used: this.#analytics.used },
      agencies,
    };
  }

  async forwardOf(channelId: string): Promise<{ fence: number; sessions: number } | null> {
    const forward = this.#forwards.get(channelId);
    return forward ? { fence: forward.fence, sessions: forward.sessionIds.size } : null;
  }

  async now(): Promise<number> {
    return this.#clock();
  }

  #replay(req: OpenSessionRequest, now: number): SessionLease | null {
    if (req.idempotencyKey === undefined) return null;
    const record = this.#idempotency.get(idempotencyField(req.principalId, req.idempotencyKey));
    if (!record || record.expiresAt <= now) return null;
    // The key's session ended: nothing left to replay, the request is served as a new one.
    const session = this.#sessions.get(record.sessionId);
    return session ? { ...session } : null;
  }

  /** Joining a channel the agency already has a session on takes no quota; any other channel takes one. */
  #overQuota(req: Pick<OpenSessionRequest, 'agencyId' | 'channelId' | 'agencyQuota'>): boolean {
    if (this.#forwards.get(req.channelId)?.agencies.has(req.agencyId)) return false;
    return (this.#agencyForwards.get(req.agencyId) ?? 0) >= req.agencyQuota;
  }

  /** Free slots plus idle lingering forwards: a new forward may take either. */
  #room(): number {
    return this.#forwardingLimit - this.#forwards.size + this.#lingering.size;
  }

  /**
   * Starts a new forward, in a free slot if there is one. With the pool full, a new forward of ANY priority
   * reclaims the idle lingering forward closest to its own close (closing it at once): the linger is a courtesy
   * to a viewer who may come back, never a reason to turn someone away. Callers check `#room()` first.
   */
  #takeRoom(channelId: string, closed: Closed): Forward {
    if (this.#forwards.size >= this.#forwardingLimit) {
      let idle: Forward | null = null;
      for (const f of this.#lingering) if (idle === null || (f.lingerUntil as number) < (idle.lingerUntil as number)) idle = f;
      if (!idle) throw new Error('forwarding pool full: callers must check room before taking it');
      this.#dropForward(idle, closed);
    }
    const forward: Forward = { channelId, fence: ++this.#lastFence, sessionIds: new Set(), agencies: new Map(), protectedSessions: 0, lingerUntil: null };
    this.#forwards.set(channelId, forward);
    return forward;
  }

  #addSession(req: OpenSessionRequest, forward: Forward, shared: boolean, now: number): SessionLease {
    const session: SessionLease = {
      id: req.sessionId,
      channelId: req.channelId,
      principalId: req.principalId,
      agencyId: req.agencyId,
      purpose: req.purpose,
      priority: req.priority,
      shared,
      createdAt: now,
      expiresAt: now + req.ttlMs,
      fence: forward.fence,
      ...(req.requestedCodec !== undefined && { requestedCodec: req.requestedCodec }),
    };
    this.#sessions.set(session.id, session);
    forward.sessionIds.add(session.id);
    forward.lingerUntil = null;
    this.#lingering.delete(forward);
    if (session.priority !== 'normal') forward.protectedSessions++;
    if (bump(forward.agencies, session.agencyId, 1) === 1) bump(this.#agencyForwards, session.agencyId, 1);
    if (req.idempotencyKey !== undefined) {
      this.#idempotency.set(idempotencyField(req.principalId, req.idempotencyKey), { sessionId: session.id, expiresAt: now + IDEMPOTENCY_WINDOW_MS });
    }
    return { ...session };
  }

  /** Ends one session; its forward lingers when it was the last one. */
  #endSession(session: SessionLease, reason: EndReason, now: number, events: SlotEvents): void {
    this.#sessions.delete(session.id);
    events.endedSessions.push({ session: { ...session }, reason });
    const forward = this.#forwards.get(session.channelId) as Forward;
    forward.sessionIds.delete(session.id);
    if (session.priority !== 'normal') forward.protectedSessions--;
    if (bump(forward.agencies, session.agencyId, -1) === 0) bump(this.#agencyForwards, session.agencyId, -1);
    if (forward.sessionIds.size === 0) {
      forward.lingerUntil = now + this.#idleCloseMs;
      this.#lingering.add(forward);
    }
  }

  /** Ends every session of a forward with `reason` and frees its slot at once (no linger). */
  #closeForward(forward: Forward, reason: EndReason, now: number, events: SlotEvents): void {
    for (const sessionId of [...forward.sessionIds]) this.#endSession(this.#sessions.get(sessionId) as SessionLease, reason, now, events);
    this.#dropForward(forward, events.closedForwards);
  }

  #dropForward(forward: Forward, closed: Closed): void {
    this.#forwards.delete(forward.channelId);
    this.#lingering.delete(forward);
    closed.push({ channelId: forward.channelId, fence: forward.fence });
  }

  #chooseVictim(): Forward | null {
    const candidates: PreemptionCandidate[] = [];
    for (const f of this.#forwards.values()) {
      if (f.sessionIds.size > 0 && f.protectedSessions === 0) candidates.push({ channelId: f.channelId, fence: f.fence, holders: f.agencies.keys() });
    }
    const channelId = chooseVictim(candidates, (agencyId) => this.#agencyForwards.get(agencyId) ?? 0);
    return channelId === null ? null : (this.#forwards.get(channelId) as Forward);
  }

  /**
   * Grants waiting tickets in order. A ticket whose channel is already forwarded joins it (no room needed);
   * the others take room while there is any. Quota is checked again at grant time.
   */
  #serveQueue(now: number, events: SlotEvents): void {
    for (const ticket of [...this.#queue]) {
      const req = ticket.request;
      let outcome: TicketOutcome | null = null;
      if (ticket.deadline <= now) {
        outcome = { kind: 'timeout' };
        events.droppedTickets.push({ ticketId: ticket.id, reason: 'timeout' });
      } else if (this.#forwards.has(req.channelId) || this.#room() > 0) {
        if (this.#overQuota(req)) {
          outcome = { kind: 'denied', reason: 'quota' };
          events.droppedTickets.push({ ticketId: ticket.id, reason: 'quota' });
        } else {
          const existing = this.#forwards.get(req.channelId);
          const session = this.#addSession(req, existing ?? this.#takeRoom(req.channelId, events.closedForwards), existing !== undefined, now);
          outcome = { kind: 'granted', session, newForward: existing === undefined };
          events.grantedTickets.push({ ticketId: ticket.id, session, newForward: existing === undefined });
        }
      }
      if (outcome) {
        this.#queue.splice(this.#queue.indexOf(ticket), 1);
        this.#outcomes.set(ticket.id, { outcome, forgetAt: now + TICKET_OUTCOME_RETENTION_MS });
      }
    }
  }

  /** Earliest moment a slot may free by itself: a lease lapsing or a linger running out. */
  #nextFreeAt(): number | null {
    let next: number | null = null;
    for (const s of this.#sessions.values()) next = Math.min(next ?? s.expiresAt, s.expiresAt);
    for (const f of this.#lingering) next = Math.min(next ?? (f.lingerUntil as number), f.lingerUntil as number);
    return next;
  }
}

/** Adds `delta` to a counter, dropping it at zero; returns the new value. */
function bump(counters: Map<string, number>, key: string, delta: number): number {
  const value = (counters.get(key) ?? 0) + delta;
  if (value <= 0) counters.delete(key);
  else counters.set(key, value);
  return value;
}
