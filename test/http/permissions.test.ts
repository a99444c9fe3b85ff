/**
 * Permission truth tables over HTTP: role × own/other agency × action, and class × network
 * visibility. Objects of other agencies answer 404 (like objects that do not exist) and nothing
 * changes; 403 is for actions a role may never take.
 */
import t from 'tap';
import type { InjectOptions } from 'fastify';
import { auth, buildTestBroker } from '../helper.js';
import { makeChannel, mixedCatalog } from '../fixtures.js';
import { mayReceive } from '../../src/http/routes/events.js';
import type { BrokerEvent } from '../../src/core/events.js';
import type { Principal } from '../../src/core/model.js';

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

  // Fresh objects for the rows that end one (each role gets its own, so an earlier success hides nothing).
  const created = async (req: InjectOptions) => {
    const res = await app.inject(req);
    if (res.statusCode !== 201) throw new Error(`${req.url}: ${res.statusCode} ${res.body}`);
    return res.json().id as string;
  };
  const freshStream = (token: string) => created({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId: channel, purpose: 'patrol check' } });
  const freshServiceAccount = (agencyId: string) => created({ method: 'POST', url: `/api/v1/agencies/${agencyId}/service-accounts`, headers: auth(tb.adminToken), payload: { name: 'n' } });
  const bSa = await app.inject({ method: 'POST', url: '/api/v1/agencies/agency-b/service-accounts', headers: auth(b.adminToken), payload: { name: 'svc-b' } });
  const bServiceHeaders = { authorization: `ApiKey ${bSa.json().apiKey}` };
  const reserve = (headers: Record<string, string>) => created({ method: 'POST', url: '/api/v1/analytics/reservations', headers, payload: { channelId: channel, task: 'crowd count' } });
  const bReservationId = await reserve(bServiceHeaders);
  const aOperatorStreamId = await freshStream(a.operatorToken);
  const aAdminStreamId = await freshStream(a.adminToken);
  const month = new Date().toISOString().slice(0, 7);

  const rows: Array<{ action: string; req: () => InjectOptions | Promise<InjectOptions>; expect: Record<Who, number> }> = [
    { action: 'list agencies', req: () => ({ url: '/api/v1/agencies' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read own agency', req: () => ({ url: '/api/v1/agencies/agency-a' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read other agency', req: () => ({ url: '/api/v1/agencies/agency-b' }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'create agency', req: () => ({ method: 'POST', url: '/api/v1/agencies', payload: newAgency() }), expect: { platform: 201, admin: 403, operator: 403, service: 403 } },
    { action: 'patch own agency', req: () => ({ method: 'PATCH', url: '/api/v1/agencies/agency-a', payload: { name: 'A' } }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'list own users', req: () => ({ url: '/api/v1/agencies/agency-a/users' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list other users', req: () => ({ url: '/api/v1/agencies/agency-b/users' }), expect: { platform: 200, admin: 404, operator: 403, service: 403 } },
    { action: 'create own user', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-a/users', payload: newUser() }), expect: { platform: 201, admin: 201, operator: 403, service: 403 } },
    { action: 'create other user', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-b/users', payload: newUser() }), expect: { platform: 201, admin: 404, operator: 403, service: 403 } },
    { action: 'disable other agency operator', req: () => ({ method: 'PATCH', url: `/api/v1/users/${b.operatorId}`, payload: { displayName: 'x' } }), expect: { platform: 200, admin: 404, operator: 403, service: 403 } },
    { action: 'patch own agency operator', req: () => ({ method: 'PATCH', url: `/api/v1/users/${a.operatorId}`, payload: { displayName: 'y' } }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list own service accounts', req: () => ({ url: '/api/v1/agencies/agency-a/service-accounts' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list other service accounts', req: () => ({ url: '/api/v1/agencies/agency-b/service-accounts' }), expect: { platform: 200, admin: 404, operator: 403, service: 403 } },
    { action: 'revoke own service account', req: async () => ({ method: 'DELETE', url: `/api/v1/service-accounts/${await freshServiceAccount('agency-a')}` }), expect: { platform: 204, admin: 204, operator: 403, service: 403 } },
    { action: 'revoke other service account', req: async () => ({ method: 'DELETE', url: `/api/v1/service-accounts/${await freshServiceAccount('agency-b')}` }), expect: { platform: 204, admin: 404, operator: 403, service: 403 } },
    { action: 'create own service account', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', payload: { name: 'n' } }), expect: { platform: 201, admin: 201, operator: 403, service: 403 } },
    { action: 'create other service account', req: () => ({ method: 'POST', url: '/api/v1/agencies/agency-b/service-accounts', payload: { name: 'n' } }), expect: { platform: 201, admin: 404, operator: 403, service: 403 } },
    { action: 'list channels', req: () => ({ url: '/api/v1/channels' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read a channel', req: () => ({ url: `/api/v1/channels/${channel}` }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'channel stats', req: () => ({ url: '/api/v1/channels/stats' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'patch channel', req: () => ({ method: 'PATCH', url: `/api/v1/channels/${channel}`, payload: { name: '改名' } }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'import channels', req: () => ({ method: 'POST', url: '/api/v1/channels/import', headers: { 'content-type': 'application/x-ndjson' }, payload: '' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'request a stream', req: () => ({ method: 'POST', url: '/api/v1/streams', payload: { channelId: channel, purpose: 'patrol check' } }), expect: { platform: 201, admin: 201, operator: 201, service: 403 } },
    { action: 'read own agency operator stream', req: () => ({ url: `/api/v1/streams/${aOperatorStreamId}` }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read colleague (admin) stream', req: () => ({ url: `/api/v1/streams/${aAdminStreamId}` }), expect: { platform: 200, admin: 200, operator: 404, service: 403 } },
    { action: 'end colleague (admin) stream', req: async () => ({ method: 'DELETE', url: `/api/v1/streams/${await freshStream(a.adminToken)}` }), expect: { platform: 204, admin: 204, operator: 404, service: 403 } },
    { action: 'end other agency stream', req: async () => ({ method: 'DELETE', url: `/api/v1/streams/${await freshStream(b.operatorToken)}` }), expect: { platform: 204, admin: 404, operator: 404, service: 403 } },
    { action: 'list my streams', req: () => ({ url: '/api/v1/streams?scope=mine' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'read other agency stream', req: () => ({ url: `/api/v1/streams/${bStreamId}` }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'heartbeat other agency stream', req: () => ({ method: 'POST', url: `/api/v1/streams/${bStreamId}/heartbeat` }), expect: { platform: 200, admin: 404, operator: 404, service: 403 } },
    { action: 'list agency streams', req: () => ({ url: '/api/v1/streams?scope=agency' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list all streams', req: () => ({ url: '/api/v1/streams?scope=all' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'capacity', req: () => ({ url: '/api/v1/capacity' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'audit', req: () => ({ url: '/api/v1/audit' }), expect: { platform: 200, admin: 200, operator: 200, service: 403 } },
    { action: 'audit verify', req: () => ({ url: '/api/v1/audit/verify' }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'audit verify a kept head', req: () => ({ url: `/api/v1/audit/verify?seq=0&hash=${'0'.repeat(64)}` }), expect: { platform: 200, admin: 403, operator: 403, service: 403 } },
    { action: 'audit signed head', req: () => ({ url: '/api/v1/audit/head' }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'audit public key', req: () => ({ url: '/api/v1/audit/public-key' }), expect: { platform: 200, admin: 200, operator: 200, service: 200 } },
    { action: 'usage report', req: () => ({ url: `/api/v1/reports/usage?month=${month}` }), expect: { platform: 200, admin: 200, operator: 403, service: 403 } },
    { action: 'list reservations', req: () => ({ url: '/api/v1/analytics/reservations' }), expect: { platform: 200, admin: 200, operator: 403, service: 200 } },
    { action: 'read other agency reservation', req: () => ({ url: `/api/v1/analytics/reservations/${bReservationId}` }), expect: { platform: 200, admin: 404, operator: 403, service: 404 } },
    { action: 'heartbeat other agency reservation', req: () => ({ method: 'POST', url: `/api/v1/analytics/reservations/${bReservationId}/heartbeat` }), expect: { platform: 200, admin: 404, operator: 403, service: 404 } },
    { action: 'end own agency reservation', req: async () => ({ method: 'DELETE', url: `/api/v1/analytics/reservations/${await reserve(serviceHeaders)}` }), expect: { platform: 204, admin: 204, operator: 403, service: 204 } },
    { action: 'end other agency reservation', req: async () => ({ method: 'DELETE', url: `/api/v1/analytics/reservations/${await reserve(bServiceHeaders)}` }), expect: { platform: 204, admin: 404, operator: 403, service: 404 } },
    { action: 'reserve analytics', req: () => ({ method: 'POST', url: '/api/v1/analytics/reservations', payload: { channelId: channel, task: 'crowd count' } }), expect: { platform: 201, admin: 201, operator: 403, service: 201 } },
  ];
  for (const row of rows) {
    for (const role of Object.keys(who) as Who[]) {
      const req = await row.req();
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

t.test('what each role’s answers cover: lists, capacity, source URLs, reports, audit, live events', async (t) => {
  const tb = await buildTestBroker(t);
  const { app, broker } = tb;
  await broker.catalog.seed(mixedCatalog(2));
  const channel = mixedCatalog(2)[0]!.id;
  const a = await tb.agency({ id: 'agency-a' });
  const b = await tb.agency({ id: 'agency-b' });
  const keyOf = async (token: string, agencyId: string) =>
    `ApiKey ${(await app.inject({ method: 'POST', url: `/api/v1/agencies/${agencyId}/service-accounts`, headers: auth(token), payload: { name: 'svc' } })).json().apiKey}`;
  const aService = { authorization: await keyOf(a.adminToken, 'agency-a') };
  const aService2 = { authorization: await keyOf(a.adminToken, 'agency-a') };
  const bService = { authorization: await keyOf(b.adminToken, 'agency-b') };
  const who = { platform: auth(tb.adminToken), admin: auth(a.adminToken), operator: auth(a.operatorToken), service: aService } as const;
  type Who = keyof typeof who;
  const get = async (headers: Record<string, string>, url: string) => {
    const res = await app.inject({ url, headers });
    t.equal(res.statusCode, 200, `${url} answers`);
    return res.json();
  };
  const open = async (headers: Record<string, string>, url: string, payload: object) => {
    const res = await app.inject({ method: 'POST', url, headers, payload });
    t.equal(res.statusCode, 201, `${url} granted`);
    return res.json().id as string;
  };
  const streamOf = { operator: await open(who.operator, '/api/v1/streams', { channelId: channel, purpose: 'patrol check' }), admin: await open(who.admin, '/api/v1/streams', { channelId: channel, purpose: 'review footage' }), b: await open(auth(b.operatorToken), '/api/v1/streams', { channelId: channel, purpose: 'patrol check' }) };
  const reservationOf = { service: await open(aService, '/api/v1/analytics/reservations', { channelId: channel, task: 'count' }), service2: await open(aService2, '/api/v1/analytics/reservations', { channelId: channel, task: 'count' }), b: await open(bService, '/api/v1/analytics/reservations', { channelId: channel, task: 'count' }) };
  const ids = (items: Array<{ id: string }>) => items.map((i) => i.id).sort();

  t.test('sessions: ?scope=mine|agency|all', async (t) => {
    t.same(ids((await get(who.operator, '/api/v1/streams?scope=mine')).items), [streamOf.operator]);
    t.same(ids((await get(who.admin, '/api/v1/streams?scope=mine')).items), [streamOf.admin]);
    t.same(ids((await get(who.admin, '/api/v1/streams?scope=agency')).items), [streamOf.operator, streamOf.admin].sort());
    t.same(ids((await get(who.platform, '/api/v1/streams?scope=all')).items), Object.values(streamOf).sort());
  });

  t.test('reservations: service its own, admin its agency, platform all', async (t) => {
    t.same(ids((await get(who.service, '/api/v1/analytics/reservations')).items), [reservationOf.service]);
    t.same(ids((await get(who.admin, '/api/v1/analytics/reservations')).items), [reservationOf.service, reservationOf.service2].sort());
    t.same(ids((await get(who.platform, '/api/v1/analytics/reservations')).items), Object.values(reservationOf).sort());
  });

  t.test('capacity: own agency; every agency and the media nodes for platform-admins only', async (t) => {
    for (const role of ['platform', 'admin', 'operator'] as const) {
      const capacity = await get(who[role], '/api/v1/capacity');
      t.same(capacity.agencies.map((x: { id: string }) => x.id).sort(), role === 'platform' ? ['agency-a', 'agency-b', 'platform'] : ['agency-a'], `${role}: agencies`);
      t.equal('mediaNodes' in capacity, role === 'platform', `${role}: media nodes ${role === 'platform' ? 'shown' : 'hidden'}`);
    }
  });

  t.test('channels: sourceUrl for platform-admins only', async (t) => {
    for (const role of ['platform', 'admin', 'operator'] as const) {
      const one = await get(who[role], `/api/v1/channels/${channel}`);
      const list = await get(who[role], '/api/v1/channels');
      t.equal('sourceUrl' in one, role === 'platform', `${role}: GET /channels/:id`);
      t.equal(list.items.some((c: object) => 'sourceUrl' in c), role === 'platform', `${role}: GET /channels`);
    }
  });

  t.test('usage report: own agency, platform-admin every agency', async (t) => {
    const month = new Date().toISOString().slice(0, 7);
    const agenciesIn = async (role: Who) => (await get(who[role], `/api/v1/reports/usage?month=${month}`)).agencies.map((x: { agencyId: string }) => x.agencyId).sort();
    t.same(await agenciesIn('admin'), ['agency-a']);
    t.ok((await agenciesIn('platform')).includes('agency-b'), 'platform-admin sees agency B');
    const csv = await app.inject({ url: `/api/v1/reports/usage?month=${month}`, headers: { ...who.admin, accept: 'text/csv' } });
    t.notOk(csv.body.includes('agency-b'), 'the CSV is narrowed the same way');
  });

  t.test('audit: operator its own actions, admin its agency, platform-admin all', async (t) => {
    type Entry = { actor: { id: string; agencyId: string }; details?: { agencyId?: unknown } };
    const entries = async (role: Who, query = ''): Promise<Entry[]> => (await get(who[role], `/api/v1/audit?limit=500${query}`)).items;
    const concerns = (agencyId: string) => (e: Entry) => e.actor.agencyId === agencyId || e.details?.agencyId === agencyId;
    const operatorMe = (await get(who.operator, '/api/v1/auth/me')).id;
    const operatorSees = await entries('operator');
    t.ok(operatorSees.length > 0 && operatorSees.every((e) => e.actor.id === operatorMe), 'operator: its own actions only');
    t.same(await entries('operator', '&agencyId=agency-b'), [], 'an operator asking for another agency gets nothing of it');
    const adminSees = await entries('admin');
    t.ok(adminSees.some((e) => e.actor.id === operatorMe) && adminSees.every(concerns('agency-a')), 'admin: its agency only, colleagues included');
    t.ok((await entries('admin', '&agencyId=agency-b')).every(concerns('agency-a')), 'admin asking for agency B still gets its own');
    t.ok((await entries('platform')).some((e) => e.actor.agencyId === 'agency-b'), 'platform-admin: every agency');
  });

  t.test('live events: who receives which (role × own / colleague / other agency × event)', async (t) => {
    const principals = {
      platform: broker.accounts.authenticate(who.platform.authorization)!,
      admin: broker.accounts.authenticate(who.admin.authorization)!,
      operator: broker.accounts.authenticate(who.operator.authorization)!,
    };
    const operatorId = principals.operator.id;
    const base = { at: new Date().toISOString(), id: 'x', channelId: channel };
    const events = {
      'own stream.ended': { ...base, type: 'stream.ended', reason: 'released', principalId: operatorId, agencyId: 'agency-a' },
      'colleague stream.expiring': { ...base, type: 'stream.expiring', expiresAt: base.at, principalId: 'someone', agencyId: 'agency-a' },
      'other agency queue.granted': { ...base, type: 'queue.granted', ticketId: 't', principalId: 'someone', agencyId: 'agency-b' },
      'own agency reservation.ended': { ...base, type: 'reservation.ended', reason: 'released', principalId: 'svc', agencyId: 'agency-a' },
      capacity: { type: 'capacity', at: base.at, forwarding: { limit: 1, used: 0, queued: 0 }, analytics: { limit: 1, used: 0 } },
    } as const;
    const expected: Record<keyof typeof principals, Array<keyof typeof events>> = {
      platform: Object.keys(events) as Array<keyof typeof events>,
      admin: ['own stream.ended', 'colleague stream.expiring', 'own agency reservation.ended', 'capacity'],
      operator: ['own stream.ended', 'capacity'],
    };
    for (const [role, p] of Object.entries(principals) as Array<[keyof typeof principals, Principal]>) {
      for (const [name, event] of Object.entries(events) as Array<[keyof typeof events, BrokerEvent]>) {
        t.equal(mayReceive(broker.access, p, event), expected[role].includes(name), `${role} ${expected[role].includes(name) ? 'receives' : 'does not receive'} ${name}`);
      }
    }
    const service = broker.accounts.authenticate(aService.authorization)!;
    const mine = { ...events['own agency reservation.ended'], principalId: service.id };
    t.equal(mayReceive(broker.access, service, mine), true, 'a service receives its own reservation.ended');
    t.equal(mayReceive(broker.access, service, events['own agency reservation.ended']), false, "but not another service's");
    t.equal(mayReceive(broker.access, service, { ...events['own stream.ended'], principalId: service.id }), false, 'and no stream events');
  });
});
