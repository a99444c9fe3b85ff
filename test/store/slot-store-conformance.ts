/**
 * The SlotStore contract, run against every adapter (slot-store-memory.test.ts, slot-store-redis.test.ts).
 * Durations are short and real for Redis (its clock is Redis TIME), virtual for memory: every wait goes through
 * `harness.advance`, and time-dependent outcomes are awaited by sweeping until a deadline, never by asserting on
 * elapsed time.
 */
import { randomUUID } from 'node:crypto';
import type tap from 'tap';
import type { OpenSessionRequest, OpenSessionResult, SessionLease, SlotEvents, SlotStore } from '../../src/core/ports.js';

export interface PoolOptions {
  forwardingLimit: number;
  analyticsLimit: number;
  idleCloseMs: number;
}

export interface SlotStoreHarness {
  store: SlotStore;
  /** Lets `ms` of store time pass: moves the fake clock (memory) or sleeps (Redis). */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

export type MakeSlotStore = (options: PoolOptions) => Promise<SlotStoreHarness>;

const IDLE_MS = 300;
const LONG_TTL_MS = 120_000;
const pool = (forwardingLimit: number, analyticsLimit = 10): PoolOptions => ({ forwardingLimit, analyticsLimit, idleCloseMs: IDLE_MS });

let channelSeq = 0;
/** A fresh channel id; ids are unique per run so nothing leaks between cases. */
export const channel = () => `3401000000131${String(++channelSeq).padStart(7, '0')}`;

export function sessionRequest(overrides: Partial<OpenSessionRequest> = {}): OpenSessionRequest {
  return {
    sessionId: randomUUID(),
    channelId: channel(),
    principalId: 'u-alice',
    agencyId: 'weather',
    purpose: 'typhoon watch',
    priority: 'normal',
    agencyQuota: 1000,
    mayPreempt: false,
    ttlMs: LONG_TTL_MS,
    waitMs: 0,
    ...overrides,
  };
}

function granted(result: OpenSessionResult): Extract<OpenSessionResult, { kind: 'granted' }> {
  if (result.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
  return result;
}

function queued(result: OpenSessionResult): Extract<OpenSessionResult, { kind: 'queued' }> {
  if (result.kind !== 'queued') throw new Error(`expected a ticket, got ${JSON.stringify(result)}`);
  return result;
}

/** Sweeps (letting time pass in small steps) until `done` holds for everything swept so far, or a deadline. */
async function sweepUntil(h: SlotStoreHarness, done: (events: SlotEvents) => boolean, between?: () => Promise<void>): Promise<SlotEvents> {
  const all: SlotEvents = { endedSessions: [], endedReservations: [], closedForwards: [], grantedTickets: [], droppedTickets: [] };
  const deadline = (await h.store.now()) + 5_000;
  for (;;) {
    const events = await h.store.sweep();
    for (const key of Object.keys(all) as Array<keyof SlotEvents>) (all[key] as unknown[]).push(...events[key]);
    if (done(all) || (await h.store.now()) > deadline) return all;
    await h.advance(50);
    await between?.();
  }
}

export function runSlotStoreConformance(t: typeof tap, makeStore: MakeSlotStore): void {
  const withStore = async (tt: { teardown(fn: () => unknown): void }, options: PoolOptions) => {
    const h = await makeStore(options);
    tt.teardown(() => h.close());
    return h;
  };

  t.test('a burst of 500 concurrent requests for 100 slots grants exactly 100 distinct channels', async (t) => {
    const { store } = await withStore(t, pool(100));
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => store.openSession(sessionRequest({ agencyId: `agency-${i % 5}`, principalId: `u-${i}` }))),
    );
    const grants = results.filter((r) => r.kind === 'granted');
    t.equal(grants.length, 100);
    t.equal(new Set(grants.map((g) => granted(g).session.channelId)).size, 100);
    t.ok(results.filter((r) => r.kind !== 'granted').every((r) => r.kind === 'denied' && r.reason === 'capacity'));
    t.equal((await store.usage()).forwarding.used, 100);
  });

  t.test('sessions of one channel share its forward and its fence', async (t) => {
    const { store } = await withStore(t, pool(10));
    const channelId = channel();
    const first = granted(await store.openSession(sessionRequest({ channelId })));
    const second = granted(await store.openSession(sessionRequest({ channelId, principalId: 'u-bob' })));
    t.match(first, { newForward: true, replayed: false, session: { shared: false } });
    t.match(second, { newForward: false, session: { shared: true, fence: first.session.fence } });
    t.same(await store.forwardOf(channelId), { fence: first.session.fence, sessions: 2 });
    const usage = await store.usage();
    t.equal(usage.forwarding.used, 1);
    t.same(usage.agencies.weather, { forwarding: 1, analytics: 0 });
  });

