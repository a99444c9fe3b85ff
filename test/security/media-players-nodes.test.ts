/**
 * Issue 9, point 1, for a city (BROKER_MEDIA=nodes): two broker processes on one private Redis and one
 * `npm run media-node` process with MEDIA_MAX_PLAYERS_PER_SESSION=2. The node counts the session's
 * players (a session's channel is on one node), and both brokers poll it, yet each player event is on
 * record once: the node hands each event to one claimer.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { api, privateRedis, startBroker } from '../process/helpers.js';
import { makeChannel } from '../fixtures.js';
import { startMediaNodeProcess, startSimulatorProcess } from '../media/helpers.js';
import { until } from '../helper.js';
import { playHttpFlv, playWsFlv } from '../e2e/flv-player.js';

const WIRE_DEADLINE_MS = 15_000;

const redis = await privateRedis(t);
const prefix = `pl${randomBytes(4).toString('hex')}`;
const playSecret = randomBytes(32).toString('hex');
const controlSecret = randomBytes(32).toString('hex');
const [cameras] = await Promise.all([
  startSimulatorProcess(t, 1),
  startMediaNodeProcess(t, {
    nodeId: `media-pl-${randomBytes(3).toString('hex')}`,
    controlSecret,
    playSecret,
    sourceTimeoutMs: 5000,
    env: { MEDIA_REDIS_URL: redis.url, MEDIA_REDIS_PREFIX: `${prefix}:`, MEDIA_NETWORKS: 'video', MEDIA_MAX_FORWARDS: '4', MEDIA_MAX_PLAYERS_PER_SESSION: '2' },
  }),
]);
const adminPassword = randomBytes(12).toString('base64url');
const env = {
  BROKER_STORE: 'redis',
  BROKER_REDIS_URL: redis.url,
  BROKER_REDIS_PREFIX: prefix,
  BROKER_MEDIA: 'nodes',
  BROKER_PLAY_SECRET: playSecret,
  BROKER_MEDIA_CONTROL_SECRET: controlSecret,
  BROKER_SOURCE_TIMEOUT_SECONDS: '5',
  BROKER_IDLE_CLOSE_SECONDS: '1',
  BROKER_ADMIN_PASSWORD: adminPassword,
};
const brokers = [await startBroker(t, env), await startBroker(t, env)];
const [a, b] = brokers as [(typeof brokers)[0], (typeof brokers)[0]];
const channel = makeChannel(1, 1, 'video', { sourceUrl: cameras.urls[0] });

const admin = (await api(a.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
const setup = [
  await api(a.url, 'POST', '/agencies', admin, { id: 'city-ops', name: 'City', networks: ['video'], classes: [1], quotas: { forwarding: 4, analytics: 1 } }),
  await api(a.url, 'POST', '/agencies/city-ops/users', admin, { username: 'city.op', password: 'a-long-password', role: 'operator' }),
  await api(a.url, 'POST', '/channels/import', admin, JSON.stringify(channel), 'application/x-ndjson'),
];
if (setup.some((r) => r.status >= 300)) throw new Error(`setup failed: ${JSON.stringify(setup.map((r) => [r.status, r.body]))}`);
const operator = (await api(b.url, 'POST', '/auth/login', undefined, { username: 'city.op', password: 'a-long-password' })).body.token as string;

type Entry = { action: string; details?: Record<string, unknown> };
const entriesOf = async (sessionId: string, action: string) =>
  ((await api(a.url, 'GET', `/audit?action=${action}&limit=200`, admin)).body.items as Entry[]).filter((e) => e.details?.sessionId === sessionId);

t.test('point 1: two brokers, one node: the third player is refused, and each player event is on record once', async (t) => {
  const opened = await api(b.url, 'POST', '/streams', operator, { channelId: channel.id, purpose: 'players across brokers' });
  t.equal(opened.status, 201, 'session granted through broker B');
  const urls = opened.body.urls as { flv: string; wsFlv: string };
  const one = await playHttpFlv(urls.flv, { 'user-agent': 'one' });
  const two = playWsFlv(urls.wsFlv, { 'user-agent': 'two' });
  t.teardown(() => {
    one.stop();
    two.stop();
  });
  const timely = (p: Promise<unknown>) => Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), WIRE_DEADLINE_MS))]);
  t.ok(await timely(one.videoTags(3)), 'first player plays');
  t.ok(await timely(two.videoTags(3)), 'second player plays');
  const three = await playHttpFlv(urls.flv, { 'user-agent': 'three' });
  t.equal(three.status, 403, 'third player refused');
  three.stop();

  const listed = await api(a.url, 'GET', `/streams/${opened.body.id}`, admin);
  t.equal(listed.body.players.length, 2, 'broker A lists the players from the node');

  await until(t, 'the refusal on record', async () => (await entriesOf(opened.body.id, 'play.refused')).length >= 1, WIRE_DEADLINE_MS);
  one.stop();
  two.stop();
  await until(t, 'both ends on record', async () => (await entriesOf(opened.body.id, 'play.end')).length >= 2, WIRE_DEADLINE_MS);
  // By now both brokers have polled the node several times: any duplicate would be there.
  const starts = await entriesOf(opened.body.id, 'play.start');
  const ends = await entriesOf(opened.body.id, 'play.end');
  t.same(starts.map((e) => e.details?.userAgent).sort(), ['one', 'two'], 'one play.start per player');
  t.same(ends.map((e) => e.details?.userAgent).sort(), ['one', 'two'], 'one play.end per player');
  t.equal((await entriesOf(opened.body.id, 'play.refused')).length, 1, 'one play.refused');
  for (const end of ends) t.equal(end.details?.agencyId, 'city-ops', 'under the session’s agency');
  t.equal((await api(b.url, 'DELETE', `/streams/${opened.body.id}`, operator)).status, 204);
});
