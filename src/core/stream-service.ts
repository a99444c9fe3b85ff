/**
 * Forwarding sessions: who watches which channel, why, and for how long. Decisions about slots are
 * the SlotStore's (atomic); this service checks permissions, drives the media plane, audits every
 * grant, denial and end, and tells clients through the event bus.
 * @see ../shared/API.md "Streams"
 */
import type { Channel, EndReason, Principal, Priority, StreamCodecRequest, VideoCodecName } from './model.js';
import type { AccessControl, MediaControl, PlayUrls, SessionLease, SlotStore } from './ports.js';
import { ForwardStartError } from './ports.js';
import type { AuditService } from './audit-service.js';
import type { CatalogService } from './catalog-service.js';
import type { EventBus } from './events.js';
import type { LeaseEffects } from './lease-effects.js';
import type { GrantRevocation } from './grant-revocation.js';
import { conflict, DomainError, forbidden, notFound } from './errors.js';
import { newId } from './ids.js';
import { isoTime } from './iso-time.js';
import { forwardStartFailed } from './source-unavailable.js';
import { sessionPlays, startH264 } from './stream-codec.js';

export interface AgencyLookup {
  agency(id: string): { quotas: { forwarding: number; analytics: number }; canPreempt: boolean } | undefined;
}

export interface StreamServiceOptions {
  slots: SlotStore;
  media: MediaControl;
  access: AccessControl;
  audit: AuditService;
  catalog: CatalogService;
  agencies: AgencyLookup;
  events: EventBus;
  effects: LeaseEffects;
  /** Visibility of a live session's channel to its agency, re-checked on every read (grants narrow). */
  grants: GrantRevocation;
  leaseTtlMs: number;
  /** How often a queued request re-reads its ticket (other brokers may grant it). */
  ticketPollMs?: number;
}

export interface OpenStreamInput {
  channelId: string;
  purpose: string;
  priority?: Priority;
  waitSeconds?: number;
  /** API.md Streams `codec` (default `source`). */
  codec?: StreamCodecRequest;
}

export type StreamView = {
  id: string;
  channelId: string;
  userId: string;
  agencyId: string;
  purpose: string;
  priority: Priority;
  shared: boolean;
  createdAt: string;
  expiresAt: string;
  /** What the session's URLs play; absent while the camera's codec is not known. */
  codec?: VideoCodecName;
  urls: PlayUrls;
  players?: Array<{ id: string; address: string; protocol: string; since: string; bytes: number; userAgent: string }>;
};

export class StreamService {
  /** Forwards this process is starting: later joiners of the same channel wait for the same start. */
  private readonly starting = new Map<string, Promise<void>>();
  private readonly ticketWaiters = new Map<string, () => void>();

  constructor(private readonly o: StreamServiceOptions) {}

  /** A queued ticket was granted by this process's sweep or release: wake its waiter now. */
  wakeTicket(ticketId: string): void {
    this.ticketWaiters.get(ticketId)?.();
  }

