/**
 * GET /events over a real listening server and a `ws` client: who sees which event, end reasons,
 * refusal before the upgrade, the per-token cap, capacity coalescing and the stream.expiring notice.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { AddressInfo } from 'node:net';
import { auth, buildTestBroker, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import type { BrokerEvent } from '../../src/core/events.js';

const channels = Array.from({ length: 12 }, (_, i) => makeChannel(i + 1, 1, 'video'));
const MARKER = { type: 'capacity', at: '2000-01-01T00:00:00.000Z', forwarding: { limit: -1, used: 0, queued: 0 }, analytics: { limit: -1, used: 0 } } as const;

interface EventClient {
  messages: BrokerEvent[];
  /** Resolves with the first message (already received or to come) that matches. */
  next(match: (event: BrokerEvent) => boolean, what: string): Promise<BrokerEvent>;
  closed: Promise<{ code: number; reason: string }>;
  socket: WebSocket;
}

async function serve(tb: TestBroker): Promise<string> {
  await tb.app.listen({ host: '127.0.0.1', port: 0 });
  return `ws://127.0.0.1:${(tb.app.server.address() as AddressInfo).port}/api/v1/events`;
}

/** Opens a socket; resolves once open, or rejects with the HTTP status of a refused upgrade. */
function connect(t: Test, url: string, token?: string, viaHeader = false): Promise<EventClient> {
  const socket = new WebSocket(token && !viaHeader ? `${url}?token=${encodeURIComponent(token)}` : url, viaHeader && token ? { headers: auth(token) } : {});
  t.teardown(() => socket.terminate());
  const messages: BrokerEvent[] = [];
  const waiters: Array<{ match: (e: BrokerEvent) => boolean; resolve: (e: BrokerEvent) => void }> = [];
  socket.on('message', (data) => {
    const event = JSON.parse(String(data)) as BrokerEvent;
    messages.push(event);
    for (const w of [...waiters]) if (w.match(event)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(event));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const client: EventClient = {
    messages,
    socket,
    closed,
    next: (match, what) => {
      const seen = messages.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event: ${what}`)), 10_000);
        waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(client));
    socket.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`refused ${res.statusCode}`), { statusCode: res.statusCode })));
    socket.once('error', reject);
  });
}

const open = (tb: TestBroker, token: string, channelId: string) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'patrol check' } });
const release = (tb: TestBroker, token: string, id: string) => tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${id}`, headers: auth(token) });
const isMarker = (e: BrokerEvent): e is Extract<BrokerEvent, { type: 'capacity' }> => e.type === 'capacity' && e.forwarding.limit === -1;
const endedIds = (c: EventClient) => c.messages.filter((e) => e.type === 'stream.ended').map((e) => (e as { id: string }).id).sort();

t.test('each client sees its own sessions, admins their agency, platform-admins all, with the end reason', async (t) => {
  const tb = await buildTestBroker(t);
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const b = await tb.agency({ id: 'agency-b' });
  const url = await serve(tb);
  const [opA, adminA, opB, platform] = await Promise.all([
    connect(t, url, a.operatorToken),
    connect(t, url, a.adminToken, true),
    connect(t, url, b.operatorToken),
    connect(t, url, tb.adminToken),
  ]);

  const sOpA = (await open(tb, a.operatorToken, channels[0]!.id)).json().id as string;
  const sAdminA = (await open(tb, a.adminToken, channels[1]!.id)).json().id as string;
  const sOpB = (await open(tb, b.operatorToken, channels[2]!.id)).json().id as string;
  for (const [token, id] of [[a.operatorToken, sOpA], [a.adminToken, sAdminA], [b.operatorToken, sOpB]] as const) t.equal((await release(tb, token, id)).statusCode, 204);
  // Events on one socket arrive in order: once the marker is in, every earlier event for that client is too.
  tb.broker.events.publish(MARKER);
  await Promise.all([opA, adminA, opB, platform].map((c) => c.next(isMarker, 'marker')));

  t.same(endedIds(opA), [sOpA], 'operator A: only its own session');
  t.same(endedIds(adminA), [sOpA, sAdminA].sort(), 'admin A: its agency, not agency B');
  t.same(endedIds(opB), [sOpB], 'operator B: only its own');
  t.same(endedIds(platform), [sOpA, sAdminA, sOpB].sort(), 'platform-admin: all');
  const ended = opA.messages.find((e) => e.type === 'stream.ended')!;
  t.match(ended, { type: 'stream.ended', id: sOpA, channelId: channels[0]!.id, reason: 'released', agencyId: 'agency-a' });
  t.ok(!Number.isNaN(Date.parse(ended.at)), 'at is a time');
});

t.test('expiring notice at a third of the TTL left, then expired; revoked when the user is disabled', async (t) => {
  let skewMs = 0;
  const tb = await buildTestBroker(t, { env: { BROKER_LEASE_TTL_SECONDS: '30' }, overrides: { clock: () => Date.now() + skewMs } });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const url = await serve(tb);
  const operator = await connect(t, url, a.operatorToken);
  const admin = await connect(t, url, a.adminToken);

  const expiring = (await open(tb, a.operatorToken, channels[0]!.id)).json();
  skewMs = 21_000; // 9 s of 30 left: inside the last third
  const notice = await operator.next((e) => e.type === 'stream.expiring', 'stream.expiring');
  t.match(notice, { type: 'stream.expiring', id: expiring.id, channelId: channels[0]!.id, expiresAt: expiring.expiresAt, agencyId: 'agency-a' });
  await admin.next((e) => e.type === 'stream.expiring', 'the admin sees its agency notice too');

  skewMs = 31_000;
  await tb.broker.sweep();
  t.match(await operator.next((e) => e.type === 'stream.ended', 'expired'), { id: expiring.id, reason: 'expired' });
  t.equal(operator.messages.filter((e) => e.type === 'stream.expiring').length, 1, 'noticed once per lease');

  const revoked = (await open(tb, a.operatorToken, channels[1]!.id)).json();
  const patch = await tb.app.inject({ method: 'PATCH', url: `/api/v1/users/${a.operatorId}`, headers: auth(tb.adminToken), payload: { disabled: true } });
  t.equal(patch.statusCode, 200);
  t.match(await admin.next((e) => e.type === 'stream.ended' && e.id === revoked.id, 'revoked'), { reason: 'revoked', principalId: a.operatorId });
});

t.test('a missing or bad token is refused with 401 before the upgrade', async (t) => {
  const tb = await buildTestBroker(t);
  const url = await serve(tb);
  const refusal = (attempt: Promise<EventClient>) => attempt.then(() => 'upgraded', (err: { statusCode?: number }) => err.statusCode);
  t.equal(await refusal(connect(t, url)), 401, 'no token');
  t.equal(await refusal(connect(t, url, 'not-a-token')), 401, 'bad ?token=');
  t.equal(await refusal(connect(t, url, 'not-a-token', true)), 401, 'bad Authorization header');
  const ok = await connect(t, url, tb.adminToken);
  t.match(await ok.next((e) => e.type === 'capacity', 'initial snapshot'), { type: 'capacity', forwarding: { limit: 3000, used: 0, queued: 0 }, analytics: { limit: 1000, used: 0 } });
});

t.test('connections per token are capped (close 1008); closing one frees its place', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_WS_MAX_CONNECTIONS_PER_TOKEN: '2' } });
  const a = await tb.agency({ id: 'agency-a' });
  const url = await serve(tb);
  const first = await connect(t, url, a.operatorToken);
  await connect(t, url, a.operatorToken, true);
  const third = await connect(t, url, a.operatorToken);
  t.match(await third.closed, { code: 1008 }, 'the third is closed with policy violation');
  const otherToken = await connect(t, url, a.adminToken);
  await otherToken.next((e) => e.type === 'capacity', 'another token is not affected');
  first.socket.close();
  await first.closed;
  // The server counts the close when it sees it; retry until the freed place is visible.
  let again: EventClient | undefined;
  for (let i = 0; i < 50 && !again; i++) {
    const attempt = await connect(t, url, a.operatorToken);
    const outcome = await Promise.race([attempt.closed.then(() => 'closed'), attempt.next((e) => e.type === 'capacity', 'snapshot').then(() => 'open')]);
    if (outcome === 'open') again = attempt;
  }
  t.ok(again, 'a new connection fits once one closed');
});

