/**
 * GET /reports/usage after a scripted month: sessions, distinct channels, analytics and denials per
 * agency; who may read which agencies; CSV on request; month validation.
 */
import t from 'tap';
import { auth, buildTestBroker, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';

const channels = Array.from({ length: 5 }, (_, i) => makeChannel(i + 1, 1, 'video'));
const month = () => new Date().toISOString().slice(0, 7);
const open = (tb: TestBroker, token: string, channelId: string) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'patrol check' } });
const reserve = (tb: TestBroker, token: string, channelId: string) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: auth(token), payload: { channelId, task: 'crowd count' } });
const report = (tb: TestBroker, token: string, query: string, headers: Record<string, string> = {}) =>
  tb.app.inject({ url: `/api/v1/reports/usage${query}`, headers: { ...auth(token), ...headers } });

t.test('a scripted month, as platform-admin, agency admin and in CSV', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_FORWARDING_SLOTS: '3', BROKER_ANALYTICS_SLOTS: '1' } });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const b = await tb.agency({ id: 'agency-b' });

  const statuses = [
    (await open(tb, a.operatorToken, channels[0]!.id)).statusCode,
    (await open(tb, a.operatorToken, channels[1]!.id)).statusCode,
    (await open(tb, a.adminToken, channels[0]!.id)).statusCode, // shares channel 0
    (await open(tb, b.operatorToken, channels[2]!.id)).statusCode,
    (await open(tb, a.operatorToken, channels[3]!.id)).statusCode, // pool full
    (await reserve(tb, a.adminToken, channels[0]!.id)).statusCode,
    (await reserve(tb, b.adminToken, channels[1]!.id)).statusCode, // analytics pool full
    (await open(tb, b.adminToken, channels[4]!.id)).statusCode, // pool full
  ];
  t.same(statuses, [201, 201, 201, 201, 503, 201, 503, 503]);

  const all = await report(tb, tb.adminToken, `?month=${month()}`);
  t.equal(all.statusCode, 200);
  t.match(all.headers['content-type'], /^application\/json/);
  t.same(all.json(), {
    month: month(),
    agencies: [
      { agencyId: 'agency-a', sessions: 3, distinctChannels: 2, viewingMinutes: 0, analyticsReservations: 1, denied: 1 },
      { agencyId: 'agency-b', sessions: 1, distinctChannels: 1, viewingMinutes: 0, analyticsReservations: 0, denied: 2 },
    ],
    users: all.json().users,
    auditHead: all.json().auditHead,
  });
  // Per user (issue 9): nobody played, so no viewing; a grant counts as its user's session.
  const byId = (x: { userId: string }, y: { userId: string }) => (x.userId < y.userId ? -1 : 1);
  t.same(
    [...all.json().users].sort(byId),
    [
      { userId: a.operatorId, agencyId: 'agency-a', sessions: 2, viewingMinutes: 0, channels: [] },
      { userId: a.adminId, agencyId: 'agency-a', sessions: 1, viewingMinutes: 0, channels: [] },
      { userId: b.operatorId, agencyId: 'agency-b', sessions: 1, viewingMinutes: 0, channels: [] },
    ].sort(byId),
    'per-user rows',
  );
  const head = all.json().auditHead;
  t.match(head, { seq: Number, hash: /^[0-9a-f]{64}$/, keyId: String, signature: String }, "the month's signed head (test/audit/signed-head.test.ts verifies it)");

  const own = await report(tb, a.adminToken, `?month=${month()}`);
  t.same(own.json().agencies.map((x: { agencyId: string }) => x.agencyId), ['agency-a'], 'an admin sees its own agency only');
  t.same([...new Set(own.json().users.map((x: { agencyId: string }) => x.agencyId))], ['agency-a'], "an admin sees its own agency's users only");

  const csv = await report(tb, tb.adminToken, `?month=${month()}`, { accept: 'text/csv' });
  t.equal(csv.statusCode, 200);
  t.equal(csv.headers['content-type'], 'text/csv; charset=utf-8');
  t.match(csv.headers['content-disposition'], /^attachment; filename="usage-\d{4}-\d{2}\.csv"$/);
  t.equal(
    csv.body,
    'month,agencyId,sessions,distinctChannels,viewingMinutes,analyticsReservations,denied\r\n' +
      `${month()},agency-a,3,2,0,1,1\r\n` +
      `${month()},agency-b,1,1,0,0,2\r\n` +
      `auditHead,seq=${head.seq},hash=${head.hash},at=${head.at},keyId=${head.keyId},signature=${head.signature}\r\n`,
  );
  const preferJson = await report(tb, tb.adminToken, `?month=${month()}`, { accept: 'application/json, text/csv;q=0' });
  t.match(preferJson.headers['content-type'], /^application\/json/, 'q=0 means not acceptable');

  t.same((await report(tb, tb.adminToken, '?month=2001-01')).json(), { month: '2001-01', agencies: [], users: [], auditHead: null });
});

t.test('access and validation: 401, 403 for operators and services, 400 for a bad or missing month', async (t) => {
  const tb = await buildTestBroker(t);
  const a = await tb.agency({ id: 'agency-a' });
  const service = await tb.app.inject({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', headers: auth(a.adminToken), payload: { name: 'analyser' } });
  t.equal(service.statusCode, 201);
  const m = `?month=${month()}`;
  t.equal((await tb.app.inject({ url: `/api/v1/reports/usage${m}` })).statusCode, 401);
  t.equal((await report(tb, a.operatorToken, m)).statusCode, 403);
  const asService = await tb.app.inject({ url: `/api/v1/reports/usage${m}`, headers: { authorization: `ApiKey ${service.json().apiKey}` } });
  t.equal(asService.statusCode, 403);
  t.equal(asService.json().error.code, 'FORBIDDEN');
  for (const bad of ['', '?month=2026-13', '?month=2026-1', '?month=26-11', `?month=${month()}&agencyId=agency-b`]) {
    const res = await report(tb, tb.adminToken, bad);
    t.equal(res.statusCode, 400, `400 for "${bad}"`);
    t.equal(res.json().error.code, 'BAD_REQUEST');
  }
});
