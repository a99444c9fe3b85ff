/**
 * Issue 8: the property-based pass over every route of /openapi.json. For each route × each caller
 * (anonymous, operator, admin of agency A, admin of agency B, platform-admin, service) fast-check
 * sends random and hostile requests through app.inject — bodies of the wrong types, huge, deeply
 * nested, with `__proto__`, unicode and nulls; header variants (content types, huge values, doubled
 * auth schemes); query strings and path ids with unicode, `..`, %-encodings and 10k characters — and
 * checks what API.md "Conventions" promises of every answer:
 *  - never a 5xx;
 *  - a 4xx is JSON with the error shape `{"error":{"code","message"}}`;
 *  - answers are JSON (where API.md says JSON);
 *  - a refusal (4xx) changes nothing: the document store (agencies, users, service accounts,
 *    channels, policy), the slot store (usage, sessions, reservations) and the audit log, which may
 *    only gain `denied` entries (refusals are evidence too).
 * Successful writes are allowed to change state; afterwards the fixture is put back (tokens, the
 * live stream, agency grants), so every run meets the same world. Fixed seed, bounded runs.
 * @see ../../../shared/API.md "Conventions"
 */
import t from 'tap';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { auth, buildTestBroker } from '../helper.js';
import { mixedCatalog } from '../fixtures.js';
import type { AuditEntry, Principal } from '../../src/core/model.js';
import type { Collection } from '../../src/core/ports.js';

const SEED = 20261201;
/** Runs per route and caller: ~40 routes × 6 callers × RUNS requests, 15-30 s on a 2-core machine. */
const RUNS = 16;
const COLLECTIONS: Collection[] = ['agencies', 'users', 'serviceAccounts', 'channels', 'policy', 'meta'];
const ROLES = ['anonymous', 'operator', 'adminA', 'adminB', 'platform', 'service'] as const;
type Caller = (typeof ROLES)[number];
const SYSTEM: Principal = { kind: 'user', id: 'system', name: 'system', role: 'platform-admin', agencyId: 'platform' };
const PASSWORD = 'fuzz-fixture-password';
/** Where the fixture's own logins come from, so the fuzzed logins' failures never throttle them. */
const FIXTURE_ADDRESS = '10.250.0.1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { type?: string; enum?: Json[]; anyOf?: Schema[]; properties?: Record<string, Schema>; required?: string[]; items?: Schema; pattern?: string; minLength?: number; maxLength?: number; minimum?: number; maximum?: number; maxItems?: number };
type Operation = { parameters?: Array<{ in: string; name: string; schema: Schema }>; requestBody?: { content: Record<string, { schema: Schema }> } };
type Route = { method: string; path: string; op: Operation };

// ---------------------------------------------------------------------------------------------- values

const HOSTILE_STRINGS = [
  '',
  ' ',
  '..',
  '../..',
  '..%2f..%2f',
  '%2e%2e%2f',
  '%',
  '%zz',
  '%00',
  '%C0%AE',
  '\u0000',
  '\ud800',
  '😀'.repeat(50),
  '视频 监控',
  'a b',
  "'; DROP TABLE users; --",
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'null',
  '-1',
  '1e999',
  'NaN',
  '=cmd|calc!A1',
  'x'.repeat(10_000),
];
const hostileString = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }));
const wrongType: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  hostileString,
  fc.constant([] as Json),
  fc.constant({} as Json),
  fc.constant({ __proto__: { polluted: 'yes' } } as unknown as Json),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
);

/** A value the schema accepts (most of the time), from the schema itself and the fixture's real ids. */
function fromSchema(schema: Schema, name: string, known: Record<string, string[]>): fc.Arbitrary<Json> {
  const real = known[name];
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map((s) => fromSchema(s, name, known)));
  switch (schema.type) {
    case 'string': {
      const shaped = schema.pattern
        ? fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length <= (schema.maxLength ?? 1000))
        : fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 40) });
      return real ? fc.oneof(fc.constantFrom(...real), shaped) : shaped;
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(fromSchema(schema.items ?? {}, name, known), { maxLength: schema.maxItems ?? 4 });
    case 'object': {
      const props = schema.properties ?? {};
      const record = Object.fromEntries(Object.entries(props).map(([key, s]) => [key, fromSchema(s, key, known)]));
      return fc.record(record, { requiredKeys: (schema.required ?? []).filter((k) => k in props) }) as fc.Arbitrary<Json>;
    }
    default:
      return fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
  }
}

