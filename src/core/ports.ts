/**
 * The ports the core needs. Adapters: src/store/memory (embedded, files under the data dir) and
 * src/store/redis (node-redis + Lua). The core never imports an adapter.
 */
import type { AuditDraft, AuditEntry, EndReason, Priority, StreamCodecRequest, VideoCodecName } from './model.js';

// ---------------------------------------------------------------------------------------------
// Documents: agencies, users, service accounts, channels, policy lines, meta.
// ---------------------------------------------------------------------------------------------

export type Collection = 'agencies' | 'users' | 'serviceAccounts' | 'channels' | 'policy' | 'meta' | 'gbDevices';

export interface PutOptions {
  /** Fail with a ConflictError unless no document with this id exists yet. */
  ifAbsent?: boolean;
  /**
   * Enforce a unique secondary key atomically with the write (e.g. index 'username', key 'alice').
   * Another document of the collection holding the same key → ConflictError, nothing written.
   */
  unique?: { index: string; key: string };
}

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export interface DocumentChange {
  collection: Collection;
  id: string;
  /** The new document (full), or null when deleted. */
  doc: unknown;
}

export interface DocumentStore {
  all<T>(collection: Collection): Promise<T[]>;
  get<T>(collection: Collection, id: string): Promise<T | undefined>;
  /** Durable when the promise resolves (fsync'd journal / Redis reply). */
  put<T>(collection: Collection, id: string, doc: T, options?: PutOptions): Promise<void>;
  /** Bulk upsert (catalog import). Durable when resolved. */
  putMany<T>(collection: Collection, docs: ReadonlyArray<{ id: string; doc: T }>): Promise<void>;
  delete(collection: Collection, id: string): Promise<void>;
  /** Changes written by *other* broker processes (Redis pub/sub). The memory store never calls it. */
  onRemoteChange(listener: (change: DocumentChange) => void): void;
}

// ---------------------------------------------------------------------------------------------
// Audit: append-only hash chain. hash = sha256(prevHash + canonicalJson(entry without hash)).
// ---------------------------------------------------------------------------------------------

export interface AuditQuery {
  agencyId?: string;
  userId?: string;
  channelId?: string;
  action?: string;
  /** ISO bounds, inclusive. */
  from?: string;
  to?: string;
  /** Return entries with seq < beforeSeq (newest first paging). */
  beforeSeq?: number;
  limit: number;
}

export interface AuditStore {
  /** Appends in order, chained after the current head; durable when resolved. */
  append(drafts: readonly AuditDraft[]): Promise<AuditEntry[]>;
  /** Newest first. */
  query(q: AuditQuery): Promise<AuditEntry[]>;
  /** Oldest first, every entry (verify, reports). */
  scan(): AsyncIterable<AuditEntry>;
  /** The newest entry's position and time (`at` exactly as in the entry); seq 0, no `at` for the empty log. */
  head(): Promise<{ seq: number; hash: string; at?: string }>;
}

// ---------------------------------------------------------------------------------------------
// Slots: forwarding (distinct channels) and analytics (reservations) pools, as leases.
// All times are epoch milliseconds taken from the store's clock (Redis TIME in the Redis store).
// ---------------------------------------------------------------------------------------------

export interface SessionLease {
  id: string;
  channelId: string;
  principalId: string;
  agencyId: string;
  purpose: string;
  priority: Priority;
  /** True when the session joined a channel that was already being forwarded. */
  shared: boolean;
  createdAt: number;
  expiresAt: number;
  /** Fencing token of the channel's forward (one INCR per new forward). */
  fence: number;
  /** What the client asked to play (API.md Streams `codec`); absent: `source`. */
  requestedCodec?: StreamCodecRequest;
}

export interface ReservationLease {
  id: string;
  channelId: string;
  principalId: string;
  agencyId: string;
  task: string;
  ttlMs: number;
  createdAt: number;
  expiresAt: number;
  fence: number;
}

export interface OpenSessionRequest {
  sessionId: string;
  channelId: string;
  principalId: string;
  agencyId: string;
  purpose: string;
  priority: Priority;
  /** The agency's forwarding quota (distinct channels). */
  agencyQuota: number;
  /** Caller checked canPreempt already; emergency + full pool → preempt a victim. */
  mayPreempt: boolean;
  ttlMs: number;
  /** Same principal + key within 10 minutes → the same session, nothing new taken. */
  idempotencyKey?: string;
  /** > 0: when the pool is full, queue for up to this long (the caller then awaits the ticket). */
  waitMs: number;
  /** Kept on the session (absent: `source`). */
  requestedCodec?: StreamCodecRequest;
}