  t.test('forwarding quota counts the distinct channels of an agency, joins included', async (t) => {
    const { store } = await withStore(t, pool(10));
    const [a, b, c] = [channel(), channel(), channel()];
    const weather = { agencyId: 'weather', agencyQuota: 2 };
    granted(await store.openSession(sessionRequest({ ...weather, channelId: a })));
    granted(await store.openSession(sessionRequest({ ...weather, channelId: b })));
    t.match(await store.openSession(sessionRequest({ ...weather, channelId: c, waitMs: 5_000 })), { kind: 'denied', reason: 'quota' });
    t.match(await store.openSession(sessionRequest({ ...weather, channelId: a, principalId: 'u-carol' })), { kind: 'granted' }, 'a second session on its channel takes no quota');

    const safety = { agencyId: 'safety', agencyQuota: 1, principalId: 'u-dan' };
    t.match(await store.openSession(sessionRequest({ ...safety, channelId: a })), { kind: 'granted', session: { shared: true } });
    t.match(await store.openSession(sessionRequest({ ...safety, channelId: b })), { kind: 'denied', reason: 'quota' }, 'joining another agency\'s forward counts for the joiner');
    const usage = await store.usage();
    t.equal(usage.forwarding.used, 2);
    t.same(usage.agencies, { weather: { forwarding: 2, analytics: 0 }, safety: { forwarding: 1, analytics: 0 } });
  });

  t.test('analytics reservations count against the pool and the agency quota', async (t) => {
    const { store } = await withStore(t, pool(10, 3));
    const reserve = (agencyId: string, agencyQuota: number) =>
      store.openReservation({ reservationId: randomUUID(), channelId: channel(), principalId: `svc-${agencyId}`, agencyId, task: 'crowd count', agencyQuota, ttlMs: LONG_TTL_MS });
    const first = await reserve('weather', 2);
    const second = await reserve('weather', 2);
    t.match(await reserve('weather', 2), { kind: 'denied', reason: 'quota' });
    t.match(await reserve('safety', 5), { kind: 'granted' });
    t.match(await reserve('traffic', 5), { kind: 'denied', reason: 'capacity' });
    t.ok(first.kind === 'granted' && second.kind === 'granted' && second.reservation.fence > first.reservation.fence, 'each reservation has a newer fence');
    const usage = await store.usage();
    t.same(usage.analytics, { limit: 3, used: 3 });
    t.same(usage.forwarding.used, 0, 'reservations take no forwarding slot');
    t.same(usage.agencies.weather, { forwarding: 0, analytics: 2 });
    if (first.kind !== 'granted') return;
    t.match(await store.endReservation(first.reservation.id, 'released'), { endedReservations: [{ reservation: { id: first.reservation.id }, reason: 'released' }] });
    t.equal(await store.endReservation(first.reservation.id, 'released'), null, 'ending twice reports nothing');
    t.match(await reserve('traffic', 5), { kind: 'granted' });
  });

  t.test('heartbeats keep leases alive; lapsed ones end as expired at a sweep', async (t) => {
    const h = await withStore(t, pool(10, 10));
    const { store } = h;
    const kept = granted(await store.openSession(sessionRequest({ ttlMs: 1_000 }))).session;
    const lapsing = granted(await store.openSession(sessionRequest({ ttlMs: 300 }))).session;
    const reserve = (ttlMs: number) =>
      store.openReservation({ reservationId: randomUUID(), channelId: channel(), principalId: 'svc-1', agencyId: 'weather', task: 'plates', agencyQuota: 5, ttlMs });
    const keptReservation = await reserve(1_000);
    const lapsingReservation = await reserve(300);
    if (keptReservation.kind !== 'granted' || lapsingReservation.kind !== 'granted') throw new Error('reservations refused');

    const mustOutlive = kept.createdAt + 2_500;
    const events = await sweepUntil(
      h,
      (e) => e.endedSessions.some((s) => s.session.id === lapsing.id) && e.endedReservations.length > 0,
      async () => {
        t.ok(await store.heartbeatSession(kept.id, 1_000), 'heartbeat accepted');
        t.ok(await store.heartbeatReservation(keptReservation.reservation.id), 'reservation heartbeat accepted');
      },
    );
    t.same(events.endedSessions.map((e) => [e.session.id, e.reason]), [[lapsing.id, 'expired']]);
    t.same(events.endedReservations.map((e) => [e.reservation.id, e.reason]), [[lapsingReservation.reservation.id, 'expired']]);
    t.equal(await store.getSession(lapsing.id), null);
    t.equal(await store.heartbeatSession(lapsing.id, 1_000), null, 'an ended lease cannot be revived');
    while ((await store.now()) < mustOutlive) {
      await h.advance(100);
      await store.heartbeatSession(kept.id, 1_000);
      await store.heartbeatReservation(keptReservation.reservation.id);
      const later = await store.sweep();
      t.same(later.endedSessions, [], 'the heartbeated session is never expired');
    }
    t.ok(await store.getSession(kept.id));
    t.ok(await store.getReservation(keptReservation.reservation.id));
  });

