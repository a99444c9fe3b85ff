/**
 * SlotStore on Redis, shared by every broker of a city. Each decision is one Lua script run by EVALSHA, so a
 * check-and-take is atomic across processes; the scripts take their time from Redis TIME, never from a broker.
 * Leases live only in Redis: whichever broker sweeps ends lapsed ones, whoever created them.
 *
 * Keys: `<prefix>:{fwd}:*` for the forwarding pool and `<prefix>:{ana}:*` for the analytics pool. A script
 * touches only the keys of its own pool, all passed in KEYS, all under one hash tag, so Redis Cluster works.
 *
 * A grant the caller answers with an error must hold nothing, also when its script did run and only the reply
 * was lost (the connection dropped, Redis froze and ran it later). The broker chooses the session or
 * reservation id before the call, so a failed open (or end) is remembered here as abandoned, and the next sweep
 * tells Redis first ('abandon': give back whatever that id holds, refuse an 'open' of it that has not run yet)
 * until Redis has heard it. What that gives back is reported as sweep events, audited like any release.
 *
 * @see ../../../../shared/DESIGN.md "Decisions already made" (Redis)
 * @see ./lua/pool-forwarding-lib.lua for the rules, mirrored from src/core/pool-rules.ts
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ClientClosedError, ClientOfflineError, createClient } from 'redis';
import type { EndReason } from '../../core/model.js';
import { DEFAULT_ANALYTICS_LIMIT, DEFAULT_FORWARDING_LIMIT, DEFAULT_IDLE_CLOSE_MS } from '../../core/pool-rules.js';
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

/** What the store needs of a node-redis client: loading and calling scripts. */
export interface ScriptClient {
  scriptLoad(script: string): Promise<string>;
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export interface RedisSlotStoreOptions {
  /** A connected client (the caller owns it), or `url` to let the store open and own its own connection. */
  client?: ScriptClient;
  url?: string;
  /** Namespace of every key; lets tests and several deployments share one Redis. */
  prefix?: string;
  forwardingLimit?: number;
  analyticsLimit?: number;
  idleCloseMs?: number;
}

/**
 * The .lua files stay in src/ (tsc copies no assets). From src/store/redis/ under tsx and from dist/store/redis/
 * after a build, three levels up is the project root, so this URL finds them in both.
 */
const LUA_DIR = new URL('../../../src/store/redis/lua/', import.meta.url);

type Pool = 'forwarding' | 'analytics';

/** Abandoned ids told to Redis per sweep and pool, so one script stays short after a long outage. */
const ABANDON_BATCH = 500;
/** Beyond this many waiting abandons (a very long outage), further ones are left to their leases to lapse. */
const MAX_ABANDONED = 100_000;

/** A command node-redis refused before sending (the client offline or closed): its outcome is known, nothing ran. */
function neverSent(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ClientOfflineError || e instanceof ClientClosedError) return true;
  }
  return false;
}

interface Script {
  source: Promise<string>;
  sha: Promise<string> | null;
  keys: string[];
}

export class RedisSlotStore implements SlotStore {
  readonly #client: ScriptClient;
  readonly #ownedConnection: ReturnType<typeof createClient> | null;
  #connected: Promise<unknown> | null = null;
  readonly #forwardingLimit: number;
  readonly #analyticsLimit: number;
  readonly #idleCloseMs: number;
  readonly #scripts: Record<Pool, Script>;
  /** Opens and ends that failed with an unknown outcome, by id, until an 'abandon' has reached Redis. */
  readonly #abandonedSessions = new Map<string, { sessionId: string; ticketId?: string }>();
  readonly #abandonedReservations = new Set<string>();
  /** Session id of each ticket this store queued and whose outcome the caller has not had yet. */
  readonly #ticketSessions = new Map<string, string>();

