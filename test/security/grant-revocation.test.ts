/**
 * Point 6 of issue 8: narrowing what an agency may see (PATCH /agencies/:id networks/classes, or a
 * channel's class change) ends its live sessions and reservations on channels it may no longer see,
 * within a second, with reason `revoked`: slots freed, audited, clients told, heartbeats 404 — on
 * both stores, and on Redis also when another broker made the change.
 * @see ../../shared/API.md "Agencies", "Channels"
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { STORES, auth, buildTestBroker, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { loadConfig } from '../../src/config.js';
import { createBroker } from '../../src/broker.js';
import { buildApp, type BrokerApp } from '../../src/app.js';
import type { BrokerEvent } from '../../src/core/events.js';

/** "Within a second" (API.md), with room for a loaded test machine. */
const REVOKE_DEADLINE_MS = 3000;

const video = makeChannel(1, 1, 'video');
const gov = makeChannel(2, 1, 'gov');
const classTwo = makeChannel(3, 2, 'video');

type App = BrokerApp;
const openStream = (app: App, token: string, channelId: string) =>
  app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'patrol check' } });
const heartbeat = (app: App, token: string, id: string) => app.inject({ method: 'POST', url: `/api/v1/streams/${id}/heartbeat`, headers: auth(token) });
const auditOf = async (app: App, token: string, action: string) =>
  (await app.inject({ url: `/api/v1/audit?action=${action}&limit=500`, headers: auth(token) })).json().items as Array<{ target: string; reason?: string }>;

