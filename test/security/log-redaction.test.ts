/**
 * Issue 8, point 5: no credential reaches a log line. The broker runs on a real port with the project's
 * logger at trace level writing to a stream the test reads; every way a credential travels is used once
 * (login bodies, bearer and API-key headers, `?token=` on the events socket and elsewhere, a request the
 * HTTP parser refuses, whose raw bytes Node attaches to the error), then the log is searched for them.
 */
import t from 'tap';
import WebSocket from 'ws';
import { listenBroker, rawRequest } from './http-helpers.js';
import { Writable } from 'node:stream';
import { createLogger, redactUrl, scrubText } from '../../src/logging.js';

t.test('point 5: no token, key or password appears in the log', async (t) => {
  const b = await listenBroker(t, { logLevel: 'trace' });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${b.base}/api/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  const wrongPassword = 'wrong-' + b.adminPassword.split('').reverse().join('');
  t.equal((await post('/auth/login', { username: 'admin', password: wrongPassword })).status, 401);
  const login = await post('/auth/login', { username: 'admin', password: b.adminPassword });
  t.equal(login.status, 200);
  const token = ((await login.json()) as { token: string }).token;
  const bearer = { authorization: `Bearer ${token}` };

  const agency = await post('/agencies', { id: 'logs', name: 'Logs', networks: ['video'], classes: [1], quotas: { forwarding: 1, analytics: 1 } }, bearer);
  t.equal(agency.status, 201);
  const userPassword = 'op-' + token.slice(-12);
  t.equal((await post('/agencies/logs/users', { username: 'logs.op', password: userPassword, role: 'operator' }, bearer)).status, 201);
  const created = await post('/agencies/logs/service-accounts', { name: 'counter' }, bearer);
  t.equal(created.status, 201);
  const apiKey = ((await created.json()) as { apiKey: string }).apiKey;
  t.equal((await fetch(`${b.base}/api/v1/analytics/reservations`, { headers: { authorization: `ApiKey ${apiKey}` } })).status, 200);
  t.equal((await fetch(`${b.base}/api/v1/auth/me`, { headers: bearer })).status, 200);
  t.equal((await fetch(`${b.base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}x` } })).status, 401, 'a refused token');

  // The events socket with ?token=, the way browsers connect.
  const ws = new WebSocket(`ws://127.0.0.1:${b.port}/api/v1/events?token=${encodeURIComponent(token)}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('message', () => resolve());
    ws.once('error', reject);
  });
  ws.close();
  // Credential-looking parameters on other URLs, answered 400/401/404.
  for (const path of [`/api/v1/events?token=${token}`, `/api/v1/nothing?token=${token}&access_token=${token}`, `/api/v1/channels?api_key=${apiKey}`]) {
    await fetch(`${b.base}${path}`, { headers: { cookie: `session=${token}` } });
  }
  // A request the parser refuses: Node's error carries the raw bytes, Authorization included.
  await rawRequest(b.port, `GET /a b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-Api-Key: ${apiKey}\r\n\r\n`);

  const log = b.logText();
  t.match(log, /\/api\/v1\/events/, 'the requests were logged (the check below is not vacuous)');
  t.match(log, /incoming request/, "Fastify's request lines were captured");
  for (const [name, secret] of Object.entries({ token, apiKey, adminPassword: b.adminPassword, wrongPassword, userPassword })) {
    t.notOk(log.includes(secret), `${name} is not in the log`);
    t.notOk(log.includes(encodeURIComponent(secret)), `${name} (URL-encoded) is not in the log`);
  }
  t.notOk(log.includes(token.slice(0, 24)), 'not even a prefix of the token long enough to be useful');
});

t.test('point 5: the URL and text scrubbers', async (t) => {
  t.equal(redactUrl('/api/v1/events?token=abc.def'), '/api/v1/events?token=[redacted]');
  t.equal(redactUrl('/live/x.flv?a=1&Token=z&api_key=k&limit=5'), '/live/x.flv?a=1&Token=[redacted]&api_key=[redacted]&limit=5');
  t.equal(redactUrl('/x?%74oken=abc'), '/x?%74oken=[redacted]', 'an encoded name is decoded before it is judged');
  t.equal(redactUrl('/api/v1/channels?limit=5'), '/api/v1/channels?limit=5');
  t.equal(scrubText('GET /a?token=abc HTTP/1.1 Authorization: Bearer eyJabc.def'), 'GET /a?token=[redacted] HTTP/1.1 Authorization: Bearer [redacted]');
  t.equal(scrubText('ApiKey sk_live_1'), 'ApiKey [redacted]');
});

t.test('point 5: credential fields, headers and error text are redacted by the shared logger', async (t) => {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      out += chunk.toString('utf8');
      done();
    },
  });
  const log = createLogger({ level: 'info' }, sink);
  log.info({ password: 'pw-secret-1', user: { password: 'pw-secret-2', apiKey: 'key-secret-3' }, headers: { authorization: 'Bearer hdr-secret-4', cookie: 'c=cookie-secret-5' } }, 'fields');
  log.info({ req: { method: 'GET', url: '/api/v1/events?token=url-secret-6', headers: { authorization: 'Bearer hdr-secret-7' } } }, 'request');
  const parseError = Object.assign(new Error('Parse Error: GET /?token=err-secret-8'), { code: 'HPE_INVALID', rawPacket: Buffer.from('Authorization: Bearer raw-secret-9') });
  log.error({ err: parseError }, 'failed with Bearer msg-secret-10');
  t.match(out, /fields/);
  t.match(out, /\/api\/v1\/events\?token=\[redacted\]/, 'the URL keeps its path');
  for (let i = 1; i <= 10; i++) t.notMatch(out, new RegExp(`secret-${i}\\b`), `secret ${i} is not in the log`);
});
