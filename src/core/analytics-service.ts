/**
 * Analytics reservations: one reservation = one analytics slot, bound to the service (or admin)
 * that asked, its agency and its task. They use no forwarding slot.
 * @see ../shared/API.md "Analytics", "Capacity"
 */
import type { Channel, Principal } from './model.js';
import { ForwardStartError, type AccessControl, type MediaControl, type ReservationLease, type SlotStore } from './ports.js';
import type { AuditService } from './audit-service.js';
import type { CatalogService } from './catalog-service.js';
import type { LeaseEffects } from './lease-effects.js';
import type { GrantRevocation } from './grant-revocation.js';
import type { AgencyLookup } from './stream-service.js';
import { actorOf } from './stream-service.js';
import { DomainError, notFound } from './errors.js';
import { analyticsStreamKey } from './stream-keys.js';
import { forwardStartFailed } from './source-unavailable.js';
import { newId } from './ids.js';

export interface ReservationView {
  id: string;
  channelId: string;
  task: string;
  agencyId: string;
  serviceId: string;
  createdAt: string;
  expiresAt: string;
  streamUrl: string;
}

export const DEFAULT_RESERVATION_TTL_SECONDS = 300;


export class AnalyticsService {
  constructor(
    private readonly o: {
      slots: SlotStore;
      media: MediaControl;
      access: AccessControl;
      audit: AuditService;
      catalog: CatalogService;
      agencies: AgencyLookup & { listIds(): string[] };
      effects: LeaseEffects;
      /** Visibility of a live reservation's channel to its agency, re-checked on every read. */
      grants: GrantRevocation;
    },
  ) {}