/** A schema-shaped value with, sometimes, one field replaced by a wrong type or an unknown field added. */
function mutated(schema: Schema, name: string, known: Record<string, string[]>): fc.Arbitrary<Json> {
  return fc.tuple(fromSchema(schema, name, known), fc.nat(4), wrongType, fc.constantFrom('extra', '__proto__', 'constructor', 'id', '')).map(([value, how, bad, key]) => {
    if (how < 2 || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    const copy: Record<string, Json> = { ...value };
    const keys = Object.keys(copy);
    if (how === 2 && keys.length > 0) copy[keys[bad === null ? 0 : keys.length - 1]!] = bad;
    else Object.defineProperty(copy, key, { value: bad, enumerable: true, configurable: true, writable: true });
    return copy;
  });
}

const deep = (depth: number, open: string, close: string, leaf = '1') => open.repeat(depth) + leaf + close.repeat(depth);
const RAW_BODIES = [
  '',
  '{',
  '{"a":}',
  'null',
  '[]',
  '"text"',
  '1e999',
  '\ufeff{}',
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"a":"\\ud800"}',
  `{"name":"${'x'.repeat(2 * 1024 * 1024)}"}`,
  deep(10_000, '[', ']'),
  deep(5_000, '{"a":', '}'),
  `{"channelId":${deep(2_000, '[', ']')},"purpose":"deep nesting"}`,
  Buffer.from([0xff, 0xfe, 0x00, 0x81]).toString('latin1'),
];
const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json; charset=utf-16',
  'application/json;;',
  'text/plain',
  'application/x-ndjson',
  'text/csv',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  '',
  `application/json; x=${'y'.repeat(8_000)}`,
];

/** %-encodes any string; a lone surrogate (which encodeURIComponent refuses) becomes the bad UTF-8 `%ED%A0%80`. */
const encode = (s: string) => s.split(/([\ud800-\udfff])/u).map((part, i) => (i % 2 === 1 ? '%ED%A0%80' : encodeURIComponent(part))).join('');

/** An Authorization value as a report may show it: its scheme and length, never the credential. */
const redacted = (authorization: string) => `${authorization.split(' ')[0]!.slice(0, 10)} …(${authorization.length} chars)`;

/** The error code of an answer with the error shape, else undefined. */
function codeOf(res: { body: string }): string | undefined {
  try {
    const error = (JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } }).error;
    return typeof error?.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(error.code) && typeof error.message === 'string' ? error.code : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------- the test

