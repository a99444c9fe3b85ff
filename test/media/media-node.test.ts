import t from 'tap';
import { spawn } from 'node:child_process';
import { ffmpegPath } from '../../src/media/ffmpeg.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { signPlayToken } from '../../src/media/play-token.js';
import { playHttpFlv, playWsFlv, startMediaNodeProcess, startSimulatorProcess, stopProcess } from './helpers.js';

const CHANNEL = '44010600001320000001';
const OTHER_CHANNEL = '44010600001320000002';

const node = await startMediaNodeProcess(t, { sourceTimeoutMs: 6000 });
const simulator = await startSimulatorProcess(t, 2);

function token(sessionId: string, channelId = CHANNEL, fence = 1, expiresAt = Date.now() + 60_000): string {
  return signPlayToken({ sessionId, channelId, nodeId: 'test-node', fence, expiresAt }, node.playSecret);
}
const flvUrl = (channelId: string, tok?: string) =>
  `${node.playBaseUrl}/live/${channelId}.flv${tok === undefined ? '' : `?token=${encodeURIComponent(tok)}`}`;
const wsUrl = (channelId: string, tok?: string) =>
  `${node.wsBaseUrl}/live/${channelId}.flv${tok === undefined ? '' : `?token=${encodeURIComponent(tok)}`}`;

t.test('control API wants the bearer secret', async (t) => {
  const res = await fetch(`${node.controlUrl}/load`, { headers: { authorization: 'Bearer wrong' } });
  t.equal(res.status, 401);
  const health = await fetch(`${node.controlUrl}/healthz`);
  t.equal(health.status, 200);
});

t.test('a forward from a simulated camera starts and a valid token gets FLV over HTTP and WebSocket', async (t) => {
  const started = Date.now();
  const res = await node.control('POST', '/forwards', { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: 1 });
  t.equal(res.status, 200, 'answers once media flows');
  const http = await playHttpFlv(flvUrl(CHANNEL, token('s-http')));
  t.equal(http.status, 200);
  t.equal((await http.firstBytes).toString('latin1'), 'FLV');
  t.comment(`POST /forwards → first FLV byte: ${Date.now() - started} ms`);
  http.destroy();

  const ws = playWsFlv(wsUrl(CHANNEL, token('s-ws')));
  t.equal((await ws.firstMessage).subarray(0, 3).toString('latin1'), 'FLV');
  ws.close();

  const again = await node.control('POST', '/forwards', { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: 1 });
  t.equal(again.status, 200, 'idempotent for the same fence');
  const load = await node.control('GET', '/load');
  t.match(load.body, { id: 'test-node', forwards: 1, forwardsList: [{ channelId: CHANNEL, fence: 1, state: 'live' }] });
});

t.test('plays without a valid token get no FLV byte', async (t) => {
  const expired = token('s-old', CHANNEL, 1, Date.now() - 1);
  const valid = token('s-tamper');
  const tampered = `${valid.split('.')[0]}x.${valid.split('.')[1]}`;
  const cases: Array<[string, string | undefined, number]> = [
    ['no token', undefined, 401],
    ['garbage', 'not-a-token', 403],
    ['tampered', tampered, 403],
    ['expired', expired, 403],
    ['token for another channel', token('s-other', OTHER_CHANNEL), 403],
    ['stale fence', token('s-stale', CHANNEL, 0), 403],
  ];
  for (const [name, tok, status] of cases) {
    const http = await playHttpFlv(flvUrl(CHANNEL, tok));
    t.equal(http.status, status, `HTTP ${name}`);
    t.not((await http.firstBytes).toString('latin1'), 'FLV', `HTTP ${name}: no FLV`);
    const ws = playWsFlv(wsUrl(CHANNEL, tok));
    t.equal((await ws.firstMessage).length, 0, `WS ${name}: closed without a message`);
    await ws.closed;
  }
});

t.test('an ended session loses its players and its token', async (t) => {
  const tok = token('s-end');
  const http = await playHttpFlv(flvUrl(CHANNEL, tok));
  t.equal((await http.firstBytes).toString('latin1'), 'FLV');
  const ws = playWsFlv(wsUrl(CHANNEL, tok));
  t.equal((await ws.firstMessage).subarray(0, 3).toString('latin1'), 'FLV');

  const res = await node.control('POST', '/sessions/s-end/end', {});
  t.same(res.body, { disconnected: 2 });
  await http.closed;
  t.equal(await ws.closed, 1008);

  const retry = await playHttpFlv(flvUrl(CHANNEL, tok));
  t.equal(retry.status, 403, 'the same token no longer plays');
  t.not((await retry.firstBytes).toString('latin1'), 'FLV');
});