export type OpenSessionResult =
  | {
      kind: 'granted';
      session: SessionLease;
      /** True when this call created the channel's forward (the media plane must start it). */
      newForward: boolean;
      /** True when this is a replay of an earlier idempotent request. */
      replayed: boolean;
      /** Sessions ended to make room (emergency preemption). */
      preempted: SessionLease[];
      /** Forwards closed at once to make room (the preempted one, or an idle lingering one reclaimed): stop their relays. */
      closedForwards: Array<{ channelId: string; fence: number }>;
    }
  | { kind: 'queued'; ticketId: string; position: number }
  | { kind: 'denied'; reason: 'capacity' | 'quota'; retryAfterMs: number };

export type TicketOutcome =
  | { kind: 'granted'; session: SessionLease; newForward: boolean }
  | { kind: 'denied'; reason: 'quota' }
  | { kind: 'timeout' }
  | { kind: 'pending' };

export interface OpenReservationRequest {
  reservationId: string;
  channelId: string;
  principalId: string;
  agencyId: string;
  task: string;
  agencyQuota: number;
  ttlMs: number;
}

export type OpenReservationResult =
  | { kind: 'granted'; reservation: ReservationLease }
  | { kind: 'denied'; reason: 'capacity' | 'quota'; retryAfterMs: number };

export interface EndedSession {
  session: SessionLease;
  reason: EndReason;
}
export interface EndedReservation {
  reservation: ReservationLease;
  reason: EndReason;
}

/** What a sweep (or any call that frees things) reports, so the caller can audit, notify and stop relays. */
export interface SlotEvents {
  endedSessions: EndedSession[];
  endedReservations: EndedReservation[];
  /** Forwards whose idle linger ran out (or that were force-closed): stop the relay. */
  closedForwards: Array<{ channelId: string; fence: number }>;
  /** Queued tickets granted because slots freed up. */
  grantedTickets: Array<{ ticketId: string; session: SessionLease; newForward: boolean }>;
  /** Tickets dropped (deadline passed or quota no longer allows). */
  droppedTickets: Array<{ ticketId: string; reason: 'timeout' | 'quota' }>;
}

export interface PoolUsage {
  forwarding: { limit: number; used: number; queued: number };
  analytics: { limit: number; used: number };
  /** Per agency: distinct channels its sessions are on, reservations held. */
  agencies: Record<string, { forwarding: number; analytics: number }>;
}

export interface SlotStore {
  openSession(req: OpenSessionRequest): Promise<OpenSessionResult>;
  /** Poll a queued ticket. */
  ticketOutcome(ticketId: string): Promise<TicketOutcome>;
  /** Leave the queue (timeout or client gone). If the ticket was granted meanwhile, returns that grant. */
  cancelTicket(ticketId: string): Promise<TicketOutcome>;
  /** Extends the lease by its TTL; null when the session is unknown or ended. */
  heartbeatSession(sessionId: string, ttlMs: number): Promise<SessionLease | null>;
  /**
   * `closeIdleForward`: when it was the forward's last session, the forward closes now instead of lingering
   * (a grant that could not be completed must not hold a slot for BROKER_IDLE_CLOSE_SECONDS).
   */
  endSession(sessionId: string, reason: EndReason, options?: { closeIdleForward?: boolean }): Promise<SlotEvents | null>;
  getSession(sessionId: string): Promise<SessionLease | null>;
  listSessions(filter: { agencyId?: string; principalId?: string }): Promise<SessionLease[]>;
  /** Revocation: end every session and reservation of a principal. */
  endAllOf(principalId: string, reason: EndReason): Promise<SlotEvents>;
  /** The relay could not start or died: end the channel's sessions and free its slot now. */
  failForward(channelId: string, fence: number): Promise<SlotEvents>;