t.test('every route of /openapi.json × every caller: no 5xx, the error shape, no state change on a refusal', async (t) => {
  const tb = await buildTestBroker(t, {
    // The throttle has its own tests; here it would only stop the fixture from logging back in.
    env: { BROKER_LOGIN_MAX_FAILURES_PER_USER: '1000', BROKER_LOGIN_MAX_FAILURES_PER_ADDRESS: '10000', BROKER_LEASE_TTL_SECONDS: '3600' },
  });
  const { app, broker } = tb;
  const catalog = mixedCatalog(4);
  await broker.catalog.seed(catalog);
  const channelIds = catalog.map((c) => c.id);

  // ---- the world: two agencies, each with an admin, an operator and a service account; one live stream
  const rootId = broker.accounts.authenticate(`Bearer ${tb.adminToken}`)!.id;
  const users: Record<'operator' | 'adminA' | 'adminB' | 'operatorB', { id: string; username: string; role: 'admin' | 'operator'; agencyId: string }> = {} as never;
  const agencyBody = (id: string) => ({ id, name: `agency ${id}`, networks: ['video', 'police', 'gov', 'interconnect'], classes: [1, 2, 3], quotas: { forwarding: 1000, analytics: 1000 } });
  for (const id of ['agency-a', 'agency-b']) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/agencies', headers: auth(tb.adminToken), payload: agencyBody(id) });
    t.equal(res.statusCode, 201, `agency ${id}`);
  }
  for (const [key, role, agencyId] of [['adminA', 'admin', 'agency-a'], ['operator', 'operator', 'agency-a'], ['adminB', 'admin', 'agency-b'], ['operatorB', 'operator', 'agency-b']] as const) {
    const username = `fuzz.${key.toLowerCase()}`;
    const res = await app.inject({ method: 'POST', url: `/api/v1/agencies/${agencyId}/users`, headers: auth(tb.adminToken), payload: { username, password: PASSWORD, role } });
    t.equal(res.statusCode, 201, `user ${username}`);
    users[key] = { id: res.json().id, username, role, agencyId };
  }
  const tokens: Record<string, string> = { platform: tb.adminToken };
  const keys: Record<'service' | 'serviceB', { id: string; apiKey: string }> = {} as never;
  /** Live objects of each agency, for the refusals that matter most: someone else's object, by its real id. */
  const live = { stream: '', streamB: '', reservation: '', reservationB: '' };

  const valid = (authorization: string | undefined) => {
    try {
      return authorization !== undefined && broker.accounts.authenticate(authorization) !== null;
    } catch {
      return false; // a token whose user changed may throw rather than answer null; either way it is spent
    }
  };
  const rootHeader = () => `Bearer ${tokens.platform}`;
  const asRoot = (req: InjectOptions) => app.inject({ ...req, headers: { ...(req.headers as object), authorization: rootHeader() } });

  /** Puts the fixture back after a write (a success may change it; so may a refusal that is a defect). */
  async function heal(): Promise<void> {
    if (!valid(rootHeader())) {
      await broker.accounts.patchUser(SYSTEM, rootId, { password: tb.adminPassword, disabled: false });
      tokens.platform = (await broker.accounts.login('admin', tb.adminPassword, FIXTURE_ADDRESS)).token;
    }
    for (const id of ['agency-a', 'agency-b']) {
      const agency = broker.accounts.agency(id)!;
      if (agency.networks.length < 4 || agency.classes.length < 3 || agency.quotas.forwarding < 1000 || agency.quotas.analytics < 1000) {
        const { id: _id, ...patch } = agencyBody(id);
        t.equal((await asRoot({ method: 'PATCH', url: `/api/v1/agencies/${id}`, payload: patch })).statusCode, 200, `heal agency ${id}`);
      }
    }
    for (const channel of catalog) {
      const now = broker.catalog.channel(channel.id);
      if (now?.status !== 'online' || now.class !== channel.class) {
        t.equal((await asRoot({ method: 'PATCH', url: `/api/v1/channels/${channel.id}`, payload: { status: 'online', class: channel.class } })).statusCode, 200, 'heal channel');
      }
    }
    for (const [key, user] of Object.entries(users)) {
      if (valid(tokens[key] && `Bearer ${tokens[key]}`) && broker.accounts.user(user.id)?.role === user.role) continue;
      await broker.accounts.patchUser(SYSTEM, user.id, { password: PASSWORD, disabled: false, role: user.role });
      tokens[key] = (await broker.accounts.login(user.username, PASSWORD, FIXTURE_ADDRESS)).token;
    }
    for (const [key, agencyId] of [['service', 'agency-a'], ['serviceB', 'agency-b']] as const) {
      if (keys[key] && valid(`ApiKey ${keys[key].apiKey}`)) continue;
      const res = await asRoot({ method: 'POST', url: `/api/v1/agencies/${agencyId}/service-accounts`, payload: { name: `fuzz ${key}` } });
      keys[key] = { id: res.json().id, apiKey: res.json().apiKey };
    }
    for (const [key, user] of [['stream', 'operator'], ['streamB', 'operatorB']] as const) {
      if (live[key] && (await broker.slots.getSession(live[key]))) continue;
      const res = await app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(tokens[user]!), payload: { channelId: channelIds[0], purpose: 'fuzz live stream' } });
      t.equal(res.statusCode, 201, `the live stream of ${user}`);
      live[key] = res.json().id;
    }
    for (const [key, service] of [['reservation', 'service'], ['reservationB', 'serviceB']] as const) {
      if (live[key] && (await broker.slots.getReservation(live[key]))) continue;
      const res = await app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: { authorization: `ApiKey ${keys[service].apiKey}` }, payload: { channelId: channelIds[0], task: 'fuzz' } });
      t.equal(res.statusCode, 201, `the live reservation of ${service}`);
      live[key] = res.json().id;
    }
  }
  await heal();

  const authorizationOf = (caller: Caller): string | undefined => {
    if (caller === 'anonymous') return undefined;
    if (caller === 'service') return `ApiKey ${keys.service.apiKey}`;
    return `Bearer ${tokens[caller]}`;
  };
  /** Real ids by parameter name, resolved at request time (the fixture may have been re-made). */
  const realIds: Record<string, () => string[]> = {
    agencyId: () => ['agency-a', 'agency-b', 'platform'],
    userId: () => [rootId, ...Object.values(users).map((u) => u.id)],
    channelId: () => channelIds,
    id: () => [live.stream, live.streamB, live.reservation, live.reservationB, keys.service.id, keys.serviceB.id],
  };
  /** The ids a route's `{id}` names: its own kind of object first (another kind's id is a plain unknown id). */
  const idsFor = (routePath: string, name: string): string[] => {
    if (name !== 'id') return (realIds[name] ?? realIds.id!)();
    if (routePath.includes('/streams/')) return [live.stream, live.streamB];
    if (routePath.includes('/reservations/')) return [live.reservation, live.reservationB];
    if (routePath.includes('/service-accounts/')) return [keys.service.id, keys.serviceB.id];
    return realIds.id!();
  };

  // ---- what is compared around a refusal
  const snapshot = async () => {
    const docs = await Promise.all(COLLECTIONS.map(async (c) => [c, await broker.store.all(c)]));
    const slots = await Promise.all([broker.slots.usage(), broker.slots.listSessions({}), broker.slots.listReservations({})]);
    return JSON.stringify({ docs, slots });
  };
  const appended: AuditEntry[] = [];
  broker.audit.onRecord((entry) => appended.push(entry));
  // The comparison can fail: a write the fixture makes shows in the snapshot and in the audit entries seen.
  const untouched = await snapshot();
  const probe = await asRoot({ method: 'POST', url: '/api/v1/agencies/agency-b/service-accounts', payload: { name: 'probe' } });
  t.equal(probe.statusCode, 201);
  t.not(await snapshot(), untouched, 'the snapshot sees a new service account');
  t.ok(appended.some((e) => e.outcome === 'ok'), 'the audit listener sees its entry');

  // ---- the routes
  const spec = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, Operation>> };
  const routes: Route[] = Object.entries(spec.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
  t.ok(routes.length >= 30, `${routes.length} routes in /openapi.json`);
  // Routes the spec does not list (a WebSocket, an unknown path, a wrong method) answer with the same shape.
  routes.push(
    { method: 'GET', path: '/api/v1/events', op: { parameters: [{ in: 'query', name: 'token', schema: { type: 'string' } }] } },
    { method: 'GET', path: '/api/v1/no-such-thing/{id}', op: {} },
    { method: 'PUT', path: '/api/v1/streams/{id}', op: {} },
  );

  const known: Record<string, string[]> = {
    channelId: channelIds,
    username: ['admin', ...Object.values(users).map((u) => u.username)],
    agencyId: ['agency-a', 'agency-b', 'platform'],
    id: ['agency-a', 'agency-c'],
  };

  function requestArbitrary(route: Route, caller: Caller) {
    const pathNames = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const pathValue = fc.oneof(
      { weight: 3, arbitrary: fc.nat(9).map((i) => ({ real: i })) },
      { weight: 3, arbitrary: hostileString.map((s) => ({ raw: encode(s) })) },
      { weight: 1, arbitrary: fc.constantFrom('..', '%2e%2e', '..%2f..%2fagencies', '%', '%zz', '%E4%B8', 'a%00b', '%F0%9F%98%80', 'x'.repeat(10_000)).map((s) => ({ raw: s })) },
    );
    const queryParams = (route.op.parameters ?? []).filter((p) => p.in === 'query');
    const queryPair = fc.oneof(
      ...(queryParams.length > 0 ? [fc.constantFrom(...queryParams).chain((p) => fc.tuple(fc.constant(p.name), fc.oneof(fromSchema(p.schema, p.name, known), wrongType)))] : []),
      fc.tuple(fc.constantFrom('__proto__', 'constructor', 'scope', 'limit', 'a[b]', '', 'x'.repeat(5_000)), wrongType),
    );
    const query = fc.array(queryPair, { maxLength: 4 }).map((pairs) =>
      pairs
        .flatMap(([name, value]) => (Array.isArray(value) ? value.map((v) => [name, v] as const) : [[name, value] as const]))
        .map(([name, value]) => `${encode(name)}=${encode(typeof value === 'string' ? value : JSON.stringify(value))}`)
        .join('&'),
    );
    const rawQuery = fc.constantFrom('', '?', '?&&', '?=x', '?limit=%zz', '?scope=%E4', `?q=${'%41'.repeat(3_000)}`, '?limit=1&limit=2', '?__proto__[polluted]=yes');
    const bodySchema = route.op.requestBody?.content['application/json']?.schema;
    const isImport = route.path.endsWith('/channels/import');
    const importLine = fc.oneof(
      fromSchema({ type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{20}$' }, name: { type: 'string' }, class: { type: 'integer', minimum: 0, maximum: 4 }, sourceUrl: { type: 'string' }, district: { type: 'string' }, network: { type: 'string' } } }, 'channel', known).map((v) => JSON.stringify(v)),
      hostileString,
    );
    const body = fc.oneof(
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 4, arbitrary: bodySchema ? mutated(bodySchema, 'body', known).map((v) => JSON.stringify(v)) : fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
      { weight: 2, arbitrary: fc.constantFrom(...RAW_BODIES) },
      ...(isImport ? [{ weight: 4, arbitrary: fc.array(importLine, { maxLength: 6 }).map((lines) => lines.join('\n')) }] : []),
    );
    const contentType = fc.oneof({ weight: 4, arbitrary: fc.constant(isImport ? 'application/x-ndjson' : 'application/json') }, { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) });
    const authVariant = fc.oneof(
      { weight: 6, arbitrary: fc.constant((a: string | undefined) => a) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          (a: string | undefined) => a?.replace(/^\S+/, (s) => s.toLowerCase()),
          (a: string | undefined) => a?.replace(' ', '   '),
          (a: string | undefined) => (a ? `${a}, Bearer x.y.z` : 'Bearer'),
          (a: string | undefined) => (a ? `${a} ${a}` : 'ApiKey'),
          (a: string | undefined) => (a ? `Basic ${Buffer.from('admin:x').toString('base64')}` : 'Basic'),
          (a: string | undefined) => `${a ?? 'Bearer '}${'A'.repeat(9_000)}`,
          (a: string | undefined) => (a ? a.slice(0, -3) : 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'),
          () => 'ApiKey ' + '\u00e9'.repeat(10),
        ),
      },
    );
    const extraHeaders = fc.record(
      {
        accept: fc.constantFrom('text/csv', 'application/json', '*/*', 'text/html', 'text/csv;q=0', 'x'.repeat(8_000)),
        'idempotency-key': fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('k'.repeat(200), 'ключ', '')),
        'x-forwarded-for': fc.constantFrom('1.2.3.4', 'garbage', '::1, 10.0.0.1'),
        cookie: fc.constantFrom('a=b', '__proto__=x'),
        'content-encoding': fc.constantFrom('gzip', 'br', 'identity', 'x'),
      },
      { requiredKeys: [] },
    );
    return fc.record({
      path: fc.tuple(...pathNames.map(() => pathValue)),
      query: fc.oneof({ weight: 4, arbitrary: query }, { weight: 1, arbitrary: rawQuery.map((q) => q.replace(/^\?/, '')) }),
      body,
      contentType,
      authVariant,
      extraHeaders,
      sendBodyWithoutType: fc.boolean(),
    }).map((r) => ({ ...r, pathNames, caller }));
  }

  const problems = new Map<string, { count: number; routes: Set<string>; example: string }>();
  /** What is wrong with an answer, as a short key (no ids, no bodies), or null when it keeps the promises. */
  async function judge(route: Route, res: LightMyRequestResponse, before: string): Promise<string | null> {
    const type = String(res.headers['content-type'] ?? '');
    if (res.statusCode >= 500) return `${res.statusCode} ${codeOf(res) ?? type}`;
    if (res.statusCode >= 400) {
      if (!type.startsWith('application/json')) return `${res.statusCode} not JSON ("${type}")`;
      const code = codeOf(res);
      if (code === undefined) return `${res.statusCode} without the error shape: ${res.body.replace(/'[^']*'/g, "'…'").slice(0, 120)}`;
      if ((await snapshot()) !== before) return `${res.statusCode} ${code} changed the stores`;
      const notDenied = appended.filter((e) => e.outcome !== 'denied');
      if (notDenied.length > 0) return `${res.statusCode} ${code} audited ${notDenied.map((e) => `${e.action}/${e.outcome}`).join(',')}`;
      return null;
    }
    const textual = route.path === '/metrics' || type.startsWith('text/csv') || res.statusCode === 204;
    return !textual && !type.startsWith('application/json') ? `${res.statusCode} not JSON ("${type}")` : null;
  }
  const statuses = new Map<string, number>();
  /** Each route × caller gets its own (fixed) seed, so they do not all replay one sequence. */
  let property = 0;
  const started = Date.now();
  let requests = 0;
  for (const route of routes) {
    for (const caller of ROLES) {
      const details = await fc.check(
        fc.asyncProperty(requestArbitrary(route, caller), async (r) => {
          let path = route.path;
          r.pathNames.forEach((name, i) => {
            const value = r.path[i]!;
            const ids = idsFor(route.path, name);
            path = path.replace(`{${name}}`, 'real' in value ? ids[value.real % ids.length]! : value.raw);
          });
          const url = r.query ? `${path}?${r.query}` : path;
          const headers: Record<string, string> = { ...r.extraHeaders };
          const authorization = r.authVariant(authorizationOf(caller));
          if (authorization !== undefined) headers.authorization = authorization;
          if (r.body !== undefined && !r.sendBodyWithoutType) headers['content-type'] = r.contentType;
          const req: InjectOptions = { method: route.method as InjectOptions['method'], url, headers, ...(r.body !== undefined && { payload: r.body }) };
          const label = `${caller} ${route.method} ${url.slice(0, 160)}${url.length > 160 ? '…' : ''} ${JSON.stringify({ ...headers, ...(authorization !== undefined && { authorization: redacted(authorization) }) }).slice(0, 200)} body=${JSON.stringify((r.body ?? '').slice(0, 200))}`;

          const before = await snapshot();
          appended.length = 0;
          const res = await app.inject(req);
          requests++;
          const statusClass = `${Math.floor(res.statusCode / 100)}xx`;
          statuses.set(statusClass, (statuses.get(statusClass) ?? 0) + 1);
          const problem = await judge(route, res, before);
          if (problem) {
            // Every failing request is kept (not only the first per property), grouped by what went wrong,
            // so one known defect does not hide another behind it on the same route.
            const group = problems.get(problem) ?? problems.set(problem, { count: 0, routes: new Set(), example: label }).get(problem)!;
            group.count++;
            group.routes.add(`${caller} ${route.method} ${route.path}`);
            if (label.length < group.example.length) group.example = label;
          }
          if (route.method !== 'GET') await heal();
        }),
        { seed: SEED + property++, numRuns: RUNS },
      );
      // The property only throws when the harness itself breaks (a request inject could not send).
      if (details.failed) problems.set(`harness: ${String(details.errorInstance)}`, { count: 1, routes: new Set([`${caller} ${route.method} ${route.path}`]), example: '' });
    }
  }
  t.comment(`answers: ${[...statuses].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.ok((statuses.get('2xx') ?? 0) > routes.length, 'the fuzz reaches the handlers too (successes), not only the validators');
  const report = [...problems].map(([problem, g]) => `${problem} — ${g.count}× on ${g.routes.size} route×caller (${[...g.routes].slice(0, 4).join('; ')}${g.routes.size > 4 ? '; …' : ''}); e.g. ${g.example}`);
  t.same(report, [], `${requests} requests over ${routes.length} routes × ${ROLES.length} callers in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted');
  t.ok(valid(rootHeader()) && (await app.inject({ url: '/api/v1/readyz' })).statusCode === 200, 'the broker still answers');
});
