/**
 * What follows when leases end, forwards close or queued tickets are granted — wherever that was
 * decided (a release, a sweep, a preemption, a revocation): players are cut, relays stopped, the
 * audit log told (with the actor that caused it) and clients notified. One place, so every path
 * that frees a slot has the same consequences.
 */
import type { EndReason, Principal } from './model.js';
import type { MediaControl, SlotEvents, SlotStore } from './ports.js';
import type { AuditService } from './audit-service.js';
import type { EventBus } from './events.js';
import { analyticsStreamKey } from './stream-keys.js';
import { isoTime } from './iso-time.js';

const STREAM_END_ACTION: Record<EndReason, string> = {
  released: 'stream.release',
  expired: 'stream.expire',
  preempted: 'stream.preempt',
  revoked: 'stream.revoke',
  'source-failed': 'stream.source-failed',
};
const RESERVATION_END_ACTION: Record<EndReason, string> = {
  released: 'analytics.release',
  expired: 'analytics.expire',
  preempted: 'analytics.preempt',
  revoked: 'analytics.revoke',
  'source-failed': 'analytics.source-failed',
};

/** Capacity events are coalesced to at most this many per second (API.md). */
const CAPACITY_EVENTS_PER_SECOND = 2;

export interface LeaseEffectsOptions {
  slots: SlotStore;
  media: MediaControl;
  audit: AuditService;
  events: EventBus;
  /** A queued ticket was granted here: wake the request waiting for it, if it is in this process. */
  onTicketGranted: (ticketId: string) => void;
  log: { warn(obj: object, msg: string): void };
}

export class LeaseEffects {
  private capacityTimer: NodeJS.Timeout | undefined;
  private lastCapacityAt = 0;

  constructor(private readonly o: LeaseEffectsOptions) {}

  async apply(events: Partial<SlotEvents>, actor?: Principal): Promise<void> {
    const system = { id: 'system', role: 'system' as const, agencyId: 'platform' };
    const by = actor ? { id: actor.id, role: actor.role, agencyId: actor.agencyId } : system;
    const at = isoTime();
    let changed = false;

    for (const { session, reason } of events.endedSessions ?? []) {
      changed = true;
      this.media(() => this.o.media.disconnectSession(session.id, session.channelId, { userId: session.principalId, agencyId: session.agencyId }), 'disconnect players');
      await this.o.audit.record({
        actor: by,
        action: STREAM_END_ACTION[reason],
        target: `session:${session.id}`,
        outcome: 'ok',
        reason,
        purpose: session.purpose,
        // In sorted key order, as the hashed canonical JSON has them: the chain then has nothing to sort.
        details: {
          agencyId: session.agencyId,
          channelId: session.channelId,
          durationMs: Date.now() - session.createdAt,
          ...(reason === 'preempted' && actor && { preemptor: actor.id, preemptorAgency: actor.agencyId }),
          userId: session.principalId,
        },
      });
      this.o.events.publish({ type: 'stream.ended', at, id: session.id, channelId: session.channelId, reason, principalId: session.principalId, agencyId: session.agencyId });
    }
    for (const { reservation, reason } of events.endedReservations ?? []) {
      changed = true;
      const streamKey = analyticsStreamKey(reservation);
      this.media(() => this.o.media.disconnectSession(reservation.id, streamKey, { userId: reservation.principalId, agencyId: reservation.agencyId }), 'disconnect analytics player');
      this.media(() => this.o.media.stopForward(streamKey, reservation.fence), 'stop analytics relay');
      await this.o.audit.record({
        actor: by,
        action: RESERVATION_END_ACTION[reason],
        target: `reservation:${reservation.id}`,
        outcome: 'ok',
        reason,
        purpose: reservation.task,
        details: { channelId: reservation.channelId, agencyId: reservation.agencyId, userId: reservation.principalId },
      });
      this.o.events.publish({ type: 'reservation.ended', at, id: reservation.id, channelId: reservation.channelId, reason, principalId: reservation.principalId, agencyId: reservation.agencyId });
    }
    for (const { channelId, fence } of events.closedForwards ?? []) {
      changed = true;
      this.media(() => this.o.media.stopForward(channelId, fence), 'stop forward');
    }
    for (const { ticketId, session } of events.grantedTickets ?? []) {
      changed = true;
      this.o.onTicketGranted(ticketId);
      this.o.events.publish({ type: 'queue.granted', at, id: session.id, channelId: session.channelId, ticketId, principalId: session.principalId, agencyId: session.agencyId });
    }
    if ((events.droppedTickets ?? []).length > 0) changed = true;
    if (changed) this.capacityChanged();
  }

  /** Publishes a capacity event now, or once the coalescing window allows. */
  capacityChanged(): void {
    if (this.capacityTimer) return;
    const wait = Math.max(0, this.lastCapacityAt + 1000 / CAPACITY_EVENTS_PER_SECOND - Date.now());
    this.capacityTimer = setTimeout(() => {
      this.capacityTimer = undefined;
      this.lastCapacityAt = Date.now();
      this.o.slots.usage().then(
        (usage) => this.o.events.publish({ type: 'capacity', at: new Date().toISOString(), forwarding: usage.forwarding, analytics: usage.analytics }),
        (err: unknown) => this.o.log.warn({ err }, 'capacity event skipped'),
      );
    }, wait);
    this.capacityTimer.unref();
  }

  close(): void {
    clearTimeout(this.capacityTimer);
    this.capacityTimer = undefined;
  }

  /** Media calls must not hold up the decision that was already taken; failures are logged. */
  private media(call: () => Promise<void>, what: string) {
    call().catch((err: unknown) => this.o.log.warn({ err }, `media: ${what} failed`));
  }
}