t.test('capacity events follow changes, at most two per second', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_IDLE_CLOSE_SECONDS: '0' }, start: true });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const url = await serve(tb);
  const watcher = await connect(t, url, a.operatorToken);
  await watcher.next((e) => e.type === 'capacity', 'initial snapshot');
  const sessions = await Promise.all(channels.slice(0, 10).map((c) => open(tb, a.adminToken, c.id)));
  const ten = await watcher.next((e) => e.type === 'capacity' && e.forwarding.used === 10, 'ten in use');
  await Promise.all(sessions.map((s) => release(tb, a.adminToken, s.json().id)));
  const afterTen = (e: BrokerEvent) => watcher.messages.indexOf(e) > watcher.messages.indexOf(ten);
  await watcher.next((e) => e.type === 'capacity' && e.forwarding.used === 0 && afterTen(e), 'back to zero');
  const changes = watcher.messages.filter((e) => e.type === 'capacity').slice(1);
  t.ok(changes.length < 20, `20 changes coalesced into ${changes.length} events`);
  for (let i = 1; i < changes.length; i++) {
    const gap = Date.parse(changes[i]!.at) - Date.parse(changes[i - 1]!.at);
    t.ok(gap >= 450, `events ${i - 1} and ${i} are ${gap} ms apart`);
  }
});