  async open(principal: Principal, input: OpenStreamInput, idempotencyKey: string | undefined, signal?: AbortSignal): Promise<StreamView> {
    this.o.access.assert(principal, 'stream:create', { agencyId: principal.agencyId });
    const priority = input.priority ?? 'normal';
    const requestedCodec = input.codec ?? 'source';
    const channel = this.o.catalog.visibleChannel(principal, input.channelId);
    const agency = this.o.agencies.agency(principal.agencyId);
    if (!agency) throw notFound('agency');
    if (priority === 'emergency' && !agency.canPreempt) {
      await this.deny(principal, input, 'emergency-not-allowed');
      throw forbidden('your agency may not use emergency priority');
    }
    if (channel.status !== 'online') {
      await this.deny(principal, input, `channel-${channel.status}`);
      throw new DomainError('CHANNEL_OFFLINE', 409, `channel ${channel.id} is ${channel.status}`);
    }
    if (!channel.sourceUrl && !(channel.source === 'gb28181' && channel.deviceId)) {
      // A catalog entry without a source cannot be relayed: refused before any slot is taken.
      await this.deny(principal, input, 'source-invalid');
      throw new DomainError('CHANNEL_OFFLINE', 409, `channel ${channel.id} has no source the platform can relay`);
    }

    const result = await this.o.slots.openSession({
      sessionId: newId('s'),
      channelId: channel.id,
      principalId: principal.id,
      agencyId: principal.agencyId,
      purpose: input.purpose,
      priority,
      agencyQuota: agency.quotas.forwarding,
      mayPreempt: priority === 'emergency' && agency.canPreempt,
      ttlMs: this.o.leaseTtlMs,
      idempotencyKey,
      waitMs: (input.waitSeconds ?? 0) * 1000,
      ...(requestedCodec === 'h264' && { requestedCodec }),
    });

    let session: SessionLease;
    let newForward: boolean;
    if (result.kind === 'denied') {
      await this.deny(principal, input, result.reason === 'quota' ? 'agency-quota' : 'capacity');
      throw this.denial(result.reason, result.retryAfterMs);
    } else if (result.kind === 'queued') {
      const outcome = await this.awaitTicket(result.ticketId, (input.waitSeconds ?? 0) * 1000, signal);
      if (outcome.kind !== 'granted') {
        const reason = outcome.kind === 'denied' ? 'quota' : 'capacity';
        await this.deny(principal, input, outcome.kind === 'denied' ? 'agency-quota' : 'queue-timeout');
        throw this.denial(reason, 1000);
      }
      if (signal?.aborted) {
        // The client left after its ticket was granted: give the slot back at once.
        await this.end(outcome.session.id, 'released', principal);
        throw new DomainError('BAD_REQUEST', 400, 'client went away');
      }
      session = outcome.session;
      newForward = outcome.newForward;
    } else {
      session = result.session;
      newForward = result.newForward;
      if (result.preempted.length > 0 || result.closedForwards.length > 0) {
        await this.o.effects.apply(
          { endedSessions: result.preempted.map((s) => ({ session: s, reason: 'preempted' as const })), closedForwards: result.closedForwards },
          principal,
        );
      }
      if (result.replayed) {
        // API.md: the same key replays the same request. A key reused for another one is the client's
        // bug; handing back the first session would put its user on a channel it did not ask for.
        if (session.channelId !== channel.id || session.purpose !== input.purpose || session.priority !== priority || (session.requestedCodec ?? 'source') !== requestedCodec) {
          throw conflict('this Idempotency-Key was used for another request (channel, purpose, priority or codec) in the last 10 minutes');
        }
        return this.view(session);
      }
    }

    if (!this.o.grants.stillVisible(session)) {
      // The agency's grants narrowed while the slot was being taken: the re-check may have missed it.
      await this.o.grants.revokeSession(session).catch(() => this.giveBack(session.id));
      throw notFound('channel');
    }
    let view: StreamView;
    try {
      const codec = await this.ensureForward(channel, session, newForward, principal, input);
      if (requestedCodec === 'h264') {
        await startH264(this.o, channel.id, session.id, codec).catch(async (err: unknown) => {
          if (err instanceof DomainError && err.code === 'TRANSCODE_CAPACITY_EXHAUSTED') await this.deny(principal, input, 'transcode-capacity');
          throw err;
        });
      }
      // URLs before the grant goes on record: a grant is audited only once the client can be answered.
      view = await this.view(session);
      await this.o.audit.record({
        actor: actorOf(principal),
        action: 'stream.grant',
        target: `session:${session.id}`,
        outcome: 'ok',
        purpose: input.purpose,
        // In sorted key order, as the hashed canonical JSON has them: the chain then has nothing to sort.
        details: {
          agencyId: principal.agencyId,
          channelId: channel.id,
          ...(view.codec && { codec: view.codec }),
          fence: session.fence,
          priority,
          requestedCodec,
          shared: session.shared,
          ...(sessionPlays(session, this.o.catalog).rendition && { transcoded: true }),
        },
      });
    } catch (err) {
      // The client will never hear of this session (no grant on record, or no video): give its slot
      // back now instead of holding it until the lease lapses. A failed start already freed it.
      if (!(err instanceof ForwardStartFailure)) await this.giveBack(session.id);
      throw err instanceof ForwardStartFailure ? err.answer : err;
    }
    this.o.effects.capacityChanged();
    return view;
  }

  /** A failed heartbeat (session ended, expired or not the caller's) is audited: the client may be watching without a lease. */
  async heartbeat(principal: Principal, id: string): Promise<Pick<StreamView, 'expiresAt' | 'urls'>> {
    const session = await this.owned(principal, id, 'stream:read').catch(() => null);
    const renewed = session && (await this.o.slots.heartbeatSession(id, this.o.leaseTtlMs));
    if (!renewed) {
      await this.o.audit.record({ actor: actorOf(principal), action: 'stream.heartbeat', target: `session:${id}`, outcome: 'denied', reason: session ? 'ended' : 'not-found' });
      // Re-run the check so a role that may never heartbeat still gets its 403.
      await this.owned(principal, id, 'stream:read');
      throw notFound('session');
    }
    // Fresh URLs with the renewed expiry (API.md): a player that reconnects after its URL's token lapsed
    // needs one, although the session lives on.
    const { expiresAt, urls } = await this.view(renewed);
    return { expiresAt, urls };
  }

  async release(principal: Principal, id: string): Promise<void> {
    await this.owned(principal, id, 'stream:end');
    await this.end(id, 'released', principal);
  }

