import t from 'tap';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createClient } from 'redis';
import { MediaUnavailableError, SourceUnavailableError } from '../../src/core/ports.js';
import { createNodesMediaControl } from '../../src/media/media-control-nodes.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { registryKeys } from '../../src/media/node-registry.js';
import { startSimulator } from '../../src/media/simulator.js';
import { playHttpFlv, startMediaNodeProcess } from './helpers.js';

const prefix = `test-media-${randomBytes(6).toString('hex')}:`;
const redis = createClient({ url: 'redis://127.0.0.1:6379' });
await redis.connect();
t.teardown(async () => {
  const keys = registryKeys(prefix);
  const ids = await redis.sMembers(keys.nodes);
  await redis.del([keys.nodes, keys.placements, ...ids.map((id) => keys.node(id)), keys.node('node-a'), keys.node('node-b')]);
  await redis.quit();
});

const controlSecret = randomBytes(24).toString('hex');
const playSecret = randomBytes(24).toString('hex');
const registryEnv = (networks: string) => ({
  MEDIA_REDIS_URL: 'redis://127.0.0.1:6379',
  MEDIA_REDIS_PREFIX: prefix,
  MEDIA_NETWORKS: networks,
  MEDIA_MAX_FORWARDS: '10',
});
const [simulator, nodeA, nodeB] = await Promise.all([
  startSimulator({ cameras: 2, rtmpPort: await findFreePort() }),
  startMediaNodeProcess(t, { nodeId: 'node-a', controlSecret, playSecret, env: registryEnv('video,police') }),
  startMediaNodeProcess(t, { nodeId: 'node-b', controlSecret, playSecret, env: registryEnv('police') }),
]);
t.teardown(() => simulator.stop());

const media = await createNodesMediaControl({
  redis,
  prefix,
  controlSecret,
  playSecret,
  sourceTimeoutMs: 5000,
  logger: pino({ level: 'silent' }),
});
t.teardown(() => media.close());
const failures: Array<[string, number]> = [];
media.onForwardFailed((channelId, fence) => failures.push([channelId, fence]));

const VIDEO_CHANNEL = '44010600001320000021';
const POLICE_CHANNEL = '44010600001320500022';

t.test('registered nodes are listed with their networks', async (t) => {
  const nodes = await media.nodes();
  t.same(nodes.map((n) => [n.id, n.networks]).sort(), [
    ['node-a', ['video', 'police']],
    ['node-b', ['police']],
  ]);
  t.equal(await media.ready(), true);
});

t.test('a forward goes to a live node that reaches its network, then the least loaded one', async (t) => {
  const video = await media.startForward({ channelId: VIDEO_CHANNEL, network: 'video', sourceUrl: simulator.urls[0], fence: 1 });
  t.same(video, { nodeId: 'node-a', codec: 'h264' }, 'only node-a reaches the video network');
  const police = await media.startForward({ channelId: POLICE_CHANNEL, network: 'police', sourceUrl: simulator.urls[1], fence: 1 });
  t.same(police, { nodeId: 'node-b', codec: 'h264' }, 'node-b carries no forward yet');

  const urls = await media.playUrls({ sessionId: 's-1', channelId: VIDEO_CHANNEL, fence: 1, expiresAt: Date.now() + 60_000 });
  t.ok(urls.flv.startsWith(nodeA.playBaseUrl), 'play URL points at the node holding the forward');
  const player = await playHttpFlv(urls.flv);
  t.equal((await player.firstBytes).toString('latin1'), 'FLV');
  player.destroy();
});

t.test('no node reaches the network → MediaUnavailableError (issue 8, point 15: not a silent camera)', async (t) => {
  const outcome = await media
    .startForward({ channelId: '44010600001320800023', network: 'interconnect', sourceUrl: simulator.urls[0], fence: 1 })
    .catch((error: unknown) => error);
  t.ok(outcome instanceof MediaUnavailableError, 'rejected with a MediaUnavailableError (the broker answers 503)');
  t.notOk(outcome instanceof SourceUnavailableError, 'not blamed on the source');
});

t.test('a node that dies has its forwards reported failed', async (t) => {
  nodeB.child.kill('SIGKILL');
  const deadline = Date.now() + 20_000;
  while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.same(failures, [[POLICE_CHANNEL, 1]]);
  t.same((await media.nodes()).map((n) => n.id), ['node-a']);
  await media.stopForward(VIDEO_CHANNEL, 1);
  t.same(failures, [[POLICE_CHANNEL, 1]], 'a stopped forward is not a failure');
});

t.test('issue 9: a node whose MEDIA_MAX_PLAYERS_PER_SESSION differs from the broker’s is named in the log', async (t) => {
  const lines: Array<{ msg?: string; nodeId?: string; node?: number; broker?: number }> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  const other = await createNodesMediaControl({ redis, prefix, controlSecret, playSecret, sourceTimeoutMs: 5000, maxPlayersPerSession: 3, logger });
  await other.close();
  const warned = lines.filter((l) => l.msg?.includes('MEDIA_MAX_PLAYERS_PER_SESSION'));
  // node-b may be gone by now (an earlier test stops it); node-a is registered throughout.
  t.ok(warned.length >= 1, 'a warning per registered node');
  t.ok(warned.some((l) => l.nodeId === 'node-a'), 'node-a is named');
  t.ok(warned.every((l) => l.node === 2 && l.broker === 3), 'naming both limits');
  const matching: typeof lines = [];
  const quiet = await createNodesMediaControl({
    redis,
    prefix,
    controlSecret,
    playSecret,
    sourceTimeoutMs: 5000,
    maxPlayersPerSession: 2,
    logger: pino({ level: 'warn' }, { write: (line: string) => void matching.push(JSON.parse(line) as (typeof lines)[number]) }),
  });
  await quiet.close();
  t.equal(matching.filter((l) => l.msg?.includes('MEDIA_MAX_PLAYERS_PER_SESSION')).length, 0, 'nodes that match are not named');
});
