/**
 * Point 15 (a) of issue 8: a second viewer joining, through ANOTHER broker, a channel the first broker
 * is still starting got 500 INTERNAL after its grant was audited, and its slot stayed held until the
 * lease lapsed. A joiner now waits for the forward's start wherever it was started, and a start that
 * fails answers the joiner the same error as the first viewer, with no slot kept.
 *
 * Two brokers on one Redis prefix (BROKER_MEDIA=nodes), one real media node, real ffmpeg relays. The
 * camera sits behind a loopback gate this test opens, so "still starting" is a state the test
 * holds, not a race it hopes to win.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { auth, buildTestBroker, deleteRedisPrefix, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startMediaNodeProcess, startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { loadConfig } from '../../src/config.js';
import { createBroker } from '../../src/broker.js';
import { buildApp, type BrokerApp } from '../../src/app.js';

const secret = () => randomBytes(32).toString('hex');

/** A TCP gate in front of the camera: connections are held (no bytes either way) until `open()`. */
async function cameraGate(t: Test, target: string) {
  const { hostname, port, pathname } = new URL(target);
  const held: Array<() => void> = [];
  let opened = false;
  const sockets = new Set<Socket>();
  const server = createServer((client: Socket) => {
    sockets.add(client);
    const pipe = () => {
      const upstream = connect(Number(port), hostname);
      client.pipe(upstream).pipe(client);
      const drop = () => (client.destroy(), upstream.destroy());
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    };
    client.pause();
    if (opened) pipe();
    else held.push(() => (client.resume(), pipe()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `rtmp://127.0.0.1:${(server.address() as AddressInfo).port}${pathname}`,
    connections: () => held.length,
    open() {
      opened = true;
      for (const release of held.splice(0)) release();
    },
  };
}

async function twoBrokers(t: Test, sourceTimeoutSeconds: number) {
  const prefix = `t${randomBytes(6).toString('hex')}`;
  t.teardown(() => deleteRedisPrefix(prefix));
  const controlSecret = secret();
  const playSecret = secret();
  await startMediaNodeProcess(t, {
    nodeId: `node-${prefix}`,
    controlSecret,
    playSecret,
    sourceTimeoutMs: sourceTimeoutSeconds * 1000,
    env: { MEDIA_REDIS_URL: 'redis://127.0.0.1:6379', MEDIA_REDIS_PREFIX: `${prefix}:`, MEDIA_NETWORKS: 'video' },
  });
  const env = {
    BROKER_STORE: 'redis',
    BROKER_REDIS_PREFIX: prefix,
    BROKER_MEDIA: 'nodes',
    BROKER_MEDIA_CONTROL_SECRET: controlSecret,
    BROKER_PLAY_SECRET: playSecret,
    BROKER_SOURCE_TIMEOUT_SECONDS: String(sourceTimeoutSeconds),
  };
  const a = await buildTestBroker(t, { env });
  const config = loadConfig({ ...env, BROKER_DEMO: '0', BROKER_GB_SIP_PORT: '0', BROKER_DATA_DIR: a.dataDir }, { logLevel: 'silent', adminPassword: a.adminPassword });
  const logger = pino({ level: 'silent' });
  const broker = await createBroker(config, logger);
  const app = await buildApp(broker, config, logger);
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await broker.close();
  });
  for (const b of [a.broker, broker]) await until(t, 'each broker knows the media node', async () => (await b.media.nodes()).length === 1, 15_000);
  return { a, b: { app, broker } };
}

const openOn = (app: BrokerApp, token: string, channelId: string) =>
  app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'joiner check' } });

async function agencyUsed(tb: TestBroker, agencyId: string) {
  const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
  return capacity.agencies.find((x: { id: string }) => x.id === agencyId).forwarding.used as number;
}

t.test('point 15a: a joiner on another broker waits for the start and gets playing URLs', async (t) => {
  const camera = await startSimulatorProcess(t, 1);
  const gate = await cameraGate(t, camera.urls[0]!);
  const { a, b } = await twoBrokers(t, 20);
  const channel = makeChannel(1, 1, 'video', { sourceUrl: gate.url });
  await a.broker.catalog.seed([channel]);
  await until(t, 'broker B knows the channel', () => b.broker.catalog.channel(channel.id) !== undefined);
  const ops = await a.agency({ id: 'agency-a' });

  let firstDone = false;
  const first = openOn(a.app, ops.operatorToken, channel.id).finally(() => (firstDone = true));
  await until(t, "the relay is connecting to the camera (held at the gate)", () => gate.connections() > 0, 15_000);
  let joinerDone = false;
  const joiner = openOn(b.app, ops.adminToken, channel.id).finally(() => (joinerDone = true));
  await until(t, 'the joiner holds its slot on B', async () => (await b.broker.slots.listSessions({ agencyId: 'agency-a' })).length === 2);
  t.notOk(firstDone || joinerDone, 'both are waiting while the first broker is still starting');

  gate.open();
  const [one, two] = await Promise.all([first, joiner]);
  t.equal(one.statusCode, 201, 'the first viewer is granted');
  t.equal(two.statusCode, 201, 'the joiner on the other broker is granted, not 500');
  t.equal(two.json().shared, true);
  const player = await playHttpFlv(two.json().urls.flv);
  t.teardown(() => player.stop());
  t.equal(player.status, 200);
  await until(t, "the joiner's URL plays video", () => player.flv.videoTags >= 3, 15_000);
});

t.test("point 15a: a start that fails answers the joiner the first viewer's error and keeps no slot", async (t) => {
  const gate = await cameraGate(t, 'rtmp://127.0.0.1:9/cam/1'); // never opened: a camera that sends nothing
  const { a, b } = await twoBrokers(t, 3);
  const channel = makeChannel(1, 1, 'video', { sourceUrl: gate.url });
  await a.broker.catalog.seed([channel]);
  await until(t, 'broker B knows the channel', () => b.broker.catalog.channel(channel.id) !== undefined);
  const ops = await a.agency({ id: 'agency-a' });

  const first = openOn(a.app, ops.operatorToken, channel.id);
  await until(t, 'the relay is connecting to the camera', () => gate.connections() > 0, 15_000);
  const joiner = openOn(b.app, ops.adminToken, channel.id);
  const [one, two] = await Promise.all([first, joiner]);
  t.equal(one.statusCode, 504);
  t.equal(two.statusCode, one.statusCode, 'the joiner gets the same answer');
  t.equal(two.json().error.code, 'SOURCE_UNAVAILABLE');
  await until(t, 'no slot is kept for either', async () => (await agencyUsed(a, 'agency-a')) === 0);
  const denials = (await a.app.inject({ url: `/api/v1/audit?action=stream.deny&channelId=${channel.id}`, headers: auth(a.adminToken) })).json().items as Array<{ actor: { id: string }; reason: string }>;
  t.ok(denials.some((e) => e.actor.id === ops.adminId && e.reason === 'source-unavailable'), "the joiner's refusal is on record with its cause");
  const grants = (await a.app.inject({ url: `/api/v1/audit?action=stream.grant`, headers: auth(a.adminToken) })).json().items;
  t.equal(grants.length, 0, 'no grant on record for a session nobody was given');
});
