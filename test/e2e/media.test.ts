/**
 * The media plane end to end, through the broker: camera simulators (real RTMP publishers), the broker
 * with BROKER_MEDIA=embedded (it starts a media node child process), ffmpeg relays, and players that
 * read the play URLs the API hands out. What API.md promises about play URLs is checked on the wire:
 * a granted session plays real FLV; a bad, foreign or ended token plays nothing; ending a session cuts
 * its players; a dead or silent source frees its slot and says why.
 */
import t from 'tap';
import type { Test } from 'tap';
import { auth, buildTestBroker, until, type TestBroker, embeddedMediaEnv } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startSimulatorProcess, stopProcess } from '../media/helpers.js';
import { playHttpFlv, playWsFlv, settles, type FlvPlayer } from './flv-player.js';

/** Bounds every wait on the wire, so a broken media plane fails the test instead of hanging it. */
const WIRE_DEADLINE_MS = 15_000;

/** A play that is refused: no FLV byte ever reaches the player, and the connection ends. */
async function assertNoMedia(t: Test, player: FlvPlayer, what: string, status?: number) {
  if (status !== undefined) t.equal(player.status, status, `${what}: HTTP ${status}`);
  t.ok(await settles(player.closed, WIRE_DEADLINE_MS), `${what}: connection closed`);
  t.equal(player.flv.header, false, `${what}: no FLV header`);
  t.equal(player.flv.videoTags, 0, `${what}: no video`);
  player.stop();
}

/** A play that works: the FLV signature first, then video tags. */
async function assertPlays(t: Test, player: FlvPlayer, what: string) {
  t.ok(await settles(player.videoTags(5), WIRE_DEADLINE_MS), `${what}: media arrives in time`);
  t.equal(player.flv.header, true, `${what}: starts with 'FLV'`);
  t.equal(player.flv.malformed, false, `${what}: FLV framing parses`);
  t.ok(player.flv.videoTags >= 5, `${what}: video tags (${player.flv.videoTags})`);
}

const [cameras, dyingCamera] = await Promise.all([startSimulatorProcess(t, 3), startSimulatorProcess(t, 1)]);
const closedPort = await findFreePort();
const channels = {
  first: makeChannel(1, 1, 'video', { sourceUrl: cameras.urls[0] }),
  second: makeChannel(2, 1, 'video', { sourceUrl: cameras.urls[1] }),
  third: makeChannel(3, 1, 'video', { sourceUrl: cameras.urls[2] }),
  unreachable: makeChannel(4, 1, 'video', { sourceUrl: `rtmp://127.0.0.1:${closedPort}/x` }),
  dying: makeChannel(5, 1, 'video', { sourceUrl: dyingCamera.urls[0] }),
};

const tb: TestBroker = await buildTestBroker(t, {
  env: {
    ...(await embeddedMediaEnv()),
    BROKER_SOURCE_TIMEOUT_SECONDS: '2',
    BROKER_IDLE_CLOSE_SECONDS: '1',
  },
  start: true,
});
await tb.broker.catalog.seed(Object.values(channels));
const city = await tb.agency({ id: 'city-police' });