  /** The session with its current players (as its media node lists them; [] when the node does not answer). */
  async get(principal: Principal, id: string): Promise<StreamView> {
    const session = await this.owned(principal, id, 'stream:read');
    const [view, players] = await Promise.all([this.view(session), this.playersOf(session)]);
    return { ...view, players };
  }

  /** Cut one player of a session; the session and its other players go on (the URL still admits a new one). */
  async cutPlayer(principal: Principal, id: string, playerId: string): Promise<void> {
    const session = await this.owned(principal, id, 'stream:cut-player');
    const cut = await this.o.media.cutPlayer(session.id, session.channelId, playerId);
    await this.o.audit.record({
      actor: actorOf(principal),
      action: 'play.cut',
      target: `session:${id}`,
      outcome: cut ? 'ok' : 'error',
      ...(!cut && { reason: 'no-such-player' }),
      details: { sessionId: id, channelId: session.channelId, agencyId: session.agencyId, userId: session.principalId, playerId },
    });
    if (!cut) throw notFound('player');
  }

  /**
   * `players`: each session with its current players (an admin's sessions view), asked of the media plane
   * PLAYER_LOOKUPS at a time so a city-wide list does not open thousands of control requests at once.
   */
  async list(principal: Principal, scope: 'mine' | 'agency' | 'all', options: { players?: boolean } = {}): Promise<StreamView[]> {
    const width = scope === 'mine' ? { agencyId: principal.agencyId, ownerId: principal.id } : scope === 'agency' ? { agencyId: principal.agencyId } : {};
    this.o.access.assertList(principal, 'stream:read', width);
    const filter = scope === 'mine' ? { principalId: principal.id } : scope === 'agency' ? { agencyId: principal.agencyId } : {};
    const sessions = (await this.o.slots.listSessions(filter)).filter((s) => this.visibleOrRevoke(s)).sort((a, b) => a.createdAt - b.createdAt);
    const views = await Promise.all(sessions.map((s) => this.view(s)));
    if (!options.players) return views;
    const players = await inBatches(sessions, PLAYER_LOOKUPS, (s) => this.playersOf(s));
    return views.map((view, i) => ({ ...view, players: players[i]! }));
  }

  /** Ends one session for a reason and carries out what follows (players cut, audit, events). */
  async end(id: string, reason: EndReason, actor?: Principal): Promise<void> {
    const events = await this.o.slots.endSession(id, reason);
    if (!events) throw notFound('session');
    await this.o.effects.apply(events, actor);
  }

  /**
   * Best effort: the store may be the reason we are here; the lease still lapses on its own. A forward this
   * session was alone on closes now: a grant the client never heard of keeps no slot (API.md: "no slot is kept").
   */
  private async giveBack(sessionId: string): Promise<void> {
    try {
      const events = await this.o.slots.endSession(sessionId, 'released', { closeIdleForward: true });
      if (events) await this.o.effects.apply(events);
    } catch {
      // Expiry will free it.
    }
  }

  /** The session if the caller may act on it; 404 otherwise (other agencies' objects do not exist for them). */
  private async owned(principal: Principal, id: string, action: string): Promise<SessionLease> {
    this.o.access.assertRole(principal, action);
    const session = await this.o.slots.getSession(id);
    if (!session) throw notFound('session');
    this.o.access.assert(principal, action, { agencyId: session.agencyId, ownerId: session.principalId });
    if (!this.o.grants.stillVisible(session)) {
      // Defence in depth: a re-check after a grant change may not have reached this lease yet.
      await this.o.grants.revokeSession(session);
      throw notFound('session');
    }
    return session;
  }

  /** For listings: a session its agency may no longer see is ended (in the background) and left out. */
  private visibleOrRevoke(session: SessionLease): boolean {
    if (this.o.grants.stillVisible(session)) return true;
    this.o.grants.revokeSession(session).catch(() => undefined);
    return false;
  }

