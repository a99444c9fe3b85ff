import t from 'tap';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { SourceUnavailableError, type MediaPlayerEvents } from '../../src/core/ports.js';
import { createEmbeddedMediaControl } from '../../src/media/media-control-embedded.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startSimulator } from '../../src/media/simulator.js';
import { playHttpFlv, playWsFlv } from './helpers.js';
import { until } from '../helper.js';

const CHANNEL = '44010600001320000011';

const simulator = await startSimulator({ cameras: 1, rtmpPort: await findFreePort() });
t.teardown(() => simulator.stop());

const playSecret = randomBytes(24).toString('hex');
const media = await createEmbeddedMediaControl({
  rtmpPort: await findFreePort(),
  httpPort: await findFreePort(),
  sourceTimeoutMs: 5000,
  playSecret,
  maxForwards: 10,
  logger: pino({ level: 'silent' }),
  restartDelaysMs: [200],
});
t.teardown(() => media.close());

const failures: Array<[string, number]> = [];
media.onForwardFailed((channelId, fence) => failures.push([channelId, fence]));
const playerReports: MediaPlayerEvents[] = [];
media.onPlayerEvents((report) => playerReports.push(report));
const playerEvents = () => playerReports.flatMap((r) => r.events);

const grant = (sessionId: string, fence: number) => ({ sessionId, channelId: CHANNEL, fence, expiresAt: Date.now() + 60_000 });

t.test('the embedded node is ready and reports itself', async (t) => {
  t.equal(await media.ready(), true);
  const [node] = await media.nodes();
  t.match(node, { id: 'embedded', maxForwards: 10, alive: true });
});

t.test('startForward resolves once media flows; play URLs play over HTTP-FLV and WS-FLV', async (t) => {
  const started = Date.now();
  t.same(await media.startForward({ channelId: CHANNEL, network: 'video', sourceUrl: simulator.urls[0], fence: 1 }), {
    nodeId: 'embedded',
    codec: 'h264',
  });
  const urls = await media.playUrls(grant('s-1', 1));
  t.match(urls.flv, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/live/${CHANNEL}\\.flv\\?token=`));
  t.match(urls.wsFlv, /^ws:\/\//);
  const http = await playHttpFlv(urls.flv);
  t.equal((await http.firstBytes).toString('latin1'), 'FLV');
  t.comment(`startForward → first FLV byte through the embedded node: ${Date.now() - started} ms`);
  const ws = playWsFlv(urls.wsFlv);
  t.equal((await ws.firstMessage).subarray(0, 3).toString('latin1'), 'FLV');

  await media.disconnectSession('s-1', CHANNEL);
  await http.closed;
  await ws.closed;
  const replay = await playHttpFlv(urls.flv);
  t.equal(replay.status, 403, 'an ended session’s URL no longer plays');
  await until(t, 'the players reported', () => playerEvents().filter((e) => e.sessionId === 's-1' && e.kind === 'end').length === 2);
  t.same(
    playerEvents().filter((e) => e.sessionId === 's-1' && e.kind !== 'refused').map((e) => e.kind).sort(),
    ['end', 'end', 'start', 'start'],
    'issue 9: each player’s start and end reach the broker once',
  );
  await until(t, 'the refused replay reported', () => playerEvents().some((e) => e.sessionId === 's-1' && e.kind === 'refused'));
});

t.test('an unreachable source rejects with SourceUnavailableError', async (t) => {
  const closedPort = await findFreePort();
  await t.rejects(
    media.startForward({ channelId: '44010600001320000012', network: 'video', sourceUrl: `rtmp://127.0.0.1:${closedPort}/a/b`, fence: 1 }),
    SourceUnavailableError,
  );
});

t.test('a media node that dies is restarted and its forwards are reported failed', async (t) => {
  const pid = media.nodePid();
  t.ok(pid);
  process.kill(pid!, 'SIGKILL');
  await until(t, 'the failure report', () => failures.length > 0, 20_000);
  t.same(failures, [[CHANNEL, 1]]);
  t.ok(playerReports.some((r) => r.nodeLost === true), 'issue 9: a lost node is reported, for the audit to note its lost player events');
  await until(t, 'the restarted node', async () => media.nodePid() !== pid && (await media.ready()), 20_000);

  await media.startForward({ channelId: CHANNEL, network: 'video', sourceUrl: simulator.urls[0], fence: 2 });
  const http = await playHttpFlv((await media.playUrls(grant('s-2', 2))).flv);
  t.equal((await http.firstBytes).toString('latin1'), 'FLV', 'the restarted node relays again');
  http.destroy();
  await media.stopForward(CHANNEL, 2);
  t.same(failures, [[CHANNEL, 1]], 'a stopped forward is not a failure');
});
