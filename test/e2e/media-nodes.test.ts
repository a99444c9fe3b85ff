/**
 * A city's media plane end to end (BROKER_MEDIA=nodes): a broker process on a private Redis, two
 * `npm run media-node` processes registered there that reach different networks, a camera simulator,
 * ffmpeg relays and real players. Forwards land on the node that reaches the channel's network; a node
 * that dies takes its sessions with it (source-failed), frees their slots, and leaves its networks
 * unserved (503: no media node, not a silent camera) while the other network keeps playing.
 */
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, privateRedis, startBroker } from '../process/helpers.js';
import { makeChannel } from '../fixtures.js';
import { startMediaNodeProcess, startSimulatorProcess, type MediaNodeProcess } from '../media/helpers.js';
import { until } from '../helper.js';
import { playHttpFlv } from './flv-player.js';

const WIRE_DEADLINE_MS = 15_000;

const redis = await privateRedis(t);
const prefix = `e2e${randomBytes(4).toString('hex')}`;
// API.md: secrets shared between the broker and its media nodes are at least 32 characters.
const playSecret = randomBytes(32).toString('hex');
const controlSecret = randomBytes(32).toString('hex');
const nodeEnv = (networks: string) => ({
  MEDIA_REDIS_URL: redis.url,
  MEDIA_REDIS_PREFIX: `${prefix}:`,
  MEDIA_NETWORKS: networks,
  MEDIA_MAX_FORWARDS: '10',
});
const govNodeId = `media-gov-${randomBytes(3).toString('hex')}`;
const [cameras, videoNode, govNode] = await Promise.all([
  startSimulatorProcess(t, 5),
  startMediaNodeProcess(t, { nodeId: 'media-video', controlSecret, playSecret, sourceTimeoutMs: 5000, env: nodeEnv('video') }),
  startMediaNodeProcess(t, { nodeId: govNodeId, controlSecret, playSecret, sourceTimeoutMs: 5000, env: nodeEnv('gov,interconnect') }),
]);
// The node killed below cannot remove its scratch directory (media-node.ts names it after the node id).
t.teardown(async () => {
  const scratch = (await readdir(tmpdir())).filter((name) => name.startsWith(`media-node-${govNodeId}-`));
  await Promise.all(scratch.map((name) => rm(join(tmpdir(), name), { recursive: true, force: true })));
});

const adminPassword = randomBytes(12).toString('base64url');
const broker = await startBroker(t, {
  BROKER_STORE: 'redis',
  BROKER_REDIS_URL: redis.url,
  BROKER_REDIS_PREFIX: prefix,
  BROKER_MEDIA: 'nodes',
  BROKER_PLAY_SECRET: playSecret,
  BROKER_MEDIA_CONTROL_SECRET: controlSecret,
  BROKER_SOURCE_TIMEOUT_SECONDS: '5',
  BROKER_IDLE_CLOSE_SECONDS: '1',
  BROKER_ADMIN_PASSWORD: adminPassword,
});

const channels = {
  video: makeChannel(1, 1, 'video', { sourceUrl: cameras.urls[0] }),
  gov: makeChannel(2, 2, 'gov', { sourceUrl: cameras.urls[1] }),
  interconnect: makeChannel(3, 3, 'interconnect', { sourceUrl: cameras.urls[2] }),
  secondVideo: makeChannel(4, 1, 'video', { sourceUrl: cameras.urls[3] }),
  secondGov: makeChannel(5, 2, 'gov', { sourceUrl: cameras.urls[4] }),
};