t.test('a client that does not read is dropped with 1013 once its send buffer passes the limit', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_WS_MAX_BUFFERED_BYTES: '65536' } });
  const a = await tb.agency({ id: 'agency-a' });
  const url = await serve(tb);
  const slow = await connect(t, url, a.operatorToken);
  await slow.next((e) => e.type === 'capacity', 'initial snapshot');
  // Stop reading at the TCP level (ws keeps its net.Socket in `_socket`): the kernel buffers fill, then ours.
  const tcp = (slow.socket as unknown as { _socket: import('node:net').Socket })._socket;
  tcp.pause();
  const fast = await connect(t, url, a.adminToken);
  // The broker closes a socket it cannot write to with 1013 and gives the close frame ws's 30 s to get through;
  // a client still not reading after that is cut (1006). So publish only until the broker has closed the slow
  // socket (its side turns CLOSING), then read at once: under any load the close frame then arrives.
  const serverSockets = () => [...tb.app.websocketServer.clients];
  const closing = () => serverSockets().some((s) => s.readyState === s.CLOSING);
  const LIMIT = 200_000;
  let published = 0;
  // In batches, yielding between them, so the reading client (same process) gets to read.
  while (published < LIMIT && !closing()) {
    tb.broker.events.publish({ ...MARKER, forwarding: { limit: -1, used: published, queued: 0 } });
    published += 1;
    if (published % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  t.ok(closing(), `the broker closed the slow socket after ${published} events`);
  tcp.resume();
  t.match(await slow.closed, { code: 1013 }, 'the slow reader is closed with "try again later"');
  t.ok(slow.messages.length < published + 1, `it got ${slow.messages.length - 1} of ${published} before being dropped`);
  tb.broker.events.publish({ ...MARKER, forwarding: { limit: -1, used: -1, queued: 0 } });
  await fast.next((e) => isMarker(e) && e.forwarding.used === -1, 'a client that reads keeps its events');
  t.equal(fast.messages.length, published + 2, 'the reading client got every event');
});
