/**
 * GET /metrics after a scripted scenario: counters fed by the audit log and by finished requests read
 * exactly what happened; pool gauges agree with GET /capacity.
 */
import t from 'tap';
import { auth, buildTestBroker, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';

const channels = Array.from({ length: 6 }, (_, i) => makeChannel(i + 1, 1, 'video'));
const open = (tb: TestBroker, token: string, channelId: string, extra: object = {}) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'patrol check', ...extra } });

/** `name{labels} value` lines → value by series (labels as written, in prom-client's order). */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

t.test('counters and gauges after 3 grants, 2 capacity denials, heartbeats and a queued request', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_FORWARDING_SLOTS: '3', BROKER_ANALYTICS_SLOTS: '1' } });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const b = await tb.agency({ id: 'agency-b' });

  const granted = [await open(tb, a.operatorToken, channels[0]!.id), await open(tb, a.operatorToken, channels[1]!.id), await open(tb, b.operatorToken, channels[2]!.id)];
  t.same(granted.map((r) => r.statusCode), [201, 201, 201]);
  t.same([(await open(tb, a.operatorToken, channels[3]!.id)).statusCode, (await open(tb, b.operatorToken, channels[4]!.id)).statusCode], [503, 503]);
  const queued = await open(tb, a.operatorToken, channels[5]!.id, { waitSeconds: 1 });
  t.equal(queued.statusCode, 503, 'the queued request ran out of time');
  for (let i = 0; i < 2; i++) {
    t.equal((await tb.app.inject({ method: 'POST', url: `/api/v1/streams/${granted[0]!.json().id}/heartbeat`, headers: auth(a.operatorToken) })).statusCode, 200);
  }
  t.equal((await tb.app.inject({ method: 'POST', url: '/api/v1/streams/s-unknown/heartbeat', headers: auth(a.operatorToken) })).statusCode, 404);
  const reservation = await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: auth(a.adminToken), payload: { channelId: channels[0]!.id, task: 'crowd count' } });
  t.equal(reservation.statusCode, 201);
  t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${granted[2]!.json().id}`, headers: auth(b.operatorToken) })).statusCode, 204);

  const res = await tb.app.inject({ url: '/metrics' });
  t.equal(res.statusCode, 200, 'no credentials needed');
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const m = parse(res.body);
  const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();

  t.equal(m.get('broker_grants_total{pool="forwarding"}'), 3);
  t.equal(m.get('broker_grants_total{pool="analytics"}'), 1);
  t.equal(m.get('broker_denials_total{pool="forwarding",reason="capacity"}'), 2);
  t.equal(m.get('broker_denials_total{pool="forwarding",reason="queue-timeout"}'), 1);
  t.equal(m.get('broker_leases_ended_total{pool="forwarding",reason="released"}'), 1);
  t.equal(m.get('broker_lease_heartbeats_total{pool="forwarding"}'), 2);
  t.equal(m.get('broker_lease_heartbeat_failures_total{pool="forwarding"}'), 1);
  t.equal(m.get('broker_queue_wait_seconds_count{outcome="refused"}'), 1, 'the queued request was timed');
  t.equal(m.get('broker_pool_limit{pool="forwarding"}'), capacity.forwarding.limit);
  t.equal(m.get('broker_pool_used{pool="forwarding"}'), capacity.forwarding.used);
  t.equal(m.get('broker_pool_queued{pool="forwarding"}'), capacity.forwarding.queued);
  t.equal(m.get('broker_pool_limit{pool="analytics"}'), 1);
  t.equal(m.get('broker_pool_used{pool="analytics"}'), capacity.analytics.used);
  const agency = (id: string) => capacity.agencies.find((x: { id: string }) => x.id === id);
  t.equal(m.get('broker_agency_slots_used{agency="agency-a",pool="forwarding"}'), agency('agency-a').forwarding.used);
  t.equal(m.get('broker_agency_slots_used{agency="agency-a",pool="analytics"}'), 1);
  t.equal(m.get('broker_http_request_duration_seconds_count{route="/api/v1/streams",method="POST",status="2xx"}'), 3);
  t.equal(m.get('broker_http_request_duration_seconds_count{route="/api/v1/streams",method="POST",status="5xx"}'), 3);

  const audited = (await tb.app.inject({ url: '/api/v1/audit?limit=500', headers: auth(tb.adminToken) })).json().items as Array<{ outcome: string }>;
  const written = [...m].filter(([k]) => k.startsWith('broker_audit_entries_total')).reduce((sum, [, v]) => sum + v, 0);
  t.equal(written, audited.length, 'every audit entry written is counted');
  t.ok(m.has('process_cpu_user_seconds_total'), 'default process metrics');
});

t.test('unknown URLs share one route label; each app has its own registry', async (t) => {
  const one = await buildTestBroker(t);
  const two = await buildTestBroker(t);
  for (const path of ['/nope', '/wp-admin', '/api/v1/nothing']) await one.app.inject({ url: path });
  const m = parse((await one.app.inject({ url: '/metrics' })).body);
  t.equal(m.get('broker_http_request_duration_seconds_count{route="unmatched",method="GET",status="4xx"}'), 3);
  t.notOk([...m.keys()].some((k) => k.includes('wp-admin')));
  const other = parse((await two.app.inject({ url: '/metrics' })).body);
  t.equal(other.get('broker_http_request_duration_seconds_count{route="unmatched",method="GET",status="4xx"}'), undefined, 'the other app counted nothing');
});
