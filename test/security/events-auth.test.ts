/**
 * Issue 8, points 1 and 9: the events socket when its credentials stop being valid, and the
 * per-token connection cap however the token is spelled. Real listening servers, real `ws` clients,
 * and a real broker process started the way `npm start` does.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { AddressInfo } from 'node:net';
import { signToken } from '../../src/accounts/tokens.js';
import { auth, buildTestBroker, type TestBroker } from '../helper.js';
import { startBroker } from '../process/helpers.js';

const RECHECK = { BROKER_WS_AUTH_RECHECK_SECONDS: '1' };

interface EventSocket {
  socket: WebSocket;
  /** The first message arrived (the capacity snapshot): the server has registered the socket. */
  ready: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves when a message with this `at` arrives (a marker the test publishes). */
  received(at: string): Promise<void>;
}

async function serve(tb: TestBroker): Promise<string> {
  await tb.app.listen({ host: '127.0.0.1', port: 0 });
  return `127.0.0.1:${(tb.app.server.address() as AddressInfo).port}`;
}

/** Opens /api/v1/events with the token in ?token= or with an Authorization header spelled as given. */
function connect(t: Test, host: string, credential: { token: string } | { authorization: string }): Promise<EventSocket> {
  const url = 'token' in credential ? `ws://${host}/api/v1/events?token=${encodeURIComponent(credential.token)}` : `ws://${host}/api/v1/events`;
  const socket = new WebSocket(url, 'authorization' in credential ? { headers: { authorization: credential.authorization } } : {});
  t.teardown(() => socket.terminate());
  const ready = new Promise<void>((resolve) => socket.once('message', () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const received = (at: string) =>
    new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => (JSON.parse(String(data)) as { at?: string }).at === at && resolve());
      void closed.then(({ code }) => reject(new Error(`closed ${code} before ${at}`)));
    });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket, ready, closed, received }));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`refused ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

/** Resolves with the close, or with 'still open' when the deadline passes first (never hangs). */
const closeWithin = (s: EventSocket, ms: number) =>
  Promise.race([s.closed, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), ms).unref())]);

const patchUser = (tb: TestBroker, token: string, userId: string, payload: object) =>
  tb.app.inject({ method: 'PATCH', url: `/api/v1/users/${userId}`, headers: auth(token), payload });

t.test('point 1: an events socket whose credentials stop being valid is closed with 4401, and the broker carries on', async (t) => {
  const tb = await buildTestBroker(t, { env: RECHECK });
  const a = await tb.agency({ id: 'agency-a' });
  const host = await serve(tb);

  // Four ways a console's credentials lapse while its socket is open.
  const createdOp = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies/agency-a/users',
    headers: auth(tb.adminToken),
    payload: { username: 'a.second', password: 'first-password', role: 'operator' },
  });
  const secondOp = { id: createdOp.json().id as string, token: await tb.login('a.second', 'first-password') };
  const shortLived = signToken({ sub: a.adminId, role: 'admin', agencyId: 'agency-a', ver: 1 }, tb.broker.secrets.token, 2).token;
  const key = (await tb.app.inject({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', headers: auth(a.adminToken), payload: { name: 'detector' } })).json();

  const disabled = await connect(t, host, { token: a.operatorToken });
  const passwordChanged = await connect(t, host, { authorization: `Bearer ${secondOp.token}` });
  const expired = await connect(t, host, { token: shortLived });
  const revoked = await connect(t, host, { authorization: `ApiKey ${key.apiKey as string}` });
  const bystander = await connect(t, host, { token: tb.adminToken });
  await Promise.all([disabled, passwordChanged, expired, revoked, bystander].map((s) => s.ready));

  t.equal((await patchUser(tb, tb.adminToken, a.operatorId, { disabled: true })).statusCode, 200);
  t.equal((await patchUser(tb, tb.adminToken, secondOp.id, { password: 'second-password' })).statusCode, 200);
  t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/service-accounts/${key.id as string}`, headers: auth(a.adminToken) })).statusCode, 204);

  // The short-lived token expires after 2 s; re-checks run every second: all four are closed within a few seconds.
  for (const [name, socket] of Object.entries({ disabled, passwordChanged, expired, revoked })) {
    t.match(await closeWithin(socket, 8_000), { code: 4401 }, `${name}: closed with 4401`);
  }
  // The rounds that closed those four checked the bystander too: a marker sent after them still reaches it.
  const at = new Date(0).toISOString();
  const marker = bystander.received(at);
  tb.broker.events.publish({ type: 'capacity', at, forwarding: { limit: -1, used: 0, queued: 0 }, analytics: { limit: -1, used: 0 } });
  await t.resolves(marker, 'a socket whose token is still valid stays open');
  const health = await fetch(`http://${host}/healthz`);
  t.equal(health.status, 200, 'the broker still answers');
  const again = await connect(t, host, { token: tb.adminToken });
  await again.ready;
  t.pass('new events sockets are still accepted');
});