const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: auth(token), ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};
const open = async (channelId: string, token = city.operatorToken) => {
  const res = await api('POST', '/streams', token, { channelId, purpose: 'end-to-end media check' });
  if (res.status !== 201) throw new Error(`POST /streams ${channelId}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; urls: { flv: string; wsFlv: string } };
};
const capacity = async () => (await api('GET', '/capacity', tb.adminToken)).body as {
  forwarding: { used: number };
  mediaNodes: Array<{ forwards: number }>;
};

/** Channels of earlier tests linger for BROKER_IDLE_CLOSE_SECONDS; slot counts are compared from idle. */
const idle = async () => {
  const c = await capacity();
  return c.forwarding.used === 0 && c.mediaNodes[0]!.forwards === 0;
};

t.test('a granted stream plays real FLV over HTTP and over WebSocket', async (t) => {
  const session = await open(channels.first.id);
  const http = await playHttpFlv(session.urls.flv);
  const ws = playWsFlv(session.urls.wsFlv);
  t.teardown(() => {
    http.stop();
    ws.stop();
  });
  t.equal(http.status, 200, 'HTTP-FLV play answers 200');
  await assertPlays(t, http, 'HTTP-FLV');
  await assertPlays(t, ws, 'WebSocket-FLV');
  t.equal((await api('DELETE', `/streams/${session.id}`, city.operatorToken)).status, 204, 'session released');
});

t.test('a URL without a valid token, for another channel, or of an ended session gets no media', async (t) => {
  const mine = await open(channels.first.id);
  const onSecond = await open(channels.second.id);
  // Another viewer keeps the first channel forwarded, so refusals below are the token's doing.
  const colleague = await open(channels.first.id, city.adminToken);
  t.teardown(async () => {
    for (const id of [onSecond.id, colleague.id]) await api('DELETE', `/streams/${id}`, tb.adminToken);
  });

  const witness = await playHttpFlv(colleague.urls.flv);
  await assertPlays(t, witness, 'the colleague’s valid URL');
  witness.stop();

  const withToken = (url: string, token: string | null) => {
    const u = new URL(url);
    if (token === null) u.searchParams.delete('token');
    else u.searchParams.set('token', token);
    return u.toString();
  };
  const token = new URL(mine.urls.flv).searchParams.get('token')!;
  const tampered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
  const foreign = new URL(onSecond.urls.flv).searchParams.get('token')!;

  await assertNoMedia(t, await playHttpFlv(withToken(mine.urls.flv, null)), 'HTTP, no token', 401);
  await assertNoMedia(t, playWsFlv(withToken(mine.urls.wsFlv, null)), 'WS, no token');
  await assertNoMedia(t, await playHttpFlv(withToken(mine.urls.flv, tampered)), 'HTTP, tampered token', 403);
  await assertNoMedia(t, playWsFlv(withToken(mine.urls.wsFlv, tampered)), 'WS, tampered token');
  await assertNoMedia(t, await playHttpFlv(withToken(mine.urls.flv, foreign)), 'HTTP, token of another channel', 403);
  await assertNoMedia(t, playWsFlv(withToken(mine.urls.wsFlv, foreign)), 'WS, token of another channel');

  t.equal((await api('DELETE', `/streams/${mine.id}`, city.operatorToken)).status, 204, 'my session ended');
  await assertNoMedia(t, await playHttpFlv(mine.urls.flv), 'HTTP, ended session', 403);
  await assertNoMedia(t, playWsFlv(mine.urls.wsFlv), 'WS, ended session');
});

t.test('ending a session cuts its connected players', async (t) => {
  const session = await open(channels.first.id);
  const http = await playHttpFlv(session.urls.flv);
  const ws = playWsFlv(session.urls.wsFlv);
  t.teardown(() => {
    http.stop();
    ws.stop();
  });
  await assertPlays(t, http, 'HTTP-FLV before the end');
  await assertPlays(t, ws, 'WebSocket-FLV before the end');

  const endedAt = Date.now();
  t.equal((await api('DELETE', `/streams/${session.id}`, city.operatorToken)).status, 204, 'DELETE /streams/:id → 204');
  t.ok(await settles(Promise.all([http.closed, ws.closed]), WIRE_DEADLINE_MS), 'both players disconnected');
  t.comment(`players cut ${Date.now() - endedAt} ms after DELETE was sent`);
  const tagsAtEnd = http.flv.videoTags;
  await new Promise((r) => setTimeout(r, 500));
  t.equal(http.flv.videoTags, tagsAtEnd, 'nothing arrives after the cut');
});

t.test('an unreachable source: 504 SOURCE_UNAVAILABLE, no slot kept, the denial audited', async (t) => {
  await until(t, 'an idle media plane', idle, WIRE_DEADLINE_MS);
  const res = await api('POST', '/streams', city.operatorToken, { channelId: channels.unreachable.id, purpose: 'end-to-end media check' });
  t.equal(res.status, 504, 'HTTP 504');
  t.equal(res.body.error.code, 'SOURCE_UNAVAILABLE', 'error code SOURCE_UNAVAILABLE');
  t.equal((await capacity()).forwarding.used, 0, 'forwarding.used unchanged');
  t.same((await api('GET', '/streams?scope=mine', city.operatorToken)).body.items.filter((s: { channelId: string }) => s.channelId === channels.unreachable.id), [], 'no session left');
  const audit = await api('GET', `/audit?action=stream.deny&channelId=${channels.unreachable.id}`, tb.adminToken);
  t.equal(audit.body.items.length, 1, 'one denial recorded');
  t.match(audit.body.items[0], { outcome: 'error', reason: 'source-unavailable', purpose: 'end-to-end media check' });
});

t.test('idle close frees the slot and stops the forward on the media node', async (t) => {
  await until(t, 'an idle media plane', idle, WIRE_DEADLINE_MS);
  const session = await open(channels.third.id);
  await until(t, 'the media node reporting the forward', async () => (await capacity()).mediaNodes[0]!.forwards === 1, WIRE_DEADLINE_MS);
  t.equal((await capacity()).forwarding.used, 1, 'the channel holds one forwarding slot');
  t.equal((await api('DELETE', `/streams/${session.id}`, city.operatorToken)).status, 204, 'the last session ends');
  await until(t, 'the slot freed and the forward gone from /load', idle, WIRE_DEADLINE_MS);
  t.ok(await idle(), 'forwarding.used back to 0, media node /load lists no forward');
});

t.test('a source that dies mid-stream ends its sessions with reason source-failed', async (t) => {
  const operatorSession = await open(channels.dying.id);
  const adminSession = await open(channels.dying.id, city.adminToken);
  const player = await playHttpFlv(operatorSession.urls.flv);
  t.teardown(() => player.stop());
  await assertPlays(t, player, 'before the camera dies');

  await stopProcess(dyingCamera.child);
  const gone = async (id: string) => (await api('GET', `/streams/${id}`, tb.adminToken)).status === 404;
  // The node retries the relay a few times with backoff before it gives up and reports the failure.
  await until(t, 'both sessions ended', async () => (await gone(operatorSession.id)) && (await gone(adminSession.id)), 30_000);
  t.equal((await api('GET', `/streams/${operatorSession.id}`, city.operatorToken)).status, 404, 'GET /streams/:id → 404');
  t.ok(await settles(player.closed, WIRE_DEADLINE_MS), 'the player was cut');

  const sourceFailed = async () =>
    (await api('GET', `/audit?action=stream.source-failed&channelId=${channels.dying.id}`, tb.adminToken)).body.items;
  // The sessions leave the store first; their audit entries follow one by one.
  await until(t, 'both ends audited', async () => (await sourceFailed()).length >= 2, WIRE_DEADLINE_MS);
  t.same(
    (await sourceFailed()).map((e: { target: string; reason: string }) => [e.target, e.reason]).sort(),
    [`session:${operatorSession.id}`, `session:${adminSession.id}`].sort().map((target) => [target, 'source-failed']),
    'each session’s end audited as stream.source-failed',
  );
  await until(t, 'the slot freed', async () => (await capacity()).forwarding.used === 0, WIRE_DEADLINE_MS);
});