  t.test('an idle forward lingers, is reused with its fence, then closes and frees its slot', async (t) => {
    const h = await withStore(t, pool(10));
    const { store } = h;
    const channelId = channel();
    const first = granted(await store.openSession(sessionRequest({ channelId }))).session;
    t.match(await store.endSession(first.id, 'released'), { endedSessions: [{ reason: 'released' }], closedForwards: [] });
    t.equal(await store.getSession(first.id), null);
    t.equal(await store.endSession(first.id, 'released'), null, 'ending twice reports nothing');
    t.same(await store.forwardOf(channelId), { fence: first.fence, sessions: 0 });
    t.equal((await store.usage()).forwarding.used, 1, 'a lingering forward still holds its slot');
    t.same((await store.usage()).agencies, {}, 'but no agency quota');

    const again = granted(await store.openSession(sessionRequest({ channelId })));
    t.match(again, { newForward: false, session: { shared: true, fence: first.fence } });
    await store.endSession(again.session.id, 'released');
    const events = await sweepUntil(h, (e) => e.closedForwards.length > 0);
    t.same(events.closedForwards, [{ channelId, fence: first.fence }]);
    t.equal(await store.forwardOf(channelId), null);
    t.equal((await store.usage()).forwarding.used, 0);

    const reopened = granted(await store.openSession(sessionRequest({ channelId })));
    t.ok(reopened.newForward);
    t.ok(reopened.session.fence > first.fence, 'a new forward of the same channel has a higher fence');
  });

  t.test('a session keeps the codec it asked for; closeIdleForward frees its slot at once, but not a shared one', async (t) => {
    const { store } = await withStore(t, pool(10));
    const channelId = channel();
    const first = granted(await store.openSession(sessionRequest({ channelId, requestedCodec: 'h264' }))).session;
    t.equal(first.requestedCodec, 'h264', 'granted with it');
    t.equal((await store.getSession(first.id))?.requestedCodec, 'h264', 'and stored with it');
    const plain = granted(await store.openSession(sessionRequest({ channelId, principalId: 'u-bob' }))).session;
    t.equal(plain.requestedCodec, undefined, 'absent: source');

    t.match(await store.endSession(first.id, 'released', { closeIdleForward: true }), { closedForwards: [] }, 'another session is on the forward: it stays');
    t.same(await store.forwardOf(channelId), { fence: first.fence, sessions: 1 });
    const events = await store.endSession(plain.id, 'released', { closeIdleForward: true });
    t.same(events?.closedForwards, [{ channelId, fence: first.fence }], 'the last one closes it, no linger');
    t.equal(await store.forwardOf(channelId), null);
    t.equal((await store.usage()).forwarding.used, 0, 'its slot is free now');
  });

  t.test('a new forward reclaims an idle lingering forward when the pool is full', async (t) => {
    const { store } = await withStore(t, pool(2));
    const idle = granted(await store.openSession(sessionRequest())).session;
    await store.endSession(idle.id, 'released');
    granted(await store.openSession(sessionRequest()));
    const result = granted(await store.openSession(sessionRequest()));
    t.same(result.closedForwards, [{ channelId: idle.channelId, fence: idle.fence }]);
    t.equal(await store.forwardOf(idle.channelId), null);
    t.equal((await store.usage()).forwarding.used, 2);
  });

