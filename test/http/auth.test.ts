import t from 'tap';
import { createHmac } from 'node:crypto';
import { auth, buildTestBroker } from '../helper.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

t.test('login: same answer for unknown user and wrong password, audited', async (t) => {
  const { app } = await buildTestBroker(t);
  const unknown = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'nobody', password: 'whatever-123' } });
  const wrong = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: 'wrong-password' } });
  t.equal(unknown.statusCode, 401);
  t.equal(wrong.statusCode, 401);
  t.same(unknown.json(), wrong.json(), 'indistinguishable');
  t.equal(wrong.json().error.code, 'INVALID_CREDENTIALS');
});

t.test('failed logins are throttled per (username, address), then per address', async (t) => {
  const { app, adminPassword, config } = await buildTestBroker(t);
  const attempt = (username: string, password: string, ip = '10.0.0.1') =>
    app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress: ip });
  for (let i = 0; i < config.loginMaxFailuresPerUser; i++) t.equal((await attempt('admin', 'bad-password-x')).statusCode, 401);
  const blocked = await attempt('admin', adminPassword);
  t.equal(blocked.statusCode, 429, 'even the right password is refused while throttled');
  t.equal(blocked.json().error.code, 'RATE_LIMITED');
  t.ok(Number(blocked.headers['retry-after']) > 0, 'Retry-After given');

  // Spraying many usernames from one address trips the per-address limit.
  let last = 0;
  for (let i = 0; i < config.loginMaxFailuresPerAddress + 1; i++) last = (await attempt(`user${i}`, 'bad-password-x', '10.0.0.2')).statusCode;
  t.equal(last, 429);
  t.equal((await attempt('someone-else', 'bad-password-x', '10.0.0.3')).statusCode, 401, 'other addresses unaffected');
});

t.test('tokens: tampered, alg none, other algorithms, expired and garbage are refused', async (t) => {
  const { app, adminToken, broker } = await buildTestBroker(t);
  const me = (token: string) => app.inject({ url: '/api/v1/auth/me', headers: auth(token) });
  t.equal((await me(adminToken)).statusCode, 200);

  const [header, payload, signature] = adminToken.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const sign = (h: string, p: string) => createHmac('sha256', broker.secrets.token).update(`${h}.${p}`).digest('base64url');

  const forged = {
    'payload changed (role)': `${header}.${b64({ ...claims, role: 'platform-admin', agencyId: 'other' })}.${signature}`,
    'signature flipped': `${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`,
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`,
    'alg HS512 correctly signed with the secret': (() => {
      const h = b64({ alg: 'HS512', typ: 'JWT' });
      return `${h}.${payload}.${createHmac('sha512', broker.secrets.token).update(`${h}.${payload}`).digest('base64url')}`;
    })(),
    'expired but validly signed': (() => {
      const p = b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 });
      return `${header}.${p}.${sign(header, p)}`;
    })(),
    'validly signed for a user that does not exist': (() => {
      const p = b64({ ...claims, sub: 'u_nobody' });
      return `${header}.${p}.${sign(header, p)}`;
    })(),
    garbage: 'not-a-token',
  };
  for (const [name, token] of Object.entries(forged)) {
    const res = await me(token);
    t.equal(res.statusCode, 401, name);
    t.equal(res.json().error.code, 'UNAUTHENTICATED', `${name}: code`);
  }
  const wrongScheme = await app.inject({ url: '/api/v1/auth/me', headers: { authorization: `Basic ${adminToken}` } });
  t.equal(wrongScheme.statusCode, 401);
});

t.test('a disabled user cannot log in, and its existing token stops working at once', async (t) => {
  const { app, adminToken, login } = await buildTestBroker(t);
  await app.inject({
    method: 'POST',
    url: '/api/v1/agencies',
    headers: auth(adminToken),
    payload: { id: 'weather', name: '气象局', networks: ['gov'], classes: [2, 3], quotas: { forwarding: 5, analytics: 5 } },
  });
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/agencies/weather/users',
    headers: auth(adminToken),
    payload: { username: 'wx.op', password: 'a-long-password', role: 'operator' },
  });
  t.equal(created.statusCode, 201);
  t.equal(created.json().createdBy, (await app.inject({ url: '/api/v1/auth/me', headers: auth(adminToken) })).json().id, 'records who created it');
  const token = await login('wx.op', 'a-long-password');
  const disabled = await app.inject({ method: 'PATCH', url: `/api/v1/users/${created.json().id}`, headers: auth(adminToken), payload: { disabled: true } });
  t.equal(disabled.statusCode, 200);
  t.equal(disabled.json().disabled, true);
  t.equal((await app.inject({ url: '/api/v1/auth/me', headers: auth(token) })).statusCode, 401, 'old token refused');
  const again = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'wx.op', password: 'a-long-password' } });
  t.equal(again.statusCode, 401);
  t.equal(again.json().error.code, 'ACCOUNT_DISABLED');

  const audit = await app.inject({ url: '/api/v1/audit?action=user.disable', headers: auth(adminToken) });
  t.equal(audit.json().items.length, 1, 'disabling is audited');
});

t.test('usernames are unique platform-wide', async (t) => {
  const { app, adminToken } = await buildTestBroker(t);
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/agencies/platform/users',
    headers: auth(adminToken),
    payload: { username: 'admin', password: 'a-long-password', role: 'admin' },
  });
  t.equal(res.statusCode, 409);
  t.equal(res.json().error.code, 'CONFLICT');
});

t.test('service accounts: key shown once, stored hashed, revocable', async (t) => {
  const { app, adminToken, agency, dataDir } = await buildTestBroker(t);
  const { adminToken: wxAdmin } = await agency({ id: 'weather', classes: [2, 3], networks: ['gov'] });
  const created = await app.inject({ method: 'POST', url: '/api/v1/agencies/weather/service-accounts', headers: auth(wxAdmin), payload: { name: 'fog-detector' } });
  t.equal(created.statusCode, 201);
  const { id, apiKey } = created.json();
  t.match(apiKey, /^sk_/);
  const listed = await app.inject({ url: '/api/v1/agencies/weather/service-accounts', headers: auth(adminToken) });
  t.notOk(JSON.stringify(listed.json()).includes(apiKey), 'key not shown again');
  const { readFile } = await import('node:fs/promises');
  t.notOk((await readFile(`${dataDir}/state.jsonl`, 'utf8')).includes(apiKey), 'key not stored in clear');
  const asService = await app.inject({ url: '/api/v1/analytics/reservations', headers: { authorization: `ApiKey ${apiKey}` } });
  t.equal(asService.statusCode, 200);
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/service-accounts/${id}`, headers: auth(wxAdmin) })).statusCode, 204);
  t.equal((await app.inject({ url: '/api/v1/analytics/reservations', headers: { authorization: `ApiKey ${apiKey}` } })).statusCode, 401);
});
