/**
 * Issue 8, point 8: every connection has bounded time (API.md "Conventions"). An idle socket stayed open
 * 150 s, a body trickled at 1 byte per 5 s was held 330 s, 24,000 idle sockets were accepted. Here on a
 * real port with small configured limits: a silent connection, a trickled body, trickled headers and an
 * idle keep-alive connection are all closed; a slow *answer* is not cut; an events WebSocket outlives
 * every limit; connections beyond BROKER_MAX_CONNECTIONS are refused.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config.js';
import { until } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { listenBroker, parseResponse, rawConnect, type ListeningBroker, type RawClient } from './http-helpers.js';

const SHORT = { BROKER_REQUEST_TIMEOUT_SECONDS: '2', BROKER_HEADERS_TIMEOUT_SECONDS: '1', BROKER_KEEPALIVE_TIMEOUT_SECONDS: '1' };

/** Writes `bytes` one at a time, `everyMs` apart, until the server closes the connection. */
function trickle(client: RawClient, bytes: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (client.closed || i >= bytes.length) return clearInterval(timer);
    client.socket.write(bytes[i++]!);
  }, everyMs);
  void client.whenClosed.then(() => clearInterval(timer));
}

async function adminToken(b: ListeningBroker): Promise<string> {
  const res = await fetch(`${b.base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: b.adminPassword }),
  });
  return ((await res.json()) as { token: string }).token;
}

const expect408 = (t: Test, text: string, what: string) => {
  if (text === '') return t.pass(`${what}: closed without an answer`);
  const res = parseResponse(text);
  t.equal(res.status, 408, `${what}: 408`);
  t.equal((res.json as { error?: { code?: string } } | undefined)?.error?.code, 'REQUEST_TIMEOUT', `${what}: REQUEST_TIMEOUT in the error shape`);
};

t.test('point 8: silent, trickling and idle keep-alive connections are closed', async (t) => {
  const b = await listenBroker(t, { env: SHORT });

  // All four at once: each limit is waited on by condition, in parallel.
  const [silent, body, headers, keepAlive] = await Promise.all([rawConnect(b.port), rawConnect(b.port), rawConnect(b.port), rawConnect(b.port)]);
  body.socket.write('POST /api/v1/auth/login HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{');
  trickle(body, '"username":"admin","password":"' + 'x'.repeat(200), 200);
  headers.socket.write('GET /healthz HTTP/1.1\r\nHost: broker\r\n');
  trickle(headers, 'X-Slow: ' + 'y'.repeat(200), 200);
  keepAlive.socket.write('GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n');

  await until(t, 'the keep-alive request is answered', () => keepAlive.received().includes('\r\n\r\n'), 5_000);
  const answer = parseResponse(keepAlive.received());
  t.equal(answer.status, 200);
  t.not(answer.headers.connection, 'close', 'the connection was kept alive');
  t.equal(answer.headers['keep-alive'], 'timeout=1', 'and the limit is announced');
  t.notOk(keepAlive.closed, 'open right after the answer');

  await until(t, 'a connection that never sends a request is closed', () => silent.closed, 10_000);
  expect408(t, silent.received(), 'silent connection');
  await until(t, 'a trickled body is cut', () => body.closed, 10_000);
  expect408(t, body.received(), 'trickled body');
  t.notMatch(body.received(), /INVALID_CREDENTIALS/, 'the trickled login was never evaluated');
  await until(t, 'trickled headers are cut', () => headers.closed, 10_000);
  expect408(t, headers.received(), 'trickled headers');
  await until(t, 'an idle keep-alive connection is closed', () => keepAlive.closed, 10_000);
});

t.test('point 8: a slow answer is not a slow request; an events WebSocket outlives the limits', async (t) => {
  const b = await listenBroker(t, { env: { ...SHORT, BROKER_FORWARDING_SLOTS: '1' } });
  const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];
  await b.broker.catalog.seed(channels);
  const token = await adminToken(b);
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

  const ws = new WebSocket(`ws://127.0.0.1:${b.port}/api/v1/events`, { headers: { authorization: `Bearer ${token}` } });
  const messages: Array<{ type: string; forwarding?: { used: number } }> = [];
  ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8')) as (typeof messages)[number]));
  let wsClosed = false;
  ws.on('close', () => (wsClosed = true));
  await until(t, 'the events socket is open', () => messages.length > 0, 5_000);

  const first = await fetch(`${b.base}/api/v1/streams`, { method: 'POST', headers: auth, body: JSON.stringify({ channelId: channels[0]!.id, purpose: 'patrol check' }) });
  t.equal(first.status, 201, 'the only slot is taken');
  // The pool is full: this request waits 3 s in the queue, longer than the 2 s request limit.
  const queued = await fetch(`${b.base}/api/v1/streams`, { method: 'POST', headers: auth, body: JSON.stringify({ channelId: channels[1]!.id, purpose: 'patrol check', waitSeconds: 3 }) });
  t.equal(queued.status, 503, 'answered by the queue, not cut by the request timeout');
  t.equal(((await queued.json()) as { error: { code: string } }).error.code, 'FORWARDING_CAPACITY_EXHAUSTED');

  // Connections opened now are cut by each limit while the socket stays open.
  const silent = await rawConnect(b.port);
  const trickling = await rawConnect(b.port);
  trickling.socket.write('POST /api/v1/auth/login HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n');
  trickle(trickling, 'z'.repeat(100), 200);
  await until(t, 'the other connections were cut', () => silent.closed && trickling.closed, 10_000);
  t.notOk(wsClosed, 'the events socket is still open');
  t.equal(ws.readyState, WebSocket.OPEN);
  // The socket-idle limit (BROKER_SOCKET_IDLE_TIMEOUT_SECONDS, ≥ 32 s) is too long to wait for here:
  // ws turns the upgraded socket's timeout off, and the keepalive pings of events.ts take over.
  const serverSockets = [...b.app.websocketServer.clients].map((c) => (c as unknown as { _socket: { timeout?: number } })._socket);
  t.equal(serverSockets.length, 1);
  t.ok(serverSockets.every((s) => !s.timeout), 'no socket timeout on the upgraded connection');

  const seen = messages.length;
  const id = ((await first.json()) as { id: string }).id;
  t.equal((await fetch(`${b.base}/api/v1/streams/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status, 204);
  await until(t, 'events still arrive on it', () => messages.slice(seen).some((m) => m.type === 'stream.ended' || m.type === 'capacity'), 5_000);
  ws.close();
});

t.test('point 8: connections beyond BROKER_MAX_CONNECTIONS are refused', async (t) => {
  const b = await listenBroker(t, { env: { BROKER_MAX_CONNECTIONS: '4' } });
  const held = await Promise.all(Array.from({ length: 4 }, () => rawConnect(b.port)));
  await until(t, 'the server counts the four connections', async () => (await new Promise<number>((r) => b.app.server.getConnections((_e, n) => r(n)))) === 4, 5_000);
  const extra = await rawConnect(b.port);
  extra.socket.write('GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n');
  await until(t, 'the fifth connection is closed', () => extra.closed, 5_000);
  t.equal(extra.received(), '', 'and never answered');
  t.ok(held.every((c) => !c.closed), 'the four held connections are untouched');
  held[0]!.socket.destroy();
  await until(t, 'a freed place admits a new connection', async () => {
    const res = await fetch(`${b.base}/healthz`).catch(() => null);
    return res?.status === 200;
  }, 5_000);
  for (const c of held) c.socket.destroy();
});

t.test('point 8: the connection limits are settings, validated', async (t) => {
  const config = loadConfig({ BROKER_DATA_DIR: '/tmp/unused' });
  t.equal(config.requestTimeoutSeconds, 30, 'BROKER_REQUEST_TIMEOUT_SECONDS default');
  t.equal(config.keepaliveTimeoutSeconds, 5, 'BROKER_KEEPALIVE_TIMEOUT_SECONDS default');
  t.equal(config.headersTimeoutSeconds, 30, 'a connection that never sends a request: 30 s');
  t.ok(config.maxConnections > 0 && config.maxHeaderBytes > 0);
  t.throws(() => loadConfig({ BROKER_REQUEST_TIMEOUT_SECONDS: '0' }), /BROKER_REQUEST_TIMEOUT_SECONDS/);
  t.throws(() => loadConfig({ BROKER_KEEPALIVE_TIMEOUT_SECONDS: 'soon' }), /BROKER_KEEPALIVE_TIMEOUT_SECONDS/);
  t.throws(() => loadConfig({ BROKER_MAX_CONNECTIONS: '0' }), /BROKER_MAX_CONNECTIONS/);
  t.throws(() => loadConfig({ BROKER_SOCKET_IDLE_TIMEOUT_SECONDS: '20' }), /BROKER_SOCKET_IDLE_TIMEOUT_SECONDS/, 'shorter than the longest answer');
});
