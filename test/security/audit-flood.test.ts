/**
 * Point 12 of issue 8: 300 heartbeats on made-up ids wrote 300 audit entries. API.md "Audit": a flood
 * of requests on unknown ids does not flood the log — repeated denials of one caller are counted into
 * one entry per minute. Grants are never held back; the count adds up; memory stays bounded.
 * @see ../../shared/API.md "Audit"
 */
import t from 'tap';
import { STORES, auth, buildTestBroker, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';

type Entry = { seq: number; action: string; target: string; outcome: string; reason?: string; actor: { id: string }; details?: { count?: number } };

const FLOOD = 300;
const channel = makeChannel(1, 1, 'video');

const entries = async (tb: TestBroker, action: string): Promise<Entry[]> =>
  (await tb.app.inject({ url: `/api/v1/audit?action=${action}&limit=500`, headers: auth(tb.adminToken) })).json().items as Entry[];
const counted = (items: Entry[]) => items.reduce((sum, e) => sum + (e.details?.count ?? 1), 0);

async function flood(tb: TestBroker, token: string, n: number, tag: string) {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_, j) =>
      tb.app.inject({ method: 'POST', url: `/api/v1/streams/s_${tag}${i + j}/heartbeat`, headers: auth(token) }),
    );
    statuses.push(...(await Promise.all(batch)).map((r) => r.statusCode));
  }
  return statuses;
}

for (const store of STORES) {
  t.test(store.BROKER_STORE, async (t) => {
    t.test('point 12: 300 heartbeats on made-up ids write a handful of entries whose counts add up to 300', async (t) => {
      // A one-second window, so the test sees windows close on the timer instead of waiting a minute.
      const tb = await buildTestBroker(t, { env: { ...store, BROKER_AUDIT_COALESCE_SECONDS: '1' } });
      await tb.broker.catalog.seed([channel]);
      const a = await tb.agency({ id: 'agency-a' });

      const first = await flood(tb, a.operatorToken, FLOOD / 2, 'made-up-');
      const grant = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId: channel.id, purpose: 'patrol check' } });
      t.equal(grant.statusCode, 201);
      const second = await flood(tb, a.operatorToken, FLOOD / 2, 'more-made-up-');
      t.ok([...first, ...second].every((s) => s === 404), 'every heartbeat on a made-up id answers 404');

      const grants = await entries(tb, 'stream.grant');
      t.same(grants.map((e) => e.target), [`session:${grant.json().id}`], 'the grant in between is written on its own, at once');

      await until(t, 'every denial is counted into the log', async () => counted(await entries(tb, 'stream.heartbeat')) === FLOOD);
      const denials = await entries(tb, 'stream.heartbeat');
      t.ok(denials.length <= 10, `a handful of entries, not ${FLOOD} (got ${denials.length})`);
      t.ok(denials.every((e) => e.outcome === 'denied' && e.reason === 'not-found' && e.actor.id === a.operatorId));
      t.ok(denials.some((e) => (e.details?.count ?? 0) > 1), 'a summary entry carries the count');
      t.equal((await tb.app.inject({ url: '/api/v1/audit/verify', headers: auth(tb.adminToken) })).json().ok, true, 'the chain still verifies');
      const metrics = (await tb.app.inject({ url: '/metrics', headers: auth(tb.adminToken) })).body;
      t.match(metrics, /broker_lease_heartbeat_failures_total\{pool="forwarding"\} 300\b/, 'the metrics count every refused heartbeat, not every entry');
    });

    t.test('point 12: callers beyond the key cap are merged into one entry per window; the total still adds up', async (t) => {
      const tb = await buildTestBroker(t, { env: { ...store, BROKER_AUDIT_COALESCE_SECONDS: '1', BROKER_AUDIT_COALESCE_MAX_KEYS: '1' } });
      const a = await tb.agency({ id: 'agency-a' });
      await flood(tb, a.operatorToken, 50, 'x-');
      await flood(tb, a.adminToken, 50, 'y-');
      await until(t, 'all 100 denials are counted', async () => counted(await entries(tb, 'stream.heartbeat')) + counted(await entries(tb, 'audit.denials-merged')) === 100);
      const merged = await entries(tb, 'audit.denials-merged');
      t.ok(merged.length >= 1 && merged.length <= 5, 'the overflow is a few merged entries');
      t.ok((await entries(tb, 'stream.heartbeat')).every((e) => e.actor.id === a.operatorId), 'only the tracked caller has entries of its own');
    });
  });
}

t.test('point 12: the usage report counts the denials a summary stands for', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_FORWARDING_SLOTS: '1' } });
  const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const open = (channelId: string) =>
    tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId, purpose: 'patrol check' } });
  t.equal((await open(channels[0]!.id)).statusCode, 201);
  for (let i = 0; i < 25; i++) t.equal((await open(channels[1]!.id)).statusCode, 503);
  await tb.broker.audit.flushDenials();
  t.ok((await entries(tb, 'stream.deny')).length <= 2, 'the refusals are coalesced');
  const month = new Date().toISOString().slice(0, 7);
  const report = (await tb.app.inject({ url: `/api/v1/reports/usage?month=${month}`, headers: auth(tb.adminToken) })).json();
  t.equal(report.agencies.find((x: { agencyId: string }) => x.agencyId === 'agency-a').denied, 25);
});
