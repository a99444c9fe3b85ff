/**
 * The embedded analytics pool: one reservation = one slot, counted against the pool and the agency's quota.
 * Part of MemorySlotStore (same clock, same one-event-loop atomicity); mirrored by
 * src/store/redis/lua/pool-analytics.lua.
 */
import type { EndReason } from '../../core/model.js';
import { QUOTA_RETRY_AFTER_MS, capacityRetryAfterMs } from '../../core/pool-rules.js';
import type { OpenReservationRequest, OpenReservationResult, ReservationLease, SlotEvents } from '../../core/ports.js';

export class MemoryAnalyticsPool {
  readonly #reservations = new Map<string, ReservationLease>();
  readonly #agencyReservations = new Map<string, number>();
  #lastFence = 0;

  constructor(
    readonly limit: number,
    private readonly clock: () => number,
  ) {}

  /** Never one more than the limit: a reservation is only added while `size < limit`. */
  open(req: OpenReservationRequest): OpenReservationResult {
    const now = this.clock();
    if ((this.#agencyReservations.get(req.agencyId) ?? 0) >= req.agencyQuota) {
      return { kind: 'denied', reason: 'quota', retryAfterMs: QUOTA_RETRY_AFTER_MS };
    }
    if (this.#reservations.size >= this.limit) {
      let nextFreeAt: number | null = null;
      for (const r of this.#reservations.values()) nextFreeAt = Math.min(nextFreeAt ?? r.expiresAt, r.expiresAt);
      return { kind: 'denied', reason: 'capacity', retryAfterMs: capacityRetryAfterMs(now, nextFreeAt) };
    }
    const reservation: ReservationLease = {
      id: req.reservationId,
      channelId: req.channelId,
      principalId: req.principalId,
      agencyId: req.agencyId,
      task: req.task,
      ttlMs: req.ttlMs,
      createdAt: now,
      expiresAt: now + req.ttlMs,
      fence: ++this.#lastFence,
    };
    this.#reservations.set(reservation.id, reservation);
    this.#agencyReservations.set(req.agencyId, (this.#agencyReservations.get(req.agencyId) ?? 0) + 1);
    return { kind: 'granted', reservation: { ...reservation } };
  }

  heartbeat(reservationId: string): ReservationLease | null {
    const now = this.clock();
    const reservation = this.#reservations.get(reservationId);
    // A lapsed lease is dead even before the sweep reports it: a late heartbeat must not revive it.
    if (!reservation || reservation.expiresAt <= now) return null;
    reservation.expiresAt = now + reservation.ttlMs;
    return { ...reservation };
  }

  get(reservationId: string): ReservationLease | null {
    const reservation = this.#reservations.get(reservationId);
    return reservation ? { ...reservation } : null;
  }

  list(filter: { agencyId?: string; principalId?: string }): ReservationLease[] {
    return [...this.#reservations.values()]
      .filter((r) => (filter.agencyId === undefined || r.agencyId === filter.agencyId) && (filter.principalId === undefined || r.principalId === filter.principalId))
      .map((r) => ({ ...r }));
  }

  /** Ends the reservations matching `which`; false when none did. */
  end(which: (reservation: ReservationLease) => boolean, reason: EndReason, events: SlotEvents): boolean {
    let ended = false;
    for (const reservation of [...this.#reservations.values()]) {
      if (!which(reservation)) continue;
      this.#reservations.delete(reservation.id);
      const held = (this.#agencyReservations.get(reservation.agencyId) ?? 0) - 1;
      if (held > 0) this.#agencyReservations.set(reservation.agencyId, held);
      else this.#agencyReservations.delete(reservation.agencyId);
      events.endedReservations.push({ reservation: { ...reservation }, reason });
      ended = true;
    }
    return ended;
  }

  sweep(events: SlotEvents): void {
    const now = this.clock();
    this.end((r) => r.expiresAt <= now, 'expired', events);
  }

  get used(): number {
    return this.#reservations.size;
  }

  heldByAgency(): ReadonlyMap<string, number> {
    return this.#agencyReservations;
  }
}
