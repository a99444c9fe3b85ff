/**
 * What an agency may see can narrow while it watches: its networks or classes are changed, or a
 * channel is given another class. API.md: within a second its live sessions and reservations on
 * channels it may no longer see end with reason `revoked`.
 *
 * One mechanism for every such change, wherever it was made: the broker that made it and every
 * broker that hears of it (policy reload, remote channel change) re-check the live leases concerned
 * against the authorizer and end those no longer visible through the slot store. Ending is atomic in
 * the store, so when several brokers race only one gets the ended lease back and carries out its
 * effects (players cut, slot freed, audit, events); the others get null and do nothing.
 * @see ../shared/API.md "Agencies", "Channels"
 */
import type { Channel } from './model.js';
import type { AccessControl, ReservationLease, SessionLease, SlotStore } from './ports.js';
import type { LeaseEffects } from './lease-effects.js';

/** The platform's own agency watches everything (its admins see the whole catalog). */
const PLATFORM_AGENCY = 'platform';

/** Which leases a change may concern: one agency's, one channel's, or all (a reload names neither). */
export type GrantScope = { agencyId: string } | { channelId: string } | 'all';

export interface GrantRevocationOptions {
  slots: SlotStore;
  access: Pick<AccessControl, 'canSee'>;
  /** The channel as the catalog knows it now (undefined: gone from the catalog). */
  channel(id: string): Channel | undefined;
  effects: LeaseEffects;
  log: { warn(obj: object, msg: string): void };
}

export class GrantRevocation {
  private pending = new Set<GrantScope>();
  private running: Promise<void> | undefined;

  constructor(private readonly o: GrantRevocationOptions) {}

  /** May the lease's agency still see its channel? The one question heartbeats and reads ask too. */
  stillVisible(lease: { agencyId: string; channelId: string }): boolean {
    if (lease.agencyId === PLATFORM_AGENCY) return true;
    const channel = this.o.channel(lease.channelId);
    return channel !== undefined && this.o.access.canSee(lease.agencyId, channel);
  }

  /**
   * Queues a re-check after a grant change and returns at once (listeners of policy and catalog
   * changes are synchronous). Changes arriving while one runs are merged into the next pass.
   */
  changed(scope: GrantScope): void {
    this.pending.add(scope);
    if (!this.running) this.running = this.drain();
  }

  /** Resolves when every queued re-check has run (tests, close). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Ends a session its agency may no longer see; if another broker or path ended it first, nothing happens. */
  async revokeSession(session: SessionLease): Promise<void> {
    const events = await this.o.slots.endSession(session.id, 'revoked');
    if (events) await this.o.effects.apply(events);
  }

  async revokeReservation(reservation: ReservationLease): Promise<void> {
    const events = await this.o.slots.endReservation(reservation.id, 'revoked');
    if (events) await this.o.effects.apply(events);
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.size > 0) {
        const scopes = [...this.pending];
        this.pending = new Set();
        try {
          await this.recheck(scopes);
        } catch (err) {
          // The store may be down; heartbeats and reads re-check each lease on their own meanwhile.
          this.o.log.warn({ err }, 'grant re-check failed; live leases are re-checked on their next heartbeat');
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  private async recheck(scopes: GrantScope[]): Promise<void> {
    const all = scopes.includes('all');
    const agencies = new Set(scopes.flatMap((s) => (s !== 'all' && 'agencyId' in s ? [s.agencyId] : [])));
    const channels = new Set(scopes.flatMap((s) => (s !== 'all' && 'channelId' in s ? [s.channelId] : [])));
    const concerned = (lease: { agencyId: string; channelId: string }) => all || agencies.has(lease.agencyId) || channels.has(lease.channelId);
    // One listing each when a channel or several agencies are concerned; per agency otherwise.
    const filters = all || channels.size > 0 || agencies.size !== 1 ? [{}] : [...agencies].map((agencyId) => ({ agencyId }));
    for (const filter of filters) {
      const [sessions, reservations] = await Promise.all([this.o.slots.listSessions(filter), this.o.slots.listReservations(filter)]);
      for (const session of sessions) if (concerned(session) && !this.stillVisible(session)) await this.revokeSession(session);
      for (const reservation of reservations) if (concerned(reservation) && !this.stillVisible(reservation)) await this.revokeReservation(reservation);
    }
  }
}
