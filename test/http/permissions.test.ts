/**
 * Permission truth tables over HTTP: role × own/other agency × action, and class × network
 * visibility. Objects of other agencies answer 404 (like objects that do not exist) and nothing
 * changes; 403 is for actions a role may never take.
 */
import t from 'tap';
import type { InjectOptions } from 'fastify';
import { auth, buildTestBroker } from '../helper.js';
import { makeChannel, mixedCatalog } from '../fixtures.js';

t.test('role × agency × action truth table', async (t) => {
  const tb = await buildTestBroker(t);
  const { app, broker } = tb;
  await broker.catalog.seed(mixedCatalog(2));
  const a = await tb.agency({ id: 'agency-a' });
  const b = await tb.agency({ id: 'agency-b' });
  const sa = await app.inject({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', headers: auth(a.adminToken), payload: { name: 'svc' } });
  const serviceHeaders = { authorization: `ApiKey ${sa.json().apiKey}` };
  const channel = mixedCatalog(2)[0]!.id;

  // A session of agency B's operator, for the "other agency" rows.
  const bStream = await app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(b.operatorToken), payload: { channelId: channel, purpose: 'patrol check' } });
  t.equal(bStream.statusCode, 201);
  const bStreamId = bStream.json().id;

  const who = {
    platform: auth(tb.adminToken),
    admin: auth(a.adminToken),
    operator: auth(a.operatorToken),
    service: serviceHeaders,
  } as const;
  type Who = keyof typeof who;
  const newUser = () => ({ username: `u${Math.random().toString(36).slice(2, 10)}`, password: 'a-long-password', role: 'operator' });
  const newAgency = () => ({ id: `x${Math.random().toString(36).slice(2, 10)}`, name: 'n', networks: ['gov'], classes: [2], quotas: { forwarding: 1, analytics: 1 } });

  const rows: Array<{ action: string; req: () => InjectOptions; expect: Record<Who, number> }> = [
    { action: 'read own agency', req: () => ({ url: '/api/v1/agencies/agency-a' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read other agency', req: () => ({ url: '/api/v1/agencies/agency-b' }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'create agency', req: () => ({ method: 'POST', url: '/api/v1/agencies', payload: newAgency() }), expect: { platform: 201, admin: 403, operator: 403, service: 403 } },
    { action: 'patch own agency', req: () => ({ method: 'PATCH', url: '/api/v1/agencies/agency-a', payload: { name: 'A' } }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'list own users', req: () => ({ url: '/api/v1/agencies/agency-a/users' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list other users', req: () => ({ url: '/api/v1/agencies/agency-b/users' }), expect: { platform: 200, admin: 404, operator: 403, service: 403 } },
    { action: 'create own user', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-a/users', payload: newUser() }), expect: { platform: 201, admin: 201, operator: 403, service: 403 } },
    { action: 'create other user', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-b/users', payload: newUser() }), expect: { platform: 201, admin: 404, operator: 403, service: 403 } },
    { action: 'disable other agency operator', req: () => ({ method: 'PATCH', url: `/api/v1/users/${b.operatorId}`, payload: { displayName: 'x' } }), expect: { platform: 200, admin: 404, operator: 403, service: 403 } },
    { action: 'create own service account', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', payload: { name: 'n' } }), expect: { platform: 201, admin: 201, operator: 403, service: 403 } },
    { action: 'create other service account', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-b/service-accounts', payload: { name: 'n' } }), expect: { platform: 201, admin: 404, operator: 403, service: 403 } },
    { action: 'list channels', req: () => ({ url: '/api/v1/channels' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'patch channel', req: () => ({ method: 'PATCH', url: `/api/v1/channels/${channel}`, payload: { name: '改名' } }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'import channels', req: () => ({ method: 'POST', url: '/api/v1/channels/import', headers: { 'content-type': 'application/x-ndjson' }, payload: '' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'request a stream', req: () => ({ method: 'POST', url: '/api/v1/streams', payload: { channelId: channel, purpose: 'patrol check' } }), expect: { platform: 201, admin: 201, operator: 201, service: 403 } },
    { action: 'read other agency stream', req: () => ({ url: `/api/v1/streams/${bStreamId}` }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'heartbeat other agency stream', req: () => ({ method: 'POST', url: `/api/v1/streams/${bStreamId}/heartbeat` }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'list agency streams', req: () => ({ url: '/api/v1/streams?scope=agency' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list all streams', req: () => ({ url: '/api/v1/streams?scope=all' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'capacity', req: () => ({ url: '/api/v1/capacity' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'audit', req: () => ({ url: '/api/v1/audit' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'audit verify', req: () => ({ url: '/api/v1/audit/verify' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'reserve analytics', req: () => ({ method: 'POST', url: '/api/v1/analytics/reservations', payload: { channelId: channel, task: 'crowd count' } }), expect: { platform: 201, admin: 201, operator: 403, service: 201 } },
  ];
  for (const row of rows) {
    for (const role of Object.keys(who) as Who[]) {
      const req = row.req();
      const res = await app.inject({ ...req, headers: { ...who[role], ...(req.headers as object) } });
      t.equal(res.statusCode, row.expect[role], `${role}: ${row.action} → ${row.expect[role]} (${res.statusCode} ${res.statusCode >= 400 ? res.json().error?.code : ''})`);
    }
  }
  // Nothing of agency B changed through the cross-agency attempts.
  const bUsers = await app.inject({ url: '/api/v1/agencies/agency-b/users', headers: auth(tb.adminToken) });
  t.equal(bUsers.json().items.length, 2 + 1, 'agency B: its 2 users plus the one the platform-admin created');
  t.equal((await app.inject({ url: `/api/v1/streams/${bStreamId}`, headers: auth(b.operatorToken) })).statusCode, 200, "B's stream untouched");
});

t.test('operators manage only their own sessions; admins their agency', async (t) => {
  const tb = await buildTestBroker(t);
  const { app, broker } = tb;
  await broker.catalog.seed(mixedCatalog(2));
  const a = await tb.agency({ id: 'agency-a' });
  const channel = mixedCatalog(2)[0]!.id;
  const created = await app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.adminToken), payload: { channelId: channel, purpose: 'review footage' } });
  const id = created.json().id;
  t.equal((await app.inject({ url: `/api/v1/streams/${id}`, headers: auth(a.operatorToken) })).statusCode, 404, "operator cannot see its admin's session");
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/streams/${id}`, headers: auth(a.operatorToken) })).statusCode, 404);
  const mine = await app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId: channel, purpose: 'patrol check' } });
  t.equal(mine.json().shared, true, 'joins the forwarded channel');
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/streams/${mine.json().id}`, headers: auth(a.adminToken) })).statusCode, 204, 'admin ends an agency session');
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/streams/${id}`, headers: auth(a.adminToken) })).statusCode, 204);
});

t.test('class × network visibility follows the agency grants, and changes at once', async (t) => {
  const tb = await buildTestBroker(t);
  const { app, broker } = tb;
  const cells = [
    makeChannel(1, 1, 'video'),
    makeChannel(2, 1, 'police'),
    makeChannel(3, 2, 'gov'),
    makeChannel(4, 2, 'interconnect'),
    makeChannel(5, 3, 'gov'),
    makeChannel(6, 3, 'interconnect'),
  ];
  await broker.catalog.seed(cells);
  const wx = await tb.agency({ id: 'weather', classes: [2, 3], networks: ['gov'] });
  const visible = async () => {
    const res = await app.inject({ url: '/api/v1/channels?limit=500', headers: auth(wx.operatorToken) });
    return res.json().items.map((c: { id: string }) => c.id).sort();
  };
  t.same(await visible(), [cells[2]!.id, cells[4]!.id].sort(), 'classes 2,3 on gov only');
  for (const cell of cells) {
    const expected = [cells[2]!.id, cells[4]!.id].includes(cell.id) ? 200 : 404;
    t.equal((await app.inject({ url: `/api/v1/channels/${cell.id}`, headers: auth(wx.operatorToken) })).statusCode, expected, `class ${cell.class} ${cell.network}`);
    const stream = await app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(wx.operatorToken), payload: { channelId: cell.id, purpose: 'fog watch' } });
    t.equal(stream.statusCode, expected === 200 ? 201 : 404, `watch class ${cell.class} ${cell.network}`);
  }
  const stats = await app.inject({ url: '/api/v1/channels/stats', headers: auth(wx.operatorToken) });
  t.equal(stats.json().total, 2);
  t.notOk(JSON.stringify((await app.inject({ url: '/api/v1/channels', headers: auth(wx.operatorToken) })).json()).includes('sourceUrl'), 'sourceUrl hidden from agencies');

  const patched = await app.inject({ method: 'PATCH', url: '/api/v1/agencies/weather', headers: auth(tb.adminToken), payload: { networks: ['gov', 'interconnect'] } });
  t.equal(patched.statusCode, 200);
  t.same(await visible(), [cells[2]!.id, cells[3]!.id, cells[4]!.id, cells[5]!.id].sort(), 'widened at once');
  const narrowed = await app.inject({ method: 'PATCH', url: '/api/v1/agencies/weather', headers: auth(tb.adminToken), payload: { classes: [3] } });
  t.equal(narrowed.statusCode, 200);
  t.same(await visible(), [cells[4]!.id, cells[5]!.id].sort(), 'narrowed at once');
  const policyAudit = await app.inject({ url: '/api/v1/audit?action=policy.change', headers: auth(tb.adminToken) });
  t.equal(policyAudit.json().items.length, 2, 'policy changes audited');
});