const admin = (await api(broker.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
const setup = [
  await api(broker.url, 'POST', '/agencies', admin, {
    id: 'city-ops',
    name: '城市运行管理中心',
    networks: ['video', 'gov', 'interconnect'],
    classes: [1, 2, 3],
    quotas: { forwarding: 20, analytics: 1 },
  }),
  await api(broker.url, 'POST', '/agencies/city-ops/users', admin, { username: 'city.op', password: 'a-long-password', role: 'operator' }),
  await api(broker.url, 'POST', '/channels/import', admin, Object.values(channels).map((c) => JSON.stringify(c)).join('\n'), 'application/x-ndjson'),
];
if (setup.some((r) => r.status >= 300)) throw new Error(`setup failed: ${JSON.stringify(setup.map((r) => [r.status, r.body]))}`);
const operator = (await api(broker.url, 'POST', '/auth/login', undefined, { username: 'city.op', password: 'a-long-password' })).body.token as string;

const open = (channelId: string) => api(broker.url, 'POST', '/streams', operator, { channelId, purpose: 'city media node check' });
const forwardsOn = async (node: MediaNodeProcess) =>
  ((await node.control('GET', '/load')).body.forwardsList as Array<{ channelId: string }>).map((f) => f.channelId).sort();
const used = async () => (await api(broker.url, 'GET', '/capacity', admin)).body.forwarding.used as number;

async function assertPlays(t: Test, url: string, what: string) {
  const player = await playHttpFlv(url);
  t.teardown(() => player.stop());
  t.equal(player.status, 200, `${what}: HTTP 200`);
  await until(t, `${what}: video`, () => player.flv.videoTags >= 3, WIRE_DEADLINE_MS);
  t.ok(player.flv.header && player.flv.videoTags >= 3, `${what}: 'FLV', then video tags`);
  return player;
}

// Sessions the second test ends by killing their node.
const sessions: Record<string, { id: string; urls: { flv: string } }> = {};

t.test('channels land on the media node that reaches their network', async (t) => {
  await until(t, 'both nodes registered', async () => (await api(broker.url, 'GET', '/capacity', admin)).body.mediaNodes?.length === 2, WIRE_DEADLINE_MS);
  for (const name of ['video', 'gov', 'interconnect'] as const) {
    const res = await open(channels[name].id);
    t.equal(res.status, 201, `${name} channel granted`);
    sessions[name] = res.body;
  }
  t.ok(sessions.video!.urls.flv.startsWith(`${videoNode.playBaseUrl}/`), 'the video channel plays from the video node');
  t.ok(sessions.gov!.urls.flv.startsWith(`${govNode.playBaseUrl}/`), 'the gov channel plays from the gov/interconnect node');
  t.ok(sessions.interconnect!.urls.flv.startsWith(`${govNode.playBaseUrl}/`), 'the interconnect channel too');
  t.same(await forwardsOn(videoNode), [channels.video.id], 'video node /load lists only the video forward');
  t.same(await forwardsOn(govNode), [channels.gov.id, channels.interconnect.id].sort(), 'gov node /load lists the other two');
  for (const name of ['video', 'gov', 'interconnect'] as const) (await assertPlays(t, sessions[name]!.urls.flv, name)).stop();
});

t.test('a killed media node: its sessions end (source-failed), its slots free, its networks get 503, the other plays on', async (t) => {
  const govPlayer = await assertPlays(t, sessions.gov!.urls.flv, 'gov before the kill');
  t.equal(await used(), 3, 'three channels forwarded');
  govNode.child.kill('SIGKILL');

  const gone = async (id: string) => (await api(broker.url, 'GET', `/streams/${id}`, operator)).status === 404;
  // The broker notices when the node's registration lapses (a few seconds' TTL).
  await until(t, 'the dead node’s sessions ended', async () => (await gone(sessions.gov!.id)) && (await gone(sessions.interconnect!.id)), 30_000);
  t.equal((await api(broker.url, 'GET', `/streams/${sessions.gov!.id}`, operator)).status, 404, 'gov session gone');
  t.equal((await api(broker.url, 'GET', `/streams/${sessions.video!.id}`, operator)).status, 200, 'the video session lives on');
  t.ok(govPlayer.isClosed(), 'the gov player is disconnected (its node is gone)');
  await until(t, 'both ends audited', async () => (await api(broker.url, 'GET', '/audit?action=stream.source-failed', admin)).body.items.length >= 2, WIRE_DEADLINE_MS);
  const audit = (await api(broker.url, 'GET', '/audit?action=stream.source-failed', admin)).body.items as Array<{ target: string; reason: string }>;
  t.same(
    audit.map((e) => [e.target, e.reason]).sort(),
    [`session:${sessions.gov!.id}`, `session:${sessions.interconnect!.id}`].sort().map((target) => [target, 'source-failed']),
    'each end audited as stream.source-failed',
  );
  t.equal(await used(), 1, 'their forwarding slots are free; the video one is kept');

  const unserved = await open(channels.secondGov.id);
  t.equal(unserved.status, 503, 'no live node reaches the gov network');
  t.equal(unserved.body.error.code, 'UNAVAILABLE', 'error code UNAVAILABLE (the media plane, not the camera)');
  t.equal(await used(), 1, 'the refused request kept no slot');

  const served = await open(channels.secondVideo.id);
  t.equal(served.status, 201, 'the video network is still served');
  t.ok(served.body.urls.flv.startsWith(`${videoNode.playBaseUrl}/`), 'it plays from the video node');
  (await assertPlays(t, served.body.urls.flv, 'another video channel')).stop();
  t.same(await forwardsOn(videoNode), [channels.video.id, channels.secondVideo.id].sort(), 'video node /load lists both video forwards');
});
