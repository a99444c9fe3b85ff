/**
 * Issue 10 point 3 with BROKER_MEDIA=nodes: a broker process on a private Redis, a city media node
 * (`npm run media-node`, MEDIA_MAX_TRANSCODES=1) over its HTTP control API, simulated H.265 cameras. Asked for
 * H.264, an H.265 channel plays AVC from the node's one transcode, shared by two sessions and stopped with the
 * last; the spent budget answers 503 TRANSCODE_CAPACITY_EXHAUSTED and keeps no slot.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { api, privateRedis, startBroker } from '../process/helpers.js';
import { makeChannel } from '../fixtures.js';
import { readFlvTags, startMediaNodeProcess, startSimulatorProcess } from '../media/helpers.js';
import { until } from '../helper.js';

const redis = await privateRedis(t);
const prefix = `tc${randomBytes(4).toString('hex')}`;
const playSecret = randomBytes(32).toString('hex');
const controlSecret = randomBytes(32).toString('hex');
const [cameras, node] = await Promise.all([
  startSimulatorProcess(t, 1, { h265Cameras: 2 }),
  startMediaNodeProcess(t, {
    nodeId: 'media-transcode',
    controlSecret,
    playSecret,
    sourceTimeoutMs: 10_000,
    env: { MEDIA_REDIS_URL: redis.url, MEDIA_REDIS_PREFIX: `${prefix}:`, MEDIA_NETWORKS: 'video', MEDIA_MAX_FORWARDS: '10', MEDIA_MAX_TRANSCODES: '1' },
  }),
]);
const adminPassword = randomBytes(12).toString('base64url');
const broker = await startBroker(t, {
  BROKER_STORE: 'redis',
  BROKER_REDIS_URL: redis.url,
  BROKER_REDIS_PREFIX: prefix,
  BROKER_MEDIA: 'nodes',
  BROKER_PLAY_SECRET: playSecret,
  BROKER_MEDIA_CONTROL_SECRET: controlSecret,
  BROKER_SOURCE_TIMEOUT_SECONDS: '10',
  BROKER_ADMIN_PASSWORD: adminPassword,
});
const channels = {
  h265: makeChannel(1, 1, 'video', { sourceUrl: cameras.h265Urls[0] }),
  otherH265: makeChannel(2, 1, 'video', { sourceUrl: cameras.h265Urls[1] }),
};
const admin = (await api(broker.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
const setup = [
  await api(broker.url, 'POST', '/agencies', admin, { id: 'city-ops', name: '城市运行管理中心', networks: ['video'], classes: [1], quotas: { forwarding: 5, analytics: 1 } }),
  await api(broker.url, 'POST', '/agencies/city-ops/users', admin, { username: 'city.op', password: 'a-long-password', role: 'operator' }),
  await api(broker.url, 'POST', '/channels/import', admin, Object.values(channels).map((c) => JSON.stringify(c)).join('\n'), 'application/x-ndjson'),
];
if (setup.some((r) => r.status >= 300)) throw new Error(`setup failed: ${JSON.stringify(setup.map((r) => [r.status, r.body]))}`);
const operator = (await api(broker.url, 'POST', '/auth/login', undefined, { username: 'city.op', password: 'a-long-password' })).body.token as string;

const open = (channelId: string) => api(broker.url, 'POST', '/streams', operator, { channelId, purpose: 'city H.264 fallback', codec: 'h264' });
const used = async () => (await api(broker.url, 'GET', '/capacity', admin)).body.forwarding.used as number;
const ffmpegChildren = () => spawnSync('ps', ['-o', 'args=', '--ppid', String(node.child.pid)]).stdout.toString().split('\n').filter((args) => /ffmpeg/.test(args));

t.test('a city media node transcodes an H.265 channel once for its H.264 sessions, within its budget', async (t) => {
  await until(t, 'the media node registered', async () => (await api(broker.url, 'GET', '/capacity', admin)).body.mediaNodes?.length === 1, 15_000);
  const first = await open(channels.h265.id);
  t.equal(first.status, 201, JSON.stringify(first.body));
  t.equal(first.body.codec, 'h264');
  t.ok(first.body.urls.flv.startsWith(`${node.playBaseUrl}/live/${channels.h265.id}_h264.flv?token=`), 'from the media node, the transcoded stream key');
  const video = (await readFlvTags(first.body.urls.flv, 5)).filter((tag) => tag.type === 9);
  t.ok(video.every((tag) => (tag.data[0] & 0x0f) === 7), 'AVC');
  t.equal(video[0]!.data[1], 0, 'sequence header first');
  const second = await open(channels.h265.id);
  t.equal(second.status, 201);
  t.equal((await node.control('GET', '/load')).body.transcodes, 1, 'one transcode on the node for both');
  t.equal(ffmpegChildren().length, 1, 'one ffmpeg');

  const before = await used();
  const spent = await open(channels.otherH265.id);
  t.equal(spent.status, 503);
  t.equal(spent.body.error.code, 'TRANSCODE_CAPACITY_EXHAUSTED');
  t.equal(await used(), before, 'no slot kept');

  t.equal((await api(broker.url, 'DELETE', `/streams/${first.body.id}`, operator)).status, 204);
  t.equal((await node.control('GET', '/load')).body.transcodes, 1, 'the second session still holds it');
  t.equal((await api(broker.url, 'DELETE', `/streams/${second.body.id}`, operator)).status, 204);
  await until(t, 'the transcode to stop with its last session', async () => (await node.control('GET', '/load')).body.transcodes === 0 && ffmpegChildren().length === 0);
  t.pass('stopped, and its ffmpeg gone');
});

t.test('the node control API refuses a malformed session id for a transcode', async (t) => {
  for (const sessionId of [{ id: 's_1' }, 'no spaces allowed', '', 42]) {
    const res = await node.control('POST', '/transcodes', { channelId: channels.h265.id, sessionId });
    t.equal(res.status, 400, `sessionId ${JSON.stringify(sessionId)}`);
  }
  t.equal((await node.control('GET', '/load')).body.transcodes, 0, 'nothing started');
});
