/**
 * Players are people (issue 9): every player a media node admitted or refused is on record, under the
 * session's user and agency (谁使用,谁负责). The nodes report what they see (session, channel, address,
 * user agent, bytes, seconds: MediaPlayerEvent); this turns each report into audit entries:
 *
 *   play.start    outcome ok      details {sessionId, kind: stream|analytics, channelId, userId, agencyId, playerId, address, protocol, userAgent, nodeId}
 *   play.end      outcome ok      … plus bytes, seconds (the usage report sums these)
 *   play.refused  outcome denied  reason (too-many-players, session-ended, …), address, user agent;
 *                 `suppressed`: the session's refusals the node only counted before this one
 *   play.events-missed outcome error  details {nodeId, missed}: the node dropped that many events unclaimed
 *                 (missed null: the embedded node died, so its unclaimed events and its players' ends are gone)
 *
 * The actor is the session's user, who answers for whoever played its URL (谁使用,谁负责): an operator's
 * own audit view shows its players, GET /audit?userId= finds them, and repeated refusals of one user's URL
 * are coalesced like every denial (one full entry per reason, then a count per minute) while another
 * user's refusals keep their own entry. When no owner is known the actor is the media node that saw it
 * (`media:<nodeId>`, role system). The session's user and agency are in the details as well (an agency's
 * audit view and the usage report read details.agencyId), and so is the node.
 *
 * The owner of a session is looked up in the slot store; an ended session is gone from it, so the node's
 * own stamp (the broker tells it the owner when it ends a session) comes first, and what this process
 * resolved before is kept for a while (bounded). A session none of these knows is recorded with its id
 * and channel and `userId: null`.
 */
import type { AuditDraft, Role } from './model.js';
import type { MediaPlayerEvent, MediaPlayerEvents, SlotStore } from './ports.js';
import type { AuditService } from './audit-service.js';
import { reservationOfStreamKey } from './stream-keys.js';

/** Sessions whose owner this process remembers after the store forgot them. */
const OWNERS_KEPT = 20_000;

type Owner = { userId: string; agencyId: string };

const ACTION: Record<MediaPlayerEvent['kind'], string> = { start: 'play.start', end: 'play.end', refused: 'play.refused' };

export interface PlayerAuditOptions {
  audit: AuditService;
  slots: Pick<SlotStore, 'getSession' | 'getReservation'>;
  /** The role of a principal (user or service account), for the actor; undefined when unknown. */
  roleOf?: (principalId: string) => Role | undefined;
  onError?: (err: unknown) => void;
}

export class PlayerAudit {
  readonly #owners = new Map<string, Owner>();
  #chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: PlayerAuditOptions) {}

  /** Queue one node's report; reports are written in the order they came. */
  take(report: MediaPlayerEvents): void {
    this.#chain = this.#chain
      .then(() => this.record(report))
      .catch((err: unknown) => this.o.onError?.(err));
  }

  /** Resolves when everything taken so far is written (tests, shutdown). */
  settled(): Promise<void> {
    return this.#chain;
  }

  async record(report: MediaPlayerEvents): Promise<void> {
    const drafts: AuditDraft[] = [];
    if (report.missed > 0) {
      drafts.push({
        actor: { id: `media:${report.nodeId}`, role: 'system', agencyId: 'platform' },
        action: 'play.events-missed',
        target: `media-node:${report.nodeId}`,
        outcome: 'error',
        reason: 'player events dropped before the broker claimed them',
        details: { nodeId: report.nodeId, missed: report.missed },
      });
    }
    if (report.nodeLost) {
      drafts.push({
        actor: { id: `media:${report.nodeId}`, role: 'system', agencyId: 'platform' },
        action: 'play.events-missed',
        target: `media-node:${report.nodeId}`,
        outcome: 'error',
        reason: 'media node lost: events it had not handed out are gone, and its players ended without play.end',
        details: { nodeId: report.nodeId, missed: null },
      });
    }
    for (const event of report.events) drafts.push(await this.#draft(report.nodeId, event));
    if (drafts.length > 0) await this.o.audit.record(...drafts);
  }

  async #draft(nodeId: string, event: MediaPlayerEvent): Promise<AuditDraft> {
    const reservationId = reservationOfStreamKey(event.channelId);
    const owner = await this.#ownerOf(event, reservationId !== null);
    return {
      actor: this.#actor(nodeId, owner),
      action: ACTION[event.kind],
      target: `session:${event.sessionId}`,
      outcome: event.kind === 'refused' ? 'denied' : 'ok',
      ...(event.reason !== undefined && { reason: event.reason }),
      details: {
        sessionId: event.sessionId,
        // An analytics reservation's relay has a player too (a machine, not a viewer: reports leave it out).
        kind: reservationId !== null ? 'analytics' : 'stream',
        channelId: reservationId !== null ? event.channelId.slice(0, event.channelId.length - reservationId.length - 1) : event.channelId,
        userId: owner?.userId ?? null,
        agencyId: owner?.agencyId ?? null,
        ...(event.playerId !== undefined && { playerId: event.playerId }),
        address: event.address,
        protocol: event.protocol,
        userAgent: event.userAgent,
        ...(event.bytes !== undefined && { bytes: event.bytes }),
        ...(event.seconds !== undefined && { seconds: event.seconds }),
        ...(event.suppressed !== undefined && { suppressed: event.suppressed }),
        nodeId,
        nodeSeq: event.seq,
        playerAt: new Date(event.at).toISOString(),
      },
    };
  }

  #actor(nodeId: string, owner: Owner | undefined): AuditDraft['actor'] {
    const role = owner && this.o.roleOf?.(owner.userId);
    if (owner && role) return { id: owner.userId, role, agencyId: owner.agencyId };
    return { id: `media:${nodeId}`, role: 'system', agencyId: owner?.agencyId ?? 'platform' };
  }

  async #ownerOf(event: MediaPlayerEvent, analytics: boolean): Promise<Owner | undefined> {
    if (event.userId !== undefined && event.agencyId !== undefined) return this.#remember(event.sessionId, { userId: event.userId, agencyId: event.agencyId });
    const known = this.#owners.get(event.sessionId);
    if (known) return known;
    const lease = analytics ? await this.o.slots.getReservation(event.sessionId) : await this.o.slots.getSession(event.sessionId);
    return lease ? this.#remember(event.sessionId, { userId: lease.principalId, agencyId: lease.agencyId }) : undefined;
  }

  #remember(sessionId: string, owner: Owner): Owner {
    if (!this.#owners.has(sessionId)) {
      this.#owners.set(sessionId, owner);
      if (this.#owners.size > OWNERS_KEPT) this.#owners.delete(this.#owners.keys().next().value as string);
    }
    return owner;
  }
}