  async reserve(principal: Principal, input: { channelId: string; task: string; ttlSeconds?: number }): Promise<ReservationView> {
    this.o.access.assert(principal, 'analytics:create', { agencyId: principal.agencyId, ownerId: principal.id });
    const channel = this.o.catalog.visibleChannel(principal, input.channelId);
    const agency = this.o.agencies.agency(principal.agencyId);
    if (!agency) throw notFound('agency');
    const ttlMs = (input.ttlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS) * 1000;
    if (!channel.sourceUrl) {
      // A catalog entry without a source cannot be relayed: refused before any slot is taken.
      await this.o.audit.record({
        actor: actorOf(principal),
        action: 'analytics.deny',
        target: `channel:${channel.id}`,
        outcome: 'denied',
        reason: 'source-invalid',
        purpose: input.task,
        details: { channelId: channel.id, agencyId: principal.agencyId },
      });
      throw new DomainError('CHANNEL_OFFLINE', 409, `channel ${channel.id} has no source the platform can relay`);
    }
    const result = await this.o.slots.openReservation({
      reservationId: newId('r'),
      channelId: channel.id,
      principalId: principal.id,
      agencyId: principal.agencyId,
      task: input.task,
      agencyQuota: agency.quotas.analytics,
      ttlMs,
    });
    if (result.kind === 'denied') {
      await this.o.audit.record({
        actor: actorOf(principal),
        action: 'analytics.deny',
        target: `channel:${channel.id}`,
        outcome: 'denied',
        reason: result.reason === 'quota' ? 'agency-quota' : 'capacity',
        purpose: input.task,
        details: { channelId: channel.id, agencyId: principal.agencyId },
      });
      if (result.reason === 'quota') throw new DomainError('AGENCY_QUOTA_EXCEEDED', 429, 'your agency uses all of its analytics quota');
      throw new DomainError('ANALYTICS_CAPACITY_EXHAUSTED', 503, 'all analytics slots are in use', {
        'retry-after': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))),
      });
    }
    const reservation = result.reservation;
    if (!this.o.grants.stillVisible(reservation)) {
      // The agency's grants narrowed while the slot was being taken.
      await this.o.grants.revokeReservation(reservation).catch(() => null);
      throw notFound('channel');
    }
    try {
      await this.startRelay(channel, reservation);
    } catch (err) {
      if (!(err instanceof ForwardStartError)) {
        await this.o.slots.endReservation(reservation.id, 'released').catch(() => null);
        throw err;
      }
      // No slot is kept for a relay that did not start.
      await this.o.slots.endReservation(reservation.id, 'source-failed').catch(() => null);
      throw await forwardStartFailed(this.o.audit, principal, err, { action: 'analytics.deny', channelId: channel.id, purpose: input.task });
    }
    try {
      await this.o.audit.record({
        actor: actorOf(principal),
        action: 'analytics.grant',
        target: `reservation:${reservation.id}`,
        outcome: 'ok',
        purpose: input.task,
        details: { channelId: channel.id, agencyId: principal.agencyId, ttlSeconds: ttlMs / 1000 },
      });
    } catch (err) {
      // No grant on record: the service never hears of it, so the slot goes back now (best effort;
      // otherwise its lease lapses).
      await this.o.slots.endReservation(reservation.id, 'released').catch(() => null);
      throw err;
    }
    this.o.effects.capacityChanged();
    return this.view(reservation);
  }

  async heartbeat(principal: Principal, id: string): Promise<{ expiresAt: string }> {
    const reservation = await this.owned(principal, id, 'analytics:read').catch(() => null);
    const renewed = reservation && (await this.o.slots.heartbeatReservation(id));
    if (!renewed) {
      await this.o.audit.record({ actor: actorOf(principal), action: 'analytics.heartbeat', target: `reservation:${id}`, outcome: 'denied', reason: reservation ? 'ended' : 'not-found' });
      await this.owned(principal, id, 'analytics:read');
      throw notFound('reservation');
    }
    return { expiresAt: new Date(renewed.expiresAt).toISOString() };
  }

  async release(principal: Principal, id: string): Promise<void> {
    await this.owned(principal, id, 'analytics:end');
    const events = await this.o.slots.endReservation(id, 'released');
    if (!events) throw notFound('reservation');
    await this.o.effects.apply(events, principal);
  }

  async get(principal: Principal, id: string): Promise<ReservationView> {
    return this.view(await this.owned(principal, id, 'analytics:read'));
  }

  async list(principal: Principal): Promise<ReservationView[]> {
    const reach = this.o.access.reach(principal, 'analytics:read');
    const filter = reach === 'any' ? {} : reach === 'own' ? { agencyId: principal.agencyId } : { principalId: principal.id };
    const all = (await this.o.slots.listReservations(filter)).filter((r) => {
      if (this.o.grants.stillVisible(r)) return true;
      this.o.grants.revokeReservation(r).catch(() => undefined);
      return false;
    });
    return Promise.all(all.sort((a, b) => a.createdAt - b.createdAt).map((r) => this.view(r)));
  }

  /** GET /capacity: platform-admins see every agency and the media nodes' load, others their own agency. */
  async capacity(principal: Principal) {
    const reach = this.o.access.reach(principal, 'capacity:read');
    const usage = await this.o.slots.usage();
    const ids = reach === 'any' ? this.o.agencies.listIds() : [principal.agencyId];
    return {
      ...(this.o.access.can(principal, 'media:read', {}) && { mediaNodes: await this.o.media.nodes() }),
      forwarding: usage.forwarding,
      analytics: usage.analytics,
      agencies: ids.map((id) => {
        const quotas = this.o.agencies.agency(id)?.quotas ?? { forwarding: 0, analytics: 0 };
        const used = usage.agencies[id] ?? { forwarding: 0, analytics: 0 };
        return { id, forwarding: { used: used.forwarding, quota: quotas.forwarding }, analytics: { used: used.analytics, quota: quotas.analytics } };
      }),
    };
  }

  private async owned(principal: Principal, id: string, action: string): Promise<ReservationLease> {
    this.o.access.assertRole(principal, action);
    const reservation = await this.o.slots.getReservation(id);
    if (!reservation) throw notFound('reservation');
    this.o.access.assert(principal, action, { agencyId: reservation.agencyId, ownerId: reservation.principalId });
    if (!this.o.grants.stillVisible(reservation)) {
      // Defence in depth: a re-check after a grant change may not have reached this lease yet.
      await this.o.grants.revokeReservation(reservation);
      throw notFound('reservation');
    }
    return reservation;
  }

  /**
   * A reservation gets its own relay on the media plane, under its own stream key, so it takes no
   * forwarding slot and its fencing (from the analytics pool) never meets a forward's.
   */
  private async startRelay(channel: Channel, reservation: ReservationLease): Promise<void> {
    await this.o.media.startForward({
      channelId: analyticsStreamKey(reservation),
      network: channel.network,
      sourceUrl: channel.sourceUrl ?? '',
      fence: reservation.fence,
    });
  }

  private async view(r: ReservationLease): Promise<ReservationView> {
    const urls = await this.o.media.playUrls({ sessionId: r.id, channelId: analyticsStreamKey(r), fence: r.fence, expiresAt: r.expiresAt });
    return {
      id: r.id,
      channelId: r.channelId,
      task: r.task,
      agencyId: r.agencyId,
      serviceId: r.principalId,
      createdAt: new Date(r.createdAt).toISOString(),
      expiresAt: new Date(r.expiresAt).toISOString(),
      streamUrl: urls.flv,
    };
  }
}