  openReservation(req: OpenReservationRequest): Promise<OpenReservationResult>;
  heartbeatReservation(reservationId: string): Promise<ReservationLease | null>;
  endReservation(reservationId: string, reason: EndReason): Promise<SlotEvents | null>;
  getReservation(reservationId: string): Promise<ReservationLease | null>;
  listReservations(filter: { agencyId?: string; principalId?: string }): Promise<ReservationLease[]>;

  /** Expire lapsed leases, close idle forwards, serve the queue. Any live broker may call it. */
  sweep(): Promise<SlotEvents>;
  usage(): Promise<PoolUsage>;
  /** Current forward of a channel (fence), if any. */
  forwardOf(channelId: string): Promise<{ fence: number; sessions: number } | null>;
  now(): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// Media plane.
// ---------------------------------------------------------------------------------------------

export interface PlayUrls {
  flv: string;
  wsFlv: string;
}

export interface MediaNodeLoad {
  id: string;
  baseUrl: string;
  networks: string[];
  maxForwards: number;
  forwards: number;
  players: number;
  bytesPerSecond: number;
  alive: boolean;
}

/** A player connected to a session's URL, as its media node sees it (GET /streams/:id `players`). */
export interface MediaPlayer {
  id: string;
  /** The client's address as the media node sees it. */
  address: string;
  protocol: 'http-flv' | 'ws-flv' | 'rtmp';
  userAgent: string;
  /** ms since the epoch. */
  since: number;
  /** Media bytes sent to it so far. */
  bytes: number;
}

/** One player event of a media node (src/media/player-events.ts): start, end, or a refused good token. */
export interface MediaPlayerEvent {
  seq: number;
  kind: 'start' | 'end' | 'refused';
  at: number;
  sessionId: string;
  channelId: string;
  playerId?: string;
  address: string;
  protocol: MediaPlayer['protocol'];
  userAgent: string;
  bytes?: number;
  seconds?: number;
  reason?: string;
  /** Refusals of the same session the node counted instead of queueing since its last queued one. */
  suppressed?: number;
  /** Set when the session ended through the broker, which told the node whose it was. */
  userId?: string;
  agencyId?: string;
}

/** What one poll of one media node brought: its new player events, and how many it had to drop unclaimed. */
export interface MediaPlayerEvents {
  nodeId: string;
  events: MediaPlayerEvent[];
  missed: number;
  /** The node process died: what it had not handed out is gone, and its players ended unrecorded. */
  nodeLost?: boolean;
}

/** Where a forward runs, as its start answered: the node, and what its camera sends (once the node saw it). */
export interface ForwardPlacement {
  nodeId: string;
  codec?: VideoCodecName;
}

export interface MediaControl {
  /**
   * Start relaying a channel (idempotent per fence). Resolves once the source sent its first media
   * data; rejects with a ForwardStartError naming the cause (SourceUnavailableError when nothing came
   * within the source timeout, MediaUnavailableError when no node could take it, SourceInvalidError
   * for a source URL no node relays).
   */
  startForward(input: { channelId: string; network: string; sourceUrl: string; fence: number; gb?: { deviceId: string } }): Promise<ForwardPlacement>;
  /**
   * A viewer joining a forward that another broker created: resolves once that forward (this fence)
   * has started, wherever it was started; rejects with the ForwardStartError its start failed with.
   * Bounded by the source timeout (plus slack). Adapters with one broker per node resolve at once:
   * in-process joiners already share the start.
   */
  awaitForward(input: { channelId: string; fence: number }): Promise<void>;
  stopForward(channelId: string, fence: number): Promise<void>;
  /**
   * Cut the players of one session (release, expiry, preemption, revocation). `owner` goes to the node,
   * which stamps it on the players' play.end events (the session is gone from the store by then).
   */
  disconnectSession(sessionId: string, channelId: string, owner?: { userId: string; agencyId: string }): Promise<void>;
  /** The session's current players on the node that forwards its channel ([] when none or no media plane). */
  players(sessionId: string, channelId: string): Promise<MediaPlayer[]>;
  /** Cut one player of the session; the session and its other players go on. False when no such player. */
  cutPlayer(sessionId: string, channelId: string, playerId: string): Promise<boolean>;
  /** Player events as the nodes report them (each event once per broker fleet, see player-events.ts). */
  onPlayerEvents(listener: (report: MediaPlayerEvents) => void): void;
  /**
   * Makes the channel's H.264 rendition play for the session: its H.265 forward is transcoded once on its
   * node, shared by every H.264 viewer, stopped when the last of their sessions ends (disconnectSession).
   * Resolves false when the forward is not H.265 (its source is H.264 already: nothing to transcode);
   * rejects with TranscodeCapacityExhaustedError when the node's budget is spent, MediaUnavailableError when
   * the node cannot be asked or the transcoder does not start.
   */
  startTranscode(input: { sessionId: string; channelId: string }): Promise<boolean>;
  /** `rendition: 'h264'`: URLs of the channel's transcoded H.264 stream (same token rules). */
  playUrls(input: { sessionId: string; channelId: string; fence: number; expiresAt: number; rendition?: 'h264' }): Promise<PlayUrls>;
  /** Called when a forward ends on its own (source failed, node died). */
  onForwardFailed(listener: (channelId: string, fence: number) => void): void;
  /**
   * Called when a channel's H.264 transcode was given up on its node (its transcoder kept dying past the
   * node's restart limit), with the sessions it played for: they end `source-failed`, as on a failed source.
   */
  onTranscodeFailed(listener: (channelId: string, sessionIds: string[]) => void): void;
  nodes(): Promise<MediaNodeLoad[]>;
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Why a relay could not start. Each media adapter translates what its node answered into one of
 * these, once, where it speaks to the node (media-node-client.ts); the core answers each the same way
 * for streams and reservations (source-unavailable.ts). The cause matters: it is what the audit log
 * states and what the caller is told to do.
 */
export abstract class ForwardStartError extends Error {}

/** The source (the camera) sent nothing within the source timeout: 504 SOURCE_UNAVAILABLE. */
export class SourceUnavailableError extends ForwardStartError {
  constructor(message: string) {
    super(message);
    this.name = 'SourceUnavailableError';
  }
}

/**
 * No media node could take the relay: none reachable or registered for the channel's network, none
 * with room, one restarting or refusing our control secret. The platform's fault, not the camera's:
 * 503 UNAVAILABLE.
 */
export class MediaUnavailableError extends ForwardStartError {
  constructor(message: string) {
    super(message);
    this.name = 'MediaUnavailableError';
  }
}

/** The media node that forwards the channel runs all the transcodes it may: 503 TRANSCODE_CAPACITY_EXHAUSTED. */
export class TranscodeCapacityExhaustedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TranscodeCapacityExhaustedError';
  }
}