t.test('point 1: a broker process survives the sockets of a disabled user and of an expired token', async (t) => {
  const tokenSecret = 'a-token-secret-of-the-test-32-bytes-long!';
  const adminPassword = 'admin-password-1';
  const broker = await startBroker(t, { ...RECHECK, BROKER_TOKEN_SECRET: tokenSecret, BROKER_ADMIN_PASSWORD: adminPassword });
  const api = (path: string, init: RequestInit = {}, token?: string) =>
    fetch(`${broker.url}/api/v1${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    });
  const login = async (username: string, password: string) =>
    ((await (await api('/auth/login', { method: 'POST', body: JSON.stringify({ username, password }) })).json()) as { token: string; user: { id: string } });
  const admin = await login('admin', adminPassword);
  const created = await api('/agencies/platform/users', { method: 'POST', body: JSON.stringify({ username: 'p.ops', password: 'ops-password-1', role: 'operator' }) }, admin.token);
  t.equal(created.status, 201);
  const operator = await login('p.ops', 'ops-password-1');
  const shortLived = signToken({ sub: admin.user.id, role: 'platform-admin', agencyId: 'platform', ver: 1 }, tokenSecret, 1).token;

  const host = `127.0.0.1:${broker.port}`;
  const disabled = await connect(t, host, { token: operator.token });
  const expired = await connect(t, host, { authorization: `Bearer ${shortLived}` });
  await Promise.all([disabled.ready, expired.ready]);
  t.equal((await api(`/users/${operator.user.id}`, { method: 'PATCH', body: JSON.stringify({ disabled: true }) }, admin.token)).status, 200);

  t.match(await closeWithin(disabled, 8_000), { code: 4401 }, 'the disabled user’s socket is closed with 4401');
  t.match(await closeWithin(expired, 8_000), { code: 4401 }, 'the expired token’s socket is closed with 4401');
  // Another lapsing socket opened now is closed by a later round: the re-check timer kept running.
  const later = await connect(t, host, { token: signToken({ sub: admin.user.id, role: 'platform-admin', agencyId: 'platform', ver: 1 }, tokenSecret, 1).token });
  await later.ready;
  t.match(await closeWithin(later, 8_000), { code: 4401 }, 'a later round closes the next lapsed socket');
  t.equal(broker.child.exitCode, null, `the process is alive${broker.child.exitCode === null ? '' : `: ${broker.output()}`}`);
  t.equal((await fetch(`${broker.url}/healthz`)).status, 200, 'and answers /healthz');
});

t.test('point 9: the per-token events cap counts the token, however it was spelled or sent', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_WS_MAX_CONNECTIONS_PER_TOKEN: '2' } });
  const a = await tb.agency({ id: 'agency-a' });
  const host = await serve(tb);
  const token = a.operatorToken;
  const first = await connect(t, host, { authorization: `Bearer ${token}` });
  const second = await connect(t, host, { token });
  await Promise.all([first.ready, second.ready]);
  for (const authorization of [`bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`, ` Bearer ${token} `, `BeArEr ${token}`]) {
    const extra = await connect(t, host, { authorization });
    t.match(await closeWithin(extra, 5_000), { code: 1008 }, `${JSON.stringify(authorization.replace(token, '<token>'))} counts as the same token`);
  }
  const viaQuery = await connect(t, host, { token });
  t.match(await closeWithin(viaQuery, 5_000), { code: 1008 }, '?token= counts as the same token too');
  const other = await connect(t, host, { token: a.adminToken });
  await other.ready;
  t.pass('another token is not affected');
});