/** Collects the events an events socket receives. */
async function listen(t: Test, app: App, token: string): Promise<BrokerEvent[]> {
  if (!app.server.listening) await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/v1/events`, { headers: auth(token) });
  t.teardown(() => socket.terminate());
  const events: BrokerEvent[] = [];
  socket.on('message', (data) => events.push(JSON.parse(String(data)) as BrokerEvent));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return events;
}

const endedRevoked = (events: BrokerEvent[], id: string) =>
  events.some((e) => (e.type === 'stream.ended' || e.type === 'reservation.ended') && e.id === id && e.reason === 'revoked');

async function reserve(tb: TestBroker, agencyId: string, adminToken: string, channelId: string) {
  const key = (await tb.app.inject({ method: 'POST', url: `/api/v1/agencies/${agencyId}/service-accounts`, headers: auth(adminToken), payload: { name: 'fog-ai' } })).json();
  const headers = { authorization: `ApiKey ${key.apiKey}` };
  const res = await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers, payload: { channelId, task: 'fog detection' } });
  if (res.statusCode !== 201) throw new Error(`reservation: ${res.statusCode} ${res.body}`);
  return { id: res.json().id as string, headers };
}

for (const store of STORES) {
  t.test(store.BROKER_STORE, async (t) => {
    t.test("point 6: narrowing an agency's networks ends its sessions and reservations there with reason revoked", async (t) => {
      const tb = await buildTestBroker(t, { env: { ...store } });
      await tb.broker.catalog.seed([video, gov]);
      const a = await tb.agency({ id: 'agency-a' });
      const kept = (await openStream(tb.app, a.operatorToken, video.id)).json().id as string;
      const lost = (await openStream(tb.app, a.operatorToken, gov.id)).json().id as string;
      const reservation = await reserve(tb, 'agency-a', a.adminToken, gov.id);
      const events = await listen(t, tb.app, a.adminToken);

      const patched = await tb.app.inject({ method: 'PATCH', url: '/api/v1/agencies/agency-a', headers: auth(tb.adminToken), payload: { networks: ['video'] } });
      t.equal(patched.statusCode, 200);

      // Nobody heartbeats or reads meanwhile: the change itself ends them.
      await until(t, 'the session on gov is revoked', async () => (await auditOf(tb.app, tb.adminToken, 'stream.revoke')).some((e) => e.target === `session:${lost}`), REVOKE_DEADLINE_MS);
      await until(t, 'the reservation on gov is revoked', async () => (await auditOf(tb.app, tb.adminToken, 'analytics.revoke')).some((e) => e.target === `reservation:${reservation.id}`), REVOKE_DEADLINE_MS);
      await until(t, 'clients are told', () => endedRevoked(events, lost) && endedRevoked(events, reservation.id), REVOKE_DEADLINE_MS);

      t.equal((await heartbeat(tb.app, a.operatorToken, lost)).statusCode, 404, 'its heartbeat answers 404');
      t.equal((await tb.app.inject({ url: `/api/v1/streams/${lost}`, headers: auth(a.operatorToken) })).statusCode, 404);
      const reservationBeat = await tb.app.inject({ method: 'POST', url: `/api/v1/analytics/reservations/${reservation.id}/heartbeat`, headers: reservation.headers });
      t.equal(reservationBeat.statusCode, 404, 'the reservation heartbeat answers 404');
      t.equal((await heartbeat(tb.app, a.operatorToken, kept)).statusCode, 200, 'a session on a channel still visible goes on');
      const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
      const agencyA = capacity.agencies.find((x: { id: string }) => x.id === 'agency-a');
      t.equal(agencyA.forwarding.used, 1, "gov no longer counts against the agency's forwarding quota");
      t.equal(capacity.analytics.used, 0, 'the analytics slot is freed');
      t.equal((await openStream(tb.app, a.operatorToken, gov.id)).statusCode, 404, 'a new play of gov is refused as not found');
    });

    t.test("point 6: a channel's class change ends the sessions of agencies that may no longer see it", async (t) => {
      const tb = await buildTestBroker(t, { env: { ...store } });
      await tb.broker.catalog.seed([video, classTwo]);
      const a = await tb.agency({ id: 'agency-a', classes: [1, 2] });
      const b = await tb.agency({ id: 'agency-b', classes: [1, 2, 3] });
      const lost = (await openStream(tb.app, a.operatorToken, classTwo.id)).json().id as string;
      const other = (await openStream(tb.app, b.operatorToken, classTwo.id)).json().id as string;
      const kept = (await openStream(tb.app, a.operatorToken, video.id)).json().id as string;

      const patched = await tb.app.inject({ method: 'PATCH', url: `/api/v1/channels/${classTwo.id}`, headers: auth(tb.adminToken), payload: { class: 3 } });
      t.equal(patched.statusCode, 200);
      t.equal(patched.json().class, 3);

      await until(t, 'the session of agency-a on the reclassed channel is revoked', async () => (await auditOf(tb.app, tb.adminToken, 'stream.revoke')).some((e) => e.target === `session:${lost}`), REVOKE_DEADLINE_MS);
      t.equal((await heartbeat(tb.app, a.operatorToken, lost)).statusCode, 404);
      t.equal((await heartbeat(tb.app, b.operatorToken, other)).statusCode, 200, 'an agency that still sees class 3 goes on');
      t.equal((await heartbeat(tb.app, a.operatorToken, kept)).statusCode, 200);
    });
  });
}

t.test('redis: point 6: a grant narrowed on one broker ends a session opened on another', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_STORE: 'redis' } });
  await tb.broker.catalog.seed([video, gov]);
  const a = await tb.agency({ id: 'agency-a' });

  // A second broker on the same Redis prefix: same store, secrets and tokens.
  const config = loadConfig({ ...process.env, BROKER_STORE: 'redis', BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_GB_SIP_PORT: '0', BROKER_DATA_DIR: tb.dataDir, BROKER_REDIS_PREFIX: tb.config.redisPrefix }, { logLevel: 'silent', adminPassword: tb.adminPassword });
  const logger = pino({ level: 'silent' });
  const other = await createBroker(config, logger);
  const otherApp = await buildApp(other, config, logger);
  await otherApp.ready();
  t.teardown(async () => {
    await otherApp.close();
    await other.close();
  });

  await until(t, 'broker B knows the channels', () => other.catalog.size === 2);
  await until(t, 'broker B knows agency-a', () => other.accounts.agency('agency-a') !== undefined);
  const opened = await openStream(otherApp, a.operatorToken, gov.id);
  t.equal(opened.statusCode, 201, 'B grants the session');
  const lost = opened.json().id as string;
  const events = await listen(t, otherApp, a.operatorToken);

  const patched = await tb.app.inject({ method: 'PATCH', url: '/api/v1/agencies/agency-a', headers: auth(tb.adminToken), payload: { networks: ['video'] } });
  t.equal(patched.statusCode, 200);

  await until(t, 'the session opened on B is revoked', async () => (await auditOf(otherApp, tb.adminToken, 'stream.revoke')).some((e) => e.target === `session:${lost}` && e.reason === 'revoked'), REVOKE_DEADLINE_MS);
  await until(t, "B's events socket hears stream.ended revoked", () => endedRevoked(events, lost), REVOKE_DEADLINE_MS);
  t.equal((await heartbeat(otherApp, a.operatorToken, lost)).statusCode, 404, 'its heartbeat on B answers 404');
  t.equal((await heartbeat(tb.app, a.operatorToken, lost)).statusCode, 404, 'and on A');
  const revocations = (await auditOf(tb.app, tb.adminToken, 'stream.revoke')).filter((e) => e.target === `session:${lost}`);
  t.equal(revocations.length, 1, 'one broker ended it: one revocation on record');
  t.equal((await openStream(otherApp, a.operatorToken, gov.id)).statusCode, 404, 'B refuses a new play of gov');
});