  constructor(options: RedisSlotStoreOptions) {
    if (options.client) {
      this.#client = options.client;
      this.#ownedConnection = null;
    } else if (options.url) {
      this.#ownedConnection = createClient({ url: options.url });
      this.#client = this.#ownedConnection;
    } else {
      throw new Error('RedisSlotStore needs a client or a url');
    }
    this.#forwardingLimit = options.forwardingLimit ?? DEFAULT_FORWARDING_LIMIT;
    this.#analyticsLimit = options.analyticsLimit ?? DEFAULT_ANALYTICS_LIMIT;
    this.#idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
    const prefix = options.prefix ?? 'broker';
    const fwd = (name: string) => `${prefix}:{fwd}:${name}`;
    const ana = (name: string) => `${prefix}:{ana}:${name}`;
    this.#scripts = {
      forwarding: {
        // The plain reads first: they return before the lib's rules are even defined (see that file).
        source: Promise.all(['pool-forwarding-reads.lua', 'pool-forwarding-lib.lua', 'pool-forwarding-ops.lua'].map(readLua)).then((parts) => parts.join('\n')),
        sha: null,
        // Order matters: it is the K table at the top of pool-forwarding-lib.lua.
        keys: ['sessions', 'session-expiry', 'forwards', 'lingers', 'agency-forwards', 'fence', 'queue', 'tickets', 'ticket-seq', 'outcomes', 'outcome-expiry', 'idempotency', 'idempotency-expiry', 'abandoned'].map(fwd),
      },
      analytics: {
        source: readLua('pool-analytics.lua'),
        sha: null,
        keys: ['reservations', 'reservation-expiry', 'agency-reservations', 'fence', 'abandoned'].map(ana),
      },
    };
  }

  /** Closes the connection the store opened itself; a client passed in stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.#ownedConnection?.isOpen) await this.#ownedConnection.close();
  }

  async openSession(req: OpenSessionRequest): Promise<OpenSessionResult> {
    const ticketId = randomUUID();
    const result = await this.#forwarding<OpenSessionResult>('open', JSON.stringify(req), ticketId).catch((error: unknown) => {
      this.#abandonSession(error, req.sessionId, ticketId);
      throw error;
    });
    if (result.kind === 'queued') this.#ticketSessions.set(ticketId, req.sessionId);
    if (result.kind === 'granted') {
      result.preempted = list(result.preempted);
      result.closedForwards = list(result.closedForwards);
    }
    return result;
  }

  ticketOutcome(ticketId: string): Promise<TicketOutcome> {
    return this.#settleTicket(ticketId, this.#forwarding<TicketOutcome>('ticket-outcome', ticketId));
  }

  cancelTicket(ticketId: string): Promise<TicketOutcome> {
    return this.#settleTicket(ticketId, this.#forwarding<TicketOutcome>('cancel', ticketId), true);
  }

  /** A waiter that cannot learn its ticket's fate answers an error: the ticket and any grant of it are abandoned. */
  async #settleTicket(ticketId: string, call: Promise<TicketOutcome>, final = false): Promise<TicketOutcome> {
    let outcome: TicketOutcome;
    try {
      outcome = await call;
    } catch (error) {
      const sessionId = this.#ticketSessions.get(ticketId);
      this.#ticketSessions.delete(ticketId);
      if (sessionId) this.#abandonSession(error, sessionId, ticketId);
      throw error;
    }
    if (final || outcome.kind !== 'pending') this.#ticketSessions.delete(ticketId);
    return outcome;
  }

  heartbeatSession(sessionId: string, ttlMs: number): Promise<SessionLease | null> {
    return this.#forwarding('heartbeat', sessionId, String(ttlMs));
  }

  async endSession(sessionId: string, reason: EndReason, options: { closeIdleForward?: boolean } = {}): Promise<SlotEvents | null> {
    const events = await this.#forwarding<SlotEvents | null>('end', sessionId, reason, options.closeIdleForward ? '1' : '0').catch((error: unknown) => {
      // The caller gives the session up (a release, or a grant it could not complete): the sweep finishes it.
      if (!this.#abandonedSessions.has(sessionId)) this.#abandonSession(error, sessionId);
      throw error;
    });
    return events && slotEvents(events);
  }

  getSession(sessionId: string): Promise<SessionLease | null> {
    return this.#forwarding('get', sessionId);
  }

  async listSessions(filter: { agencyId?: string; principalId?: string }): Promise<SessionLease[]> {
    return list(await this.#forwarding<SessionLease[]>('list', filter.agencyId ?? '', filter.principalId ?? ''));
  }

  /** Two scripts, one per pool: a cluster keeps the pools in different slots, and each half is atomic on its own. */
  async endAllOf(principalId: string, reason: EndReason): Promise<SlotEvents> {
    const [forwarding, analytics] = await Promise.all([
      this.#forwarding<SlotEvents>('end-all', principalId, reason),
      this.#analytics<SlotEvents>('end-all', principalId, reason),
    ]);
    return mergeEvents(forwarding, analytics);
  }

  async failForward(channelId: string, fence: number): Promise<SlotEvents> {
    return slotEvents(await this.#forwarding<SlotEvents>('fail', channelId, String(fence)));
  }

  openReservation(req: OpenReservationRequest): Promise<OpenReservationResult> {
    return this.#analytics<OpenReservationResult>('open', JSON.stringify(req)).catch((error: unknown) => {
      this.#abandonReservation(error, req.reservationId);
      throw error;
    });
  }

  heartbeatReservation(reservationId: string): Promise<ReservationLease | null> {
    return this.#analytics('heartbeat', reservationId);
  }

  async endReservation(reservationId: string, reason: EndReason): Promise<SlotEvents | null> {
    const events = await this.#analytics<SlotEvents | null>('end', reservationId, reason).catch((error: unknown) => {
      this.#abandonReservation(error, reservationId);
      throw error;
    });
    return events && slotEvents(events);
  }

  getReservation(reservationId: string): Promise<ReservationLease | null> {
    return this.#analytics('get', reservationId);
  }

  async listReservations(filter: { agencyId?: string; principalId?: string }): Promise<ReservationLease[]> {
    return list(await this.#analytics<ReservationLease[]>('list', filter.agencyId ?? '', filter.principalId ?? ''));
  }

  async sweep(): Promise<SlotEvents> {
    const abandoned = await this.#abandon();
    const [forwarding, analytics] = await Promise.all([this.#forwarding<SlotEvents>('sweep'), this.#analytics<SlotEvents>('sweep')]);
    return mergeEvents(abandoned, mergeEvents(forwarding, analytics));
  }

  #abandonSession(error: unknown, sessionId: string, ticketId?: string): void {
    if (neverSent(error) || this.#abandonedSessions.size >= MAX_ABANDONED) return;
    this.#abandonedSessions.set(sessionId, ticketId === undefined ? { sessionId } : { sessionId, ticketId });
  }

  #abandonReservation(error: unknown, reservationId: string): void {
    if (neverSent(error) || this.#abandonedReservations.size >= MAX_ABANDONED) return;
    this.#abandonedReservations.add(reservationId);
  }

  /**
   * Tells Redis of the abandoned opens and ends; they are forgotten here only once it has answered. Never
   * throws: what did not get through is tried again at the next sweep, what did is reported.
   */
  async #abandon(): Promise<SlotEvents> {
    const sessions = [...this.#abandonedSessions.values()].slice(0, ABANDON_BATCH);
    const reservations = [...this.#abandonedReservations].slice(0, ABANDON_BATCH);
    const [forwarding, analytics] = await Promise.all([
      sessions.length === 0
        ? noEvents()
        : this.#forwarding<SlotEvents>('abandon', JSON.stringify(sessions)).then(
            (events) => {
              for (const { sessionId } of sessions) this.#abandonedSessions.delete(sessionId);
              return slotEvents(events);
            },
            () => noEvents(),
          ),
      reservations.length === 0
        ? noEvents()
        : this.#analytics<SlotEvents>('abandon', JSON.stringify(reservations)).then(
            (events) => {
              for (const id of reservations) this.#abandonedReservations.delete(id);
              return slotEvents(events);
            },
            () => noEvents(),
          ),
    ]);
    return mergeEvents(forwarding, analytics);
  }

  async usage(): Promise<PoolUsage> {
    type Used = { used: number; queued: number; agencies: Record<string, number> | [] };
    const [forwarding, analytics] = await Promise.all([this.#forwarding<Used>('usage'), this.#analytics<Omit<Used, 'queued'>>('usage')]);
    const agencies: PoolUsage['agencies'] = {};
    for (const [agencyId, held] of Object.entries(forwarding.agencies)) agencies[agencyId] = { forwarding: held, analytics: 0 };
    for (const [agencyId, held] of Object.entries(analytics.agencies)) agencies[agencyId] = { forwarding: agencies[agencyId]?.forwarding ?? 0, analytics: held };
    return {
      forwarding: { limit: this.#forwardingLimit, used: forwarding.used, queued: forwarding.queued },
      analytics: { limit: this.#analyticsLimit, used: analytics.used },
      agencies,
    };
  }

  forwardOf(channelId: string): Promise<{ fence: number; sessions: number } | null> {
    return this.#forwarding('forward-of', channelId);
  }

  now(): Promise<number> {
    return this.#forwarding('now');
  }

  #forwarding<T>(op: string, ...args: string[]): Promise<T> {
    return this.#run<T>('forwarding', [op, String(this.#forwardingLimit), String(this.#idleCloseMs), ...args]);
  }

  #analytics<T>(op: string, ...args: string[]): Promise<T> {
    return this.#run<T>('analytics', [op, String(this.#analyticsLimit), ...args]);
  }

  /** EVALSHA; a Redis that lost its script cache (restart, SCRIPT FLUSH, failover) answers NOSCRIPT: load and retry. */
  async #run<T>(pool: Pool, args: string[]): Promise<T> {
    const script = this.#scripts[pool];
    if (this.#ownedConnection) await (this.#connected ??= this.#ownedConnection.connect());
    script.sha ??= this.#load(script);
    const sha = await script.sha;
    let reply: unknown;
    try {
      reply = await this.#client.evalSha(sha, { keys: script.keys, arguments: args });
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      script.sha = this.#load(script);
      reply = await this.#client.evalSha(await script.sha, { keys: script.keys, arguments: args });
    }
    return JSON.parse(String(reply)) as T;
  }

  async #load(script: Script): Promise<string> {
    try {
      return await this.#client.scriptLoad(await script.source);
    } catch (error) {
      // Forget a failed load so the next call tries again instead of replaying the rejection forever.
      script.sha = null;
      throw error;
    }
  }
}

function readLua(name: string): Promise<string> {
  return readFile(new URL(name, LUA_DIR), 'utf8');
}

/** Lua's cjson writes an empty table as `{}`: read it back as the empty list it stands for. */
function list<T>(value: T[] | Record<string, never>): T[] {
  return Array.isArray(value) ? value : [];
}

function slotEvents(events: SlotEvents): SlotEvents {
  return {
    endedSessions: list(events.endedSessions),
    endedReservations: list(events.endedReservations),
    closedForwards: list(events.closedForwards),
    grantedTickets: list(events.grantedTickets),
    droppedTickets: list(events.droppedTickets),
  };
}

function noEvents(): SlotEvents {
  return { endedSessions: [], endedReservations: [], closedForwards: [], grantedTickets: [], droppedTickets: [] };
}

function mergeEvents(forwarding: SlotEvents, analytics: SlotEvents): SlotEvents {
  const a = slotEvents(forwarding);
  const b = slotEvents(analytics);
  return {
    endedSessions: [...a.endedSessions, ...b.endedSessions],
    endedReservations: [...a.endedReservations, ...b.endedReservations],
    closedForwards: [...a.closedForwards, ...b.closedForwards],
    grantedTickets: [...a.grantedTickets, ...b.grantedTickets],
    droppedTickets: [...a.droppedTickets, ...b.droppedTickets],
  };
}