  /**
   * The first viewer starts the channel's forward; a joiner waits for that start, in this process or
   * (through the media plane) wherever it runs, so it never gets URLs of a relay that is not there.
   * A start that fails answers every viewer of it the same way, and frees their slots.
   */
  private async ensureForward(channel: Channel, session: SessionLease, newForward: boolean, principal: Principal, input: OpenStreamInput): Promise<VideoCodecName | undefined> {
    const key = `${channel.id}#${session.fence}`;
    let start = this.starting.get(key);
    if (!start) {
      const started = newForward
        ? this.o.media.startForward({
            channelId: channel.id,
            network: channel.network,
            sourceUrl: channel.sourceUrl ?? '',
            fence: session.fence,
            gb: channel.source === 'gb28181' && channel.deviceId ? { deviceId: channel.deviceId } : undefined,
          })
        : this.o.media.awaitForward({ channelId: channel.id, fence: session.fence });
      start = started.then(async (placement) => {
        if (placement && 'codec' in placement && placement.codec) await this.o.catalog.recordCodec(channel.id, placement.codec);
      }).finally(() => this.starting.delete(key));
      this.starting.set(key, start);
    }
    try {
      await start;
      return this.o.catalog.channel(channel.id)?.codec;
    } catch (err) {
      if (!(err instanceof ForwardStartError)) throw err;
      // No slot is kept for a relay that did not start: the forward and its sessions end now.
      await this.o.effects.apply(await this.o.slots.failForward(channel.id, session.fence));
      throw new ForwardStartFailure(await forwardStartFailed(this.o.audit, principal, err, { action: 'stream.deny', channelId: channel.id, purpose: input.purpose }));
    }
  }

  private async awaitTicket(ticketId: string, waitMs: number, signal?: AbortSignal) {
    const deadline = Date.now() + waitMs;
    const pollMs = this.o.ticketPollMs ?? 200;
    // One wake-up for the whole wait (a grant here, or the client leaving), registered once: a
    // listener per poll piled up on the request's signal (MaxListenersExceededWarning after 4 s).
    let resolvePause: (() => void) | undefined;
    let woken = false;
    const wake = () => {
      woken = true;
      resolvePause?.();
    };
    this.ticketWaiters.set(ticketId, wake);
    signal?.addEventListener('abort', wake, { once: true });
    try {
      while (Date.now() < deadline && !signal?.aborted) {
        woken = false;
        const outcome = await this.o.slots.ticketOutcome(ticketId);
        if (outcome.kind !== 'pending') return outcome;
        if (woken) continue; // woken while reading: read again at once
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => resolvePause?.(), Math.min(pollMs, Math.max(0, deadline - Date.now())));
          resolvePause = () => {
            clearTimeout(timer);
            resolvePause = undefined;
            resolve();
          };
        });
      }
    } finally {
      this.ticketWaiters.delete(ticketId);
      signal?.removeEventListener('abort', wake);
    }
    // Out of time or client gone: leave the queue, unless a grant raced in first.
    return this.o.slots.cancelTicket(ticketId);
  }

  private denial(reason: 'capacity' | 'quota', retryAfterMs: number): DomainError {
    if (reason === 'quota') return new DomainError('AGENCY_QUOTA_EXCEEDED', 429, 'your agency uses all of its forwarding quota');
    return new DomainError('FORWARDING_CAPACITY_EXHAUSTED', 503, 'all forwarding slots are in use', {
      'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
    });
  }

  private async deny(principal: Principal, input: OpenStreamInput, reason: string) {
    await this.o.audit.record({
      actor: actorOf(principal),
      action: 'stream.deny',
      target: `channel:${input.channelId}`,
      outcome: 'denied',
      reason,
      purpose: input.purpose,
      details: { channelId: input.channelId, agencyId: principal.agencyId, priority: input.priority ?? 'normal', requestedCodec: input.codec ?? 'source' },
    });
  }

  /** A session's players as its media node lists them; [] when the node does not answer (the session still shows). */
  private async playersOf(session: SessionLease): Promise<NonNullable<StreamView['players']>> {
    const players = await this.o.media.players(session.id, session.channelId).catch(() => []);
    return players.map((p) => ({ id: p.id, address: p.address, protocol: p.protocol, since: new Date(p.since).toISOString(), bytes: p.bytes, userAgent: p.userAgent }));
  }

  private async view(session: SessionLease): Promise<StreamView> {
    const { codec, rendition } = sessionPlays(session, this.o.catalog);
    return {
      id: session.id,
      channelId: session.channelId,
      userId: session.principalId,
      agencyId: session.agencyId,
      purpose: session.purpose,
      priority: session.priority,
      shared: session.shared,
      createdAt: isoTime(session.createdAt),
      expiresAt: isoTime(session.expiresAt),
      ...(codec && { codec }),
      urls: await this.o.media.playUrls({
        sessionId: session.id,
        channelId: session.channelId,
        fence: session.fence,
        expiresAt: session.expiresAt,
        ...(rendition && { rendition }),
      }),
    };
  }
}

/** A relay that did not start, already refused on record and its slot freed: carries the answer. */
class ForwardStartFailure extends Error {
  constructor(readonly answer: DomainError) {
    super(answer.message);
  }
}

/** Concurrent media-plane lookups of one session listing with players. */
const PLAYER_LOOKUPS = 16;

/** `work` over `items`, at most `width` at a time, results in the items' order. */
async function inBatches<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return results;
}

export const actorOf = (p: Principal) => ({ id: p.id, role: p.role, agencyId: p.agencyId });
