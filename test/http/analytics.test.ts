/**
 * Analytics reservations over HTTP on both stores: one reservation = one analytics slot, per-agency
 * quota, exact pool limit, ownership, heartbeat, and revocation of the service account.
 */
import t from 'tap';
import { STORES, auth, buildTestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';

for (const store of STORES) {
  t.test(store.BROKER_STORE, async (t) => {
    t.test('reservations: limit, quota, no forwarding slot, ownership, revocation', async (t) => {
      const tb = await buildTestBroker(t, { env: { ...store, BROKER_ANALYTICS_SLOTS: '3' } });
      const channels = Array.from({ length: 4 }, (_, i) => makeChannel(i + 1, 2, 'gov'));
      await tb.broker.catalog.seed(channels);
      const wx = await tb.agency({ id: 'weather', classes: [2, 3], networks: ['gov'], quotas: { forwarding: 5, analytics: 2 } });
      const other = await tb.agency({ id: 'transport', classes: [2, 3], networks: ['gov'], quotas: { forwarding: 5, analytics: 5 } });
      const key = (await tb.app.inject({ method: 'POST', url: '/api/v1/agencies/weather/service-accounts', headers: auth(wx.adminToken), payload: { name: 'fog-ai' } })).json();
      const svc = { authorization: `ApiKey ${key.apiKey}` };
      const reserve = (headers: Record<string, string>, channelId: string) =>
        tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers, payload: { channelId, task: 'fog detection', ttlSeconds: 60 } });

      const r1 = await reserve(svc, channels[0]!.id);
      t.equal(r1.statusCode, 201);
      t.match(r1.json(), { channelId: channels[0]!.id, task: 'fog detection', agencyId: 'weather', serviceId: key.id });
      t.match(r1.json().streamUrl, /token=/);
      t.equal((await reserve(svc, channels[1]!.id)).statusCode, 201);
      const overQuota = await reserve(svc, channels[2]!.id);
      t.equal(overQuota.statusCode, 429);
      t.equal(overQuota.json().error.code, 'AGENCY_QUOTA_EXCEEDED');
      t.equal((await reserve(auth(other.adminToken), channels[2]!.id)).statusCode, 201);
      const full = await reserve(auth(other.adminToken), channels[3]!.id);
      t.equal(full.statusCode, 503);
      t.equal(full.json().error.code, 'ANALYTICS_CAPACITY_EXHAUSTED');
      t.ok(Number(full.headers['retry-after']) >= 1);
      const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
      t.same(capacity.analytics, { limit: 3, used: 3 });
      t.equal(capacity.forwarding.used, 0, 'reservations take no forwarding slot');

      t.equal((await tb.app.inject({ url: `/api/v1/analytics/reservations/${r1.json().id}`, headers: auth(other.adminToken) })).statusCode, 404, 'other agency: 404');
      t.equal((await tb.app.inject({ method: 'POST', url: `/api/v1/analytics/reservations/${r1.json().id}/heartbeat`, headers: svc })).statusCode, 200);
      t.equal((await tb.app.inject({ url: '/api/v1/analytics/reservations', headers: auth(wx.adminToken) })).json().items.length, 2, 'admin sees its agency');
      t.equal((await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: auth(wx.operatorToken), payload: { channelId: channels[3]!.id, task: 'x' } })).statusCode, 403, 'operators do not reserve');

      t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/service-accounts/${key.id}`, headers: auth(wx.adminToken) })).statusCode, 204);
      t.equal((await tb.app.inject({ url: '/api/v1/analytics/reservations', headers: auth(wx.adminToken) })).json().items.length, 0, 'revoked: reservations ended');
      const revoked = (await tb.app.inject({ url: '/api/v1/audit?action=analytics.revoke', headers: auth(tb.adminToken) })).json().items;
      t.equal(revoked.length, 2);
      t.equal(revoked[0].reason, 'revoked');
      t.equal((await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json().analytics.used, 1);
    });

    t.test('a queued client that goes away leaves the queue', async (t) => {
      const tb = await buildTestBroker(t, { env: { ...store, BROKER_FORWARDING_SLOTS: '1' }, start: true });
      const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];
      await tb.broker.catalog.seed(channels);
      const a = await tb.agency({ id: 'agency-a' });
      await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.adminToken), payload: { channelId: channels[0]!.id, purpose: 'hold the slot' } });
      await tb.app.listen({ host: '127.0.0.1', port: 0 });
      const address = tb.app.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const controller = new AbortController();
      const waiting = fetch(`http://127.0.0.1:${port}/api/v1/streams`, {
        method: 'POST',
        headers: { ...auth(a.operatorToken), 'content-type': 'application/json' },
        body: JSON.stringify({ channelId: channels[1]!.id, purpose: 'queued then gone', waitSeconds: 30 }),
        signal: controller.signal,
      }).catch(() => 'aborted');
      const queued = async () => (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json().forwarding.queued;
      for (let i = 0; i < 100 && (await queued()) !== 1; i++) await new Promise((r) => setTimeout(r, 50));
      t.equal(await queued(), 1, 'queued');
      controller.abort();
      t.equal(await waiting, 'aborted');
      for (let i = 0; i < 100 && (await queued()) !== 0; i++) await new Promise((r) => setTimeout(r, 50));
      t.equal(await queued(), 0, 'left the queue when the client went away');
    });
  });
}