  t.test('an idempotent retry returns the same session and takes nothing', async (t) => {
    const { store } = await withStore(t, pool(10));
    const original = granted(await store.openSession(sessionRequest({ idempotencyKey: 'k-1' }))).session;
    const retry = granted(await store.openSession(sessionRequest({ idempotencyKey: 'k-1' })));
    t.match(retry, { replayed: true, newForward: false, session: { id: original.id, fence: original.fence } });
    t.equal((await store.usage()).forwarding.used, 1);
    t.equal((await store.listSessions({ principalId: 'u-alice' })).length, 1);
    const otherUser = granted(await store.openSession(sessionRequest({ idempotencyKey: 'k-1', principalId: 'u-bob' })));
    t.not(otherUser.session.id, original.id, 'the key is scoped to its principal');
    await store.endSession(original.id, 'released');
    t.match(await store.openSession(sessionRequest({ idempotencyKey: 'k-1' })), { kind: 'granted', replayed: false }, 'an ended session is not replayed');
  });

  t.test('the queue serves higher priority first, then first come, before new arrivals', async (t) => {
    const { store } = await withStore(t, pool(1));
    let holder = granted(await store.openSession(sessionRequest())).session;
    const wait = (priority: OpenSessionRequest['priority']) => store.openSession(sessionRequest({ priority, waitMs: 20_000 }));
    const normal1 = queued(await wait('normal'));
    const urgent = queued(await wait('urgent'));
    const normal2 = queued(await wait('normal'));
    const emergency = queued(await wait('emergency'));
    t.same([normal1.position, urgent.position, normal2.position, emergency.position], [1, 1, 3, 1]);
    t.equal((await store.usage()).forwarding.queued, 4);
    t.equal((await store.ticketOutcome(normal1.ticketId)).kind, 'pending');

    const served: string[] = [];
    for (let i = 0; i < 4; i++) {
      const events = await store.endSession(holder.id, 'released');
      t.equal(events?.grantedTickets.length, 1, 'each freed slot goes to one ticket at once');
      const grant = events!.grantedTickets[0];
      served.push(grant.ticketId);
      t.match(await store.ticketOutcome(grant.ticketId), { kind: 'granted', newForward: true, session: { id: grant.session.id } });
      t.match(await store.openSession(sessionRequest()), { kind: 'denied', reason: 'capacity' }, 'a new arrival waits behind the queue');
      holder = grant.session;
    }
    t.same(served, [emergency.ticketId, urgent.ticketId, normal1.ticketId, normal2.ticketId]);
    t.equal((await store.usage()).forwarding.queued, 0);
  });

  t.test('a ticket times out, can be cancelled, and a cancelled grant is handed back', async (t) => {
    const h = await withStore(t, pool(1));
    const { store } = h;
    const holder = granted(await store.openSession(sessionRequest())).session;
    const short = queued(await store.openSession(sessionRequest({ waitMs: 300 })));
    const cancelled = queued(await store.openSession(sessionRequest({ waitMs: 20_000 })));
    const events = await sweepUntil(h, (e) => e.droppedTickets.length > 0);
    t.same(events.droppedTickets, [{ ticketId: short.ticketId, reason: 'timeout' }]);
    t.same(await store.ticketOutcome(short.ticketId), { kind: 'timeout' });

    t.same(await store.cancelTicket(cancelled.ticketId), { kind: 'timeout' });
    t.equal((await store.usage()).forwarding.queued, 0);
    const late = queued(await store.openSession(sessionRequest({ waitMs: 20_000 })));
    const freed = await store.endSession(holder.id, 'released');
    t.same(freed?.grantedTickets.map((g) => g.ticketId), [late.ticketId], 'the cancelled ticket is not served');
    t.match(await store.cancelTicket(late.ticketId), { kind: 'granted', newForward: true, session: { id: freed?.grantedTickets[0].session.id } });
  });

  t.test('a ticket over quota when its turn comes is dropped', async (t) => {
    const { store } = await withStore(t, pool(2));
    const first = granted(await store.openSession(sessionRequest({ agencyId: 'safety' }))).session;
    const second = granted(await store.openSession(sessionRequest({ agencyId: 'safety' }))).session;
    const ticket = queued(await store.openSession(sessionRequest({ agencyQuota: 1, waitMs: 20_000 })));
    granted(await store.openSession(sessionRequest({ agencyQuota: 1, channelId: first.channelId })));
    const events = await store.endSession(second.id, 'released');
    t.same(events?.droppedTickets, [{ ticketId: ticket.ticketId, reason: 'quota' }]);
    t.same(await store.ticketOutcome(ticket.ticketId), { kind: 'denied', reason: 'quota' });
  });