t.test('disconnect cuts a connected player but its token still works', async (t) => {
  const tok = token('s-cut');
  const http = await playHttpFlv(flvUrl(CHANNEL, tok));
  t.equal((await http.firstBytes).toString('latin1'), 'FLV');
  const res = await node.control('POST', '/sessions/s-cut/disconnect', { channelId: CHANNEL });
  t.same(res.body, { disconnected: 1 });
  await http.closed;
  const again = await playHttpFlv(flvUrl(CHANNEL, tok));
  t.equal(again.status, 200);
  again.destroy();
});

t.test('a publish that is not the node’s own relay is refused', async (t) => {
  const pusher = spawn(ffmpegPath, ['-loglevel', 'error', '-i', simulator.urls[1], '-c', 'copy', '-f', 'flv', `rtmp://127.0.0.1:${node.rtmpPort}/live/${OTHER_CHANNEL}`]);
  t.teardown(() => stopProcess(pusher));
  const code = await new Promise<number | null>((resolve) => pusher.once('exit', resolve));
  t.not(code, 0, 'ffmpeg could not publish');
  const load = await node.control('GET', '/load');
  t.notOk(load.body.forwardsList.some((f: { channelId: string }) => f.channelId === OTHER_CHANNEL));
});

t.test('stale fences are refused; the current one stops the forward and its players', async (t) => {
  const newer = await node.control('POST', '/forwards', { channelId: CHANNEL, sourceUrl: simulator.urls[1], fence: 3 });
  t.equal(newer.status, 200, 'a newer fence replaces the forward');
  const stale = await node.control('POST', '/forwards', { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: 2 });
  t.equal(stale.status, 409);
  t.equal(stale.body.error, 'STALE_FENCE');
  const oldToken = await playHttpFlv(flvUrl(CHANNEL, token('s-fence1', CHANNEL, 1)));
  t.equal(oldToken.status, 403, 'tokens of the replaced forward no longer play');

  const player = await playHttpFlv(flvUrl(CHANNEL, token('s-fence3', CHANNEL, 3)));
  t.equal((await player.firstBytes).toString('latin1'), 'FLV');
  t.equal((await node.control('DELETE', `/forwards/${CHANNEL}?fence=2`)).status, 409);
  const stop = await node.control('DELETE', `/forwards/${CHANNEL}?fence=3`);
  t.same(stop.body, { result: 'stopped' });
  await player.closed;
  t.equal((await node.control('GET', '/load')).body.forwards, 0);
});

t.test('an unreachable source answers 504 within the timeout and leaves no forward', async (t) => {
  const closedPort = await findFreePort();
  const res = await node.control('POST', '/forwards', {
    channelId: OTHER_CHANNEL,
    sourceUrl: `rtmp://127.0.0.1:${closedPort}/x/y`,
    fence: 1,
  });
  t.equal(res.status, 504);
  t.same(res.body, { error: 'SOURCE_UNAVAILABLE' });
  t.equal((await node.control('GET', '/load')).body.forwards, 0);
});

t.test('bad control requests are 400', async (t) => {
  const cases = [
    { channelId: 'bad/id', sourceUrl: simulator.urls[0], fence: 1 },
    { channelId: CHANNEL, sourceUrl: 'file:///etc/passwd', fence: 1 },
    { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: -1 },
    { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: 1, extra: true },
  ];
  for (const body of cases) t.equal((await node.control('POST', '/forwards', body)).status, 400, JSON.stringify(body));
});

t.test('a source that drops is retried, then the forward is reported failed and its players cut', async (t) => {
  const flaky = await startSimulatorProcess(t, 1);
  const channelId = '44010600001320000009';
  t.equal((await node.control('POST', '/forwards', { channelId, sourceUrl: flaky.urls[0], fence: 5 })).status, 200);
  const player = await playHttpFlv(flvUrl(channelId, token('s-flaky', channelId, 5)));
  t.equal((await player.firstBytes).toString('latin1'), 'FLV');

  await stopProcess(flaky.child);
  await player.closed;
  const load = (await node.control('GET', '/load')).body;
  t.match(load.failed, [{ channelId, fence: 5, reason: 'source-lost' }]);
  t.notOk(load.forwardsList.some((f: { channelId: string }) => f.channelId === channelId));
});
