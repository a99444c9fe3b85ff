/**
 * Issue 8, point 14 (accounts): only a platform-admin changes an admin, and everyone changes their
 * own password through POST /auth/password, which ends their other tokens (and those tokens' events
 * sockets) but not the one that asked.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { AddressInfo } from 'node:net';
import { auth, buildTestBroker, STORES, type TestBroker } from '../helper.js';

const patchUser = (tb: TestBroker, token: string, userId: string, payload: object) =>
  tb.app.inject({ method: 'PATCH', url: `/api/v1/users/${userId}`, headers: auth(token), payload });
const changePassword = (tb: TestBroker, token: string, payload: object, remoteAddress = '127.0.0.1') =>
  tb.app.inject({ method: 'POST', url: '/api/v1/auth/password', headers: auth(token), payload, remoteAddress });
const me = (tb: TestBroker, token: string) => tb.app.inject({ url: '/api/v1/auth/me', headers: auth(token) });
const loginStatus = async (tb: TestBroker, username: string, password: string) =>
  (await tb.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress: '192.0.2.1' })).statusCode;

t.test('point 14: an agency admin cannot reset, disable or rename a peer admin, nor itself through PATCH', async (t) => {
  const tb = await buildTestBroker(t);
  const a = await tb.agency({ id: 'agency-a' });
  const peer = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies/agency-a/users',
    headers: auth(tb.adminToken),
    payload: { username: 'a.peer', password: 'peer-password', role: 'admin' },
  });
  t.equal(peer.statusCode, 201);
  const peerId = peer.json().id as string;

  for (const payload of [{ password: 'taken-over-1' }, { disabled: true }, { displayName: 'x' }, { role: 'operator' }]) {
    const res = await patchUser(tb, a.adminToken, peerId, payload);
    t.equal(res.statusCode, 403, `peer admin, ${Object.keys(payload)[0]}: 403`);
    t.equal(res.json().error.code, 'FORBIDDEN');
    const self = await patchUser(tb, a.adminToken, a.adminId, payload);
    t.equal(self.statusCode, 403, `itself, ${Object.keys(payload)[0]}: 403`);
  }
  t.equal(await loginStatus(tb, 'a.peer', 'peer-password'), 200, 'the peer admin keeps its password');
  t.equal(await loginStatus(tb, 'a.peer', 'taken-over-1'), 401);
  t.equal((await patchUser(tb, a.adminToken, a.operatorId, { displayName: '值班员' })).statusCode, 200, 'its operators it may change');
  t.equal((await patchUser(tb, tb.adminToken, peerId, { disabled: true })).statusCode, 200, 'a platform-admin may change an admin');
});

for (const env of STORES) {
  t.test(`point 14: anyone may change their own password; it ends their other tokens, not this one (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env: { ...env, BROKER_WS_AUTH_RECHECK_SECONDS: '1' } });
    const created = await tb.app.inject({
      method: 'POST',
      url: '/api/v1/agencies/platform/users',
      headers: auth(tb.adminToken),
      payload: { username: 'p.ops', password: 'first-password', role: 'operator' },
    });
    const userId = created.json().id as string;
    const current = await tb.login('p.ops', 'first-password');
    const other = await tb.login('p.ops', 'first-password');
    await tb.app.listen({ host: '127.0.0.1', port: 0 });
    const host = `127.0.0.1:${(tb.app.server.address() as AddressInfo).port}`;
    const currentSocket = await openEvents(t, host, current);
    const otherSocket = await openEvents(t, host, other);

    const changed = await changePassword(tb, current, { currentPassword: 'first-password', newPassword: 'second-password' });
    t.equal(changed.statusCode, 204, changed.body);
    t.equal(await loginStatus(tb, 'p.ops', 'first-password'), 401, 'the old password no longer logs in');
    t.equal(await loginStatus(tb, 'p.ops', 'second-password'), 200, 'the new one does');
    t.equal((await me(tb, current)).statusCode, 200, 'the token that asked keeps working');
    t.equal((await me(tb, other)).statusCode, 401, 'the other token ended');
    t.match(await closeWithin(otherSocket, 8_000), { code: 4401 }, "the other token's events socket is closed with 4401");
    // The round that closed the other socket checked this one too: a marker sent after it still arrives.
    const at = new Date(0).toISOString();
    const marker = currentSocket.received(at);
    tb.broker.events.publish({ type: 'capacity', at, forwarding: { limit: -1, used: 0, queued: 0 }, analytics: { limit: -1, used: 0 } });
    await t.resolves(marker, "the asking token's socket stays open");

    const audit = await tb.app.inject({ url: '/api/v1/audit?action=auth.password', headers: auth(tb.adminToken) });
    t.match(audit.json().items, [{ actor: { id: userId }, target: `user:${userId}`, outcome: 'ok' }], 'audited');
    t.notOk(audit.body.includes('second-password'), 'no password in the audit log');

    // An admin's reset later ends the surviving token too.
    t.equal((await patchUser(tb, tb.adminToken, userId, { password: 'third-password' })).statusCode, 200);
    t.equal((await me(tb, current)).statusCode, 401, 'a later reset ends it');
  });

  t.test(`point 14: a wrong current password is 401 INVALID_CREDENTIALS and counted by the throttle (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const a = await tb.agency({ id: 'agency-a' });
    for (let i = 0; i < tb.config.loginMaxFailuresPerUser; i++) {
      const res = await changePassword(tb, a.operatorToken, { currentPassword: `wrong-password-${i}`, newPassword: 'whatever-long' }, '198.51.100.9');
      t.equal(res.statusCode, 401);
      t.equal(res.json().error.code, 'INVALID_CREDENTIALS');
    }
    const throttled = await changePassword(tb, a.operatorToken, { currentPassword: 'wrong-password-x', newPassword: 'whatever-long' }, '198.51.100.9');
    t.equal(throttled.statusCode, 429);
    t.equal(throttled.json().error.code, 'RATE_LIMITED');
    t.ok(Number(throttled.headers['retry-after']) > 0);
    t.equal((await me(tb, a.operatorToken)).statusCode, 200, 'a refused change leaves the token alone');
    await tb.broker.audit.flushDenials();
    const denied = await tb.app.inject({ url: '/api/v1/audit?action=auth.password&limit=100', headers: auth(tb.adminToken) });
    // Repeated denials of one caller are coalesced (API.md "Audit"): an entry may stand for several.
    const items = denied.json().items as Array<{ outcome: string; details?: { count?: number } }>;
    const refusals = items.reduce((sum, e) => sum + (e.details?.count ?? 1), 0);
    t.ok(refusals >= tb.config.loginMaxFailuresPerUser && items.every((e) => e.outcome === 'denied'), 'refusals audited');
  });
}

t.test('point 14: POST /auth/password validates its body and needs a person', async (t) => {
  const tb = await buildTestBroker(t);
  const a = await tb.agency({ id: 'agency-a' });
  const bad = [
    { currentPassword: 'x', newPassword: 'short' },
    { currentPassword: 'x', newPassword: 'y'.repeat(129) },
    { currentPassword: 'x' },
    { newPassword: 'long-enough-1' },
    { currentPassword: 'x', newPassword: 'long-enough-1', extra: true },
    { currentPassword: 'x'.repeat(300), newPassword: 'long-enough-1' },
  ];
  for (const payload of bad) {
    const res = await changePassword(tb, a.operatorToken, payload);
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 60));
    t.equal(res.json().error.code, 'BAD_REQUEST');
  }
  const anonymous = await tb.app.inject({ method: 'POST', url: '/api/v1/auth/password', payload: { currentPassword: 'x', newPassword: 'long-enough-1' } });
  t.equal(anonymous.statusCode, 401);
  const key = (await tb.app.inject({ method: 'POST', url: '/api/v1/agencies/agency-a/service-accounts', headers: auth(a.adminToken), payload: { name: 'detector' } })).json();
  const service = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/auth/password',
    headers: { authorization: `ApiKey ${key.apiKey as string}` },
    payload: { currentPassword: 'x', newPassword: 'long-enough-1' },
  });
  t.equal(service.statusCode, 403, 'a service account has no password');
  t.equal(service.json().error.code, 'FORBIDDEN');
});

interface EventSocket {
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves when a message with this `at` arrives (a marker the test publishes); rejects if the socket closes first. */
  received(at: string): Promise<void>;
}

/** Opens /api/v1/events and resolves once the server has sent its first message (the socket is registered). */
function openEvents(t: Test, host: string, token: string): Promise<EventSocket> {
  const socket = new WebSocket(`ws://${host}/api/v1/events`, { headers: auth(token) });
  t.teardown(() => socket.terminate());
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const received = (at: string) =>
    new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => (JSON.parse(String(data)) as { at?: string }).at === at && resolve());
      void closed.then(({ code }) => reject(new Error(`closed ${code} before ${at}`)));
    });
  return new Promise((resolve, reject) => {
    socket.once('message', () => resolve({ closed, received }));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`refused ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

const closeWithin = (s: EventSocket, ms: number) =>
  Promise.race([s.closed, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), ms).unref())]);
