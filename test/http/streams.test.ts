/**
 * Forwarding sessions over HTTP on the embedded store: limits, sharing, quotas, queue, preemption,
 * idempotency, expiry, revocation — and that each of them is audited.
 */
import t from 'tap';
import { STORES, auth, buildTestBroker, until } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import type { Channel } from '../../src/core/model.js';

const catalog = (n: number): Channel[] => Array.from({ length: n }, (_, i) => makeChannel(i + 1, 1, 'video'));
const open = (app: Awaited<ReturnType<typeof buildTestBroker>>['app'], token: string, body: object, headers: object = {}) =>
  app.inject({ method: 'POST', url: '/api/v1/streams', headers: { ...auth(token), ...headers }, payload: { purpose: 'patrol check', ...body } });

for (const store of STORES) {
 t.test(store.BROKER_STORE, async (t) => {
  t.test('a concurrent burst never gets one slot more than the limit', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store, BROKER_FORWARDING_SLOTS: '20' } });
    const channels = catalog(60);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a', quotas: { forwarding: 1000, analytics: 10 } });
    const results = await Promise.all(channels.map((c) => open(tb.app, a.operatorToken, { channelId: c.id })));
    const granted = results.filter((r) => r.statusCode === 201);
    const refused = results.filter((r) => r.statusCode === 503);
    t.equal(granted.length, 20, 'exactly the limit granted');
    t.equal(refused.length, 40);
    t.equal(refused[0]!.json().error.code, 'FORWARDING_CAPACITY_EXHAUSTED');
    t.ok(Number(refused[0]!.headers['retry-after']) >= 1, 'Retry-After on 503');
    const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
    t.same(capacity.forwarding, { limit: 20, used: 20, queued: 0 });
    // API.md "Audit": one caller's repeated denials are counted into one entry per minute.
    await tb.broker.audit.flushDenials();
    const denials = (await tb.app.inject({ url: '/api/v1/audit?action=stream.deny&limit=500', headers: auth(tb.adminToken) })).json().items;
    t.equal(denials.reduce((sum: number, e: { details?: { count?: number } }) => sum + (e.details?.count ?? 1), 0), 40, 'every denial audited');
    t.equal(denials[0].reason, 'capacity');
  });

  t.test('sessions of one channel share its slot; agency quota counts distinct channels', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const channels = catalog(3);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a', quotas: { forwarding: 2, analytics: 1 } });
    const b = await tb.agency({ id: 'agency-b', quotas: { forwarding: 1, analytics: 1 } });
    const first = await open(tb.app, a.operatorToken, { channelId: channels[0]!.id });
    const second = await open(tb.app, a.adminToken, { channelId: channels[0]!.id });
    t.equal(first.json().shared, false);
    t.equal(second.json().shared, true);
    t.equal((await open(tb.app, a.operatorToken, { channelId: channels[1]!.id })).statusCode, 201);
    const over = await open(tb.app, a.operatorToken, { channelId: channels[2]!.id });
    t.equal(over.statusCode, 429);
    t.equal(over.json().error.code, 'AGENCY_QUOTA_EXCEEDED');
    const joinB = await open(tb.app, b.operatorToken, { channelId: channels[0]!.id });
    t.equal(joinB.statusCode, 201, 'another agency joins a forwarded channel');
    t.equal(joinB.json().shared, true);
    const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
    t.equal(capacity.forwarding.used, 2, 'two distinct channels forwarded');
    const byId = Object.fromEntries(capacity.agencies.map((x: { id: string }) => [x.id, x]));
    t.same(byId['agency-a'].forwarding, { used: 2, quota: 2 });
    t.same(byId['agency-b'].forwarding, { used: 1, quota: 1 });
    const own = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(b.operatorToken) })).json();
    t.same(own.agencies.map((x: { id: string }) => x.id), ['agency-b'], 'non-platform callers see their own agency only');
    t.notOk('mediaNodes' in own);
  });

  t.test('Idempotency-Key: same user and key → the same session, no new slot', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const channels = catalog(2);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const key = { 'idempotency-key': 'req-7f3a' };
    const one = await open(tb.app, a.operatorToken, { channelId: channels[0]!.id }, key);
    const two = await open(tb.app, a.operatorToken, { channelId: channels[0]!.id }, key);
    t.equal(one.statusCode, 201);
    t.equal(two.json().id, one.json().id);
    const list = await tb.app.inject({ url: '/api/v1/streams', headers: auth(a.operatorToken) });
    t.equal(list.json().items.length, 1);
    const other = await open(tb.app, a.adminToken, { channelId: channels[0]!.id }, key);
    t.not(other.json().id, one.json().id, 'the key is per user');
  });

  t.test('offline channels and emergency without canPreempt are refused and audited', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    await tb.broker.catalog.seed([makeChannel(1, 1, 'video', { status: 'offline' }), makeChannel(2, 1, 'video')]);
    const a = await tb.agency({ id: 'agency-a' });
    const offline = await open(tb.app, a.operatorToken, { channelId: makeChannel(1, 1, 'video').id });
    t.equal(offline.statusCode, 409);
    t.equal(offline.json().error.code, 'CHANNEL_OFFLINE');
    const emergency = await open(tb.app, a.operatorToken, { channelId: makeChannel(2, 1, 'video').id, priority: 'emergency' });
    t.equal(emergency.statusCode, 403);
    const audit = (await tb.app.inject({ url: '/api/v1/audit?action=stream.deny', headers: auth(tb.adminToken) })).json().items;
    t.same(audit.map((e: { reason: string }) => e.reason).sort(), ['channel-offline', 'emergency-not-allowed']);
    t.equal(audit[0].purpose, 'patrol check', 'the stated purpose is on record');
  });

  t.test('emergency preempts the most recent all-normal slot of the agency holding the most', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store, BROKER_FORWARDING_SLOTS: '3' } });
    const channels = catalog(4);
    await tb.broker.catalog.seed(channels);
    const big = await tb.agency({ id: 'agency-big' });
    const small = await tb.agency({ id: 'agency-small' });
    const police = await tb.agency({ id: 'police', canPreempt: true });
    const s1 = await open(tb.app, big.operatorToken, { channelId: channels[0]!.id });
    const s2 = await open(tb.app, big.operatorToken, { channelId: channels[1]!.id });
    const s3 = await open(tb.app, small.operatorToken, { channelId: channels[2]!.id });
    t.ok([s1, s2, s3].every((r) => r.statusCode === 201));
    const full = await open(tb.app, police.operatorToken, { channelId: channels[3]!.id, priority: 'urgent' });
    t.equal(full.statusCode, 503, 'urgent does not preempt');
    const e = await open(tb.app, police.operatorToken, { channelId: channels[3]!.id, priority: 'emergency' });
    t.equal(e.statusCode, 201);
    t.equal((await tb.app.inject({ url: `/api/v1/streams/${s2.json().id}`, headers: auth(big.operatorToken) })).statusCode, 404, 'victim: newest slot of the agency with most');
    t.equal((await tb.app.inject({ url: `/api/v1/streams/${s1.json().id}`, headers: auth(big.operatorToken) })).statusCode, 200);
    t.equal((await tb.app.inject({ url: `/api/v1/streams/${s3.json().id}`, headers: auth(small.operatorToken) })).statusCode, 200);
    const audit = (await tb.app.inject({ url: '/api/v1/audit?action=stream.preempt', headers: auth(tb.adminToken) })).json().items;
    t.equal(audit.length, 1);
    t.equal(audit[0].details.preemptor, police.operatorId, 'the audit log names the preemptor');
    t.equal(audit[0].target, `session:${s2.json().id}`);
  });

  t.test('queue: waits for a freed slot, FIFO within priority, higher priority first, 503 when time runs out', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store, BROKER_FORWARDING_SLOTS: '1', BROKER_IDLE_CLOSE_SECONDS: '0' }, start: true });
    const channels = catalog(5);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const holder = await open(tb.app, a.adminToken, { channelId: channels[0]!.id });
    t.equal(holder.statusCode, 201);
    const order: string[] = [];
    const queued = async () => (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json().forwarding.queued as number;
    // Each request joins the queue before the next is sent, so their arrival order is known.
    const enqueue = async (name: string, body: Record<string, unknown>) => {
      const before = await queued();
      const answer = open(tb.app, a.operatorToken, { ...body, waitSeconds: 10 }).then((r) => (order.push(name), r));
      await until(t, `${name} queued`, async () => (await queued()) === before + 1);
      return { answer }; // wrapped: an async function returning the promise itself would wait for it
    };
    const waiting = [
      (await enqueue('normal-1', { channelId: channels[1]!.id })).answer,
      (await enqueue('normal-2', { channelId: channels[2]!.id })).answer,
      (await enqueue('urgent', { channelId: channels[3]!.id, priority: 'urgent' })).answer,
    ];
    const arrival = await open(tb.app, a.adminToken, { channelId: channels[4]!.id });
    t.equal(arrival.statusCode, 503, 'a new arrival does not jump the queue');

    // Free the slot three times: urgent first, then the normals in arrival order.
    const release = async () => {
      const current = (await tb.app.inject({ url: '/api/v1/streams?scope=agency', headers: auth(a.adminToken) })).json().items;
      t.equal(current.length, 1);
      t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${current[0].id}`, headers: auth(a.adminToken) })).statusCode, 204);
    };
    await release();
    await until(t, 'urgent granted', async () => order.length === 1);
    await release();
    await until(t, 'second granted', async () => order.length === 2);
    await release();
    const answers = await Promise.all(waiting);
    t.same(order, ['urgent', 'normal-1', 'normal-2']);
    t.ok(answers.every((r) => (r as { statusCode: number }).statusCode === 201));

    const timedOut = await open(tb.app, a.adminToken, { channelId: channels[0]!.id, waitSeconds: 1 });
    t.equal(timedOut.statusCode, 503, 'waits in vain → 503');
    t.equal((await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json().forwarding.queued, 0, 'left the queue');
  });

  t.test('leases expire without heartbeats, live on with them; idle slots linger then free', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store, BROKER_LEASE_TTL_SECONDS: '1', BROKER_IDLE_CLOSE_SECONDS: '1' }, config: { sweepIntervalMs: 100 }, start: true });
    const channels = catalog(2);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const kept = (await open(tb.app, a.operatorToken, { channelId: channels[0]!.id })).json();
    const dropped = (await open(tb.app, a.operatorToken, { channelId: channels[1]!.id })).json();
    const beat = setInterval(() => void tb.app.inject({ method: 'POST', url: `/api/v1/streams/${kept.id}/heartbeat`, headers: auth(a.operatorToken) }), 300);
    t.teardown(() => clearInterval(beat));
    await until(t, 'unheartbeated session expired', async () => (await tb.app.inject({ url: `/api/v1/streams/${dropped.id}`, headers: auth(a.operatorToken) })).statusCode === 404);
    t.equal((await tb.app.inject({ url: `/api/v1/streams/${kept.id}`, headers: auth(a.operatorToken) })).statusCode, 200, 'heartbeated session lives');
    // The sweep ends the lease first and then writes its audit entry, which is visible once durable (a group
    // commit later): on a loaded machine the 404 above can come before it.
    let expired: Array<{ reason: string }> = [];
    await until(t, 'the expiry audited', async () => {
      expired = (await tb.app.inject({ url: '/api/v1/audit?action=stream.expire', headers: auth(tb.adminToken) })).json().items;
      return expired.length > 0;
    });
    t.equal(expired.length, 1);
    t.equal(expired[0]!.reason, 'expired');
    await until(t, 'slot freed after the linger', async () => (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json().forwarding.used === 1);
    clearInterval(beat);
    const late = await tb.app.inject({ method: 'POST', url: `/api/v1/streams/${dropped.id}/heartbeat`, headers: auth(a.operatorToken) });
    t.equal(late.statusCode, 404, 'heartbeat of an ended session');
    const failures = (await tb.app.inject({ url: '/api/v1/audit?action=stream.heartbeat', headers: auth(tb.adminToken) })).json().items;
    t.equal(failures.length, 1, 'heartbeat failure audited');
  });

  t.test('disabling a user ends its sessions at once with reason revoked', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const channels = catalog(2);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const s = (await open(tb.app, a.operatorToken, { channelId: channels[0]!.id })).json();
    const res = await tb.app.inject({ method: 'PATCH', url: `/api/v1/users/${a.operatorId}`, headers: auth(a.adminToken), payload: { disabled: true } });
    t.equal(res.statusCode, 200);
    t.equal((await tb.app.inject({ url: `/api/v1/streams/${s.id}`, headers: auth(a.adminToken) })).statusCode, 404, 'session gone');
    const revoked = (await tb.app.inject({ url: '/api/v1/audit?action=stream.revoke', headers: auth(tb.adminToken) })).json().items;
    t.equal(revoked.length, 1);
    t.equal(revoked[0].actor.id, a.adminId, 'names who revoked');
    t.equal(revoked[0].details.userId, a.operatorId, 'and whose session it was');
  });

  t.test('grants carry purpose, signed play URLs and an audit entry', async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const channels = catalog(1);
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const s = (await open(tb.app, a.operatorToken, { channelId: channels[0]!.id, purpose: '防汛巡查 flood patrol' })).json();
    t.match(s, { channelId: channels[0]!.id, userId: a.operatorId, agencyId: 'agency-a', purpose: '防汛巡查 flood patrol', priority: 'normal' });
    t.match(s.urls.flv, /^http:\/\/.+\/live\/\d{20}\.flv\?token=.+\..+$/);
    t.match(s.urls.wsFlv, /^ws:\/\//);
    const grant = (await tb.app.inject({ url: '/api/v1/audit?action=stream.grant', headers: auth(a.operatorToken) })).json().items;
    t.equal(grant.length, 1, 'operator sees its own grant in the audit log');
    t.equal(grant[0].purpose, '防汛巡查 flood patrol');
    t.equal(grant[0].actor.id, a.operatorId);
  });
 });
}