/** The channel's source URL is empty or not one a node relays: the catalog must be fixed (409 CHANNEL_OFFLINE). */
export class SourceInvalidError extends ForwardStartError {
  constructor(message: string) {
    super(message);
    this.name = 'SourceInvalidError';
  }
}

// ---------------------------------------------------------------------------------------------
// Access control (implemented by src/authz with Casbin).
// ---------------------------------------------------------------------------------------------

export type Visibility = 'all' | { readonly classes: readonly number[]; readonly networks: readonly string[] };

/** What an object is to the caller: its own, its agency's, any agency's (narrowest first). */
export type AccessScope = 'self' | 'own' | 'any';

export interface AccessTarget {
  /** The agency the object belongs to. */
  agencyId?: string;
  /** The principal that owns the object (a session's user, a reservation's service). */
  ownerId?: string;
}

export interface AccessControl {
  can(principal: import('./model.js').Principal, action: string, target: AccessTarget): boolean;
  /** Throws 403 FORBIDDEN when the role may never act so, 404 NOT_FOUND when the object is outside its reach. */
  assert(principal: import('./model.js').Principal, action: string, target: AccessTarget): void;
  /** The 403 half alone: call it before looking an object up, so 404 vs 403 never tells it exists. */
  assertRole(principal: import('./model.js').Principal, action: string): void;
  /** The widest scope the role may act at (what its lists cover); 403 FORBIDDEN when it may never act so. */
  reach(principal: import('./model.js').Principal, action: string): AccessScope;
  /** 403 FORBIDDEN unless the role reaches `target` ({} every agency, {agencyId} one, with ownerId its own): lists. */
  assertList(principal: import('./model.js').Principal, action: string, target: AccessTarget): void;
  canSee(agencyId: string, channel: { class: number; network: string }): boolean;
  visibility(agencyId: string): Visibility;
  setAgencyGrants(agencyId: string, classes: number[], networks: string[]): Promise<void>;
}
