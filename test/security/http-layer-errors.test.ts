/**
 * Issue 8, point 13: what the HTTP layer answers before a route runs keeps the error shape (API.md
 * "Conventions"): a malformed URL or bad %-encoding 400, headers too large 431 HEADERS_TOO_LARGE, an
 * unknown route 404, a plain GET on the events WebSocket 426 (after authentication). Raw bytes on a real
 * socket, since app.inject cannot send a space or raw UTF-8 in a request line.
 */
import t from 'tap';
import { listenBroker, parseResponse, rawRequest } from './http-helpers.js';

const request = (line: string | Buffer, headers: string[] = []) =>
  Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'latin1') : line, Buffer.from(['', 'Host: broker', 'Connection: close', ...headers, '', ''].join('\r\n'), 'latin1')]);

t.test('point 13: refusals made by the HTTP layer have the error shape', async (t) => {
  const b = await listenBroker(t, { env: { BROKER_MAX_HEADER_BYTES: '4096' } });
  const login = await fetch(`${b.base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: b.adminPassword }),
  });
  const token = ((await login.json()) as { token: string }).token;
  const bearer = `Authorization: Bearer ${token}`;

  const cases: Array<{ name: string; bytes: Buffer; status: number; code: string }> = [
    { name: 'raw UTF-8 in the path', bytes: request(Buffer.concat([Buffer.from('GET /api/v1/channels/'), Buffer.from('频道', 'utf8'), Buffer.from(' HTTP/1.1')])), status: 400, code: 'BAD_REQUEST' },
    { name: 'a space in the path', bytes: request('GET /api/v1/a b HTTP/1.1'), status: 400, code: 'BAD_REQUEST' },
    { name: 'a path parameter too long for the router', bytes: request(`GET /api/v1/agencies/${'a'.repeat(300)} HTTP/1.1`, [bearer]), status: 414, code: 'URI_TOO_LONG' },
    { name: 'a NUL in the path', bytes: request('GET /api/v1/\x00 HTTP/1.1'), status: 400, code: 'BAD_REQUEST' },
    { name: 'bad %-encoding in the path', bytes: request('GET /api/v1/channels/%zz HTTP/1.1', [bearer]), status: 400, code: 'BAD_REQUEST' },
    { name: 'a truncated %-sequence', bytes: request('GET /api/v1/agencies/%E0%A4%A HTTP/1.1', [bearer]), status: 400, code: 'BAD_REQUEST' },
    { name: 'an invalid UTF-8 %-sequence', bytes: request('GET /api/v1/agencies/%C3%28 HTTP/1.1', [bearer]), status: 400, code: 'BAD_REQUEST' },
    { name: 'not HTTP at all', bytes: Buffer.from('HELLO THERE\r\n\r\n'), status: 400, code: 'BAD_REQUEST' },
    { name: 'a control character in a header', bytes: request('GET /healthz HTTP/1.1', ['X-A: a\x01b']), status: 400, code: 'BAD_REQUEST' },
    { name: 'both Content-Length and chunked', bytes: request('POST /api/v1/auth/login HTTP/1.1', ['Content-Length: 3', 'Transfer-Encoding: chunked']), status: 400, code: 'BAD_REQUEST' },
    { name: 'no Host header', bytes: Buffer.from('GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'), status: 400, code: 'BAD_REQUEST' },
    { name: 'headers too large', bytes: request('GET /healthz HTTP/1.1', [`X-Big: ${'a'.repeat(5000)}`]), status: 431, code: 'HEADERS_TOO_LARGE' },
    { name: 'many headers, too large together', bytes: request('GET /healthz HTTP/1.1', Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'b'.repeat(30)}`)), status: 431, code: 'HEADERS_TOO_LARGE' },
    { name: 'an unknown route', bytes: request('GET /api/v1/nothing HTTP/1.1', [bearer]), status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown route outside the API', bytes: request('GET /wp-admin/x.php HTTP/1.1', [bearer]), status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown route, no credentials', bytes: request('GET /api/v1/nothing HTTP/1.1'), status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown Expect', bytes: request('POST /api/v1/auth/login HTTP/1.1', ['Expect: teapot', 'Content-Length: 0']), status: 417, code: 'EXPECTATION_FAILED' },
    { name: 'a plain GET on the events socket, unauthenticated', bytes: request('GET /api/v1/events HTTP/1.1'), status: 401, code: 'UNAUTHENTICATED' },
    { name: 'a plain GET on the events socket', bytes: request('GET /api/v1/events HTTP/1.1', [bearer]), status: 426, code: 'UPGRADE_REQUIRED' },
    { name: 'a plain GET on the events socket, token in the query', bytes: request(`GET /api/v1/events?token=${token} HTTP/1.1`), status: 401, code: 'UNAUTHENTICATED' },
  ];
  for (const c of cases) {
    const res = parseResponse(await rawRequest(b.port, c.bytes));
    t.equal(res.status, c.status, `${c.name}: status`);
    t.match(res.headers['content-type'], /^application\/json/, `${c.name}: JSON`);
    const error = (res.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    t.equal(error?.code, c.code, `${c.name}: code`);
    t.type(error?.message, 'string', `${c.name}: message`);
    t.notMatch(res.body, /at .+\.(ts|js):\d+|statusCode/, `${c.name}: nothing but the error shape`);
  }
  const upgrade = parseResponse(await rawRequest(b.port, request('GET /api/v1/events HTTP/1.1', [bearer])));
  t.equal(upgrade.headers.upgrade, 'websocket', '426 names the protocol to upgrade to');
  const head = parseResponse(await rawRequest(b.port, request('HEAD /api/v1/events HTTP/1.1', [bearer])));
  t.equal(head.status, 426, 'HEAD on the events socket: 426 too');

  // The server is still up and answers normally.
  t.equal((await fetch(`${b.base}/healthz`)).status, 200);
});

t.test('point 13: a plain GET on the events socket through app.inject', async (t) => {
  const b = await listenBroker(t);
  const login = await b.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: b.adminPassword } });
  const res = await b.app.inject({ url: '/api/v1/events', headers: { authorization: `Bearer ${login.json().token}` } });
  t.equal(res.statusCode, 426);
  t.same(Object.keys(res.json()), ['error']);
  t.equal(res.json().error.code, 'UPGRADE_REQUIRED');
});