  t.test('emergency preemption ends the newest all-normal forward of the agency holding most', async (t) => {
    const { store } = await withStore(t, pool(3));
    const busy = { agencyId: 'weather', principalId: 'u-w' };
    const older = granted(await store.openSession(sessionRequest(busy))).session;
    const newest = granted(await store.openSession(sessionRequest(busy))).session;
    const other = granted(await store.openSession(sessionRequest({ agencyId: 'traffic', principalId: 'u-t' }))).session;
    t.ok(other.fence > newest.fence, 'the other agency holds the most recent forward overall');
    const emergency = (extra: Partial<OpenSessionRequest> = {}) =>
      store.openSession(sessionRequest({ agencyId: 'police', principalId: 'u-p', priority: 'emergency', mayPreempt: true, ...extra }));

    t.match(await emergency({ mayPreempt: false }), { kind: 'denied', reason: 'capacity' }, 'no preemption without the right');
    const first = granted(await emergency());
    t.same(first.preempted.map((s) => s.id), [newest.id]);
    t.same(first.closedForwards, [{ channelId: newest.channelId, fence: newest.fence }]);
    t.equal(await store.getSession(newest.id), null);
    t.equal(await store.forwardOf(newest.channelId), null, 'the victim closes at once, no linger');

    granted(await store.openSession(sessionRequest({ ...busy, channelId: older.channelId, priority: 'urgent' })));
    const second = granted(await emergency());
    t.same(second.preempted.map((s) => s.id), [other.id], 'an urgent session protects its forward');
    t.match(await emergency(), { kind: 'denied', reason: 'capacity' }, 'no candidate left');
    const usage = await store.usage();
    t.equal(usage.forwarding.used, 3);
    t.same(usage.agencies.police, { forwarding: 2, analytics: 0 });
  });

  t.test('endAllOf ends every session and reservation of a principal', async (t) => {
    const { store } = await withStore(t, pool(10));
    const shared = granted(await store.openSession(sessionRequest())).session;
    const own = granted(await store.openSession(sessionRequest())).session;
    granted(await store.openSession(sessionRequest({ channelId: shared.channelId, principalId: 'u-bob' })));
    const reservation = await store.openReservation({ reservationId: randomUUID(), channelId: channel(), principalId: 'u-alice', agencyId: 'weather', task: 'fire watch', agencyQuota: 5, ttlMs: LONG_TTL_MS });
    const events = await store.endAllOf('u-alice', 'revoked');
    t.same(events.endedSessions.map((e) => e.session.id).sort(), [shared.id, own.id].sort());
    t.ok(events.endedSessions.every((e) => e.reason === 'revoked'));
    t.same(events.endedReservations.map((e) => e.reservation.id), [reservation.kind === 'granted' ? reservation.reservation.id : '']);
    t.same(await store.forwardOf(shared.channelId), { fence: shared.fence, sessions: 1 });
    t.same(await store.forwardOf(own.channelId), { fence: own.fence, sessions: 0 });
    t.same(await store.listSessions({ principalId: 'u-alice' }), []);
    t.same(await store.listReservations({ agencyId: 'weather' }), []);
  });

  t.test('failForward ends the forward now, ignores stale fences, and serves the queue', async (t) => {
    const { store } = await withStore(t, pool(1));
    const first = granted(await store.openSession(sessionRequest())).session;
    const joiner = granted(await store.openSession(sessionRequest({ channelId: first.channelId, principalId: 'u-bob' }))).session;
    const ticket = queued(await store.openSession(sessionRequest({ waitMs: 20_000 })));
    t.same(await store.failForward(first.channelId, first.fence - 1), { endedSessions: [], endedReservations: [], closedForwards: [], grantedTickets: [], droppedTickets: [] });
    const events = await store.failForward(first.channelId, first.fence);
    t.same(events.endedSessions.map((e) => [e.session.id, e.reason]).sort(), [[first.id, 'source-failed'], [joiner.id, 'source-failed']].sort());
    t.same(events.closedForwards, [{ channelId: first.channelId, fence: first.fence }]);
    t.same(events.grantedTickets.map((g) => g.ticketId), [ticket.ticketId]);
    t.ok(events.grantedTickets[0].session.fence > first.fence);
    t.equal(await store.forwardOf(first.channelId), null);
  });

  t.test('listSessions filters by agency and principal', async (t) => {
    const { store } = await withStore(t, pool(10));
    const mine: SessionLease = granted(await store.openSession(sessionRequest())).session;
    granted(await store.openSession(sessionRequest({ agencyId: 'traffic', principalId: 'u-t' })));
    t.same((await store.listSessions({ agencyId: 'weather' })).map((s) => s.id), [mine.id]);
    t.same(await store.getSession(mine.id), mine);
    t.equal((await store.listSessions({})).length, 2);
  });
}
