/**
 * Issue 9, points 1 and 2: players are people. Through the broker with a real media node child
 * (BROKER_MEDIA=embedded), a simulator camera, ffmpeg relays and real HTTP-FLV / WS-FLV players:
 * a session's URLs admit BROKER_MAX_PLAYERS_PER_SESSION (2) players at once, one more is refused (403 /
 * a closed WebSocket) and audited play.refused with its address; a freed place admits again; every
 * admitted player is audited play.start / play.end with address, user agent, bytes and seconds;
 * GET /streams/:id lists the players; an admin cuts one without ending the session; and the usage
 * report's viewingMinutes is the time the players were connected.
 */
import t from 'tap';
import type { Test } from 'tap';
import { auth, buildTestBroker, until, type TestBroker, embeddedMediaEnv } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv, playWsFlv, settles, type FlvPlayer } from '../e2e/flv-player.js';

const WIRE_DEADLINE_MS = 15_000;

async function assertPlays(t: Test, player: FlvPlayer, what: string, tags = 5) {
  t.ok(await settles(player.videoTags(tags), WIRE_DEADLINE_MS), `${what}: media arrives in time`);
  t.ok(player.flv.videoTags >= tags && !player.flv.malformed, `${what}: video tags (${player.flv.videoTags})`);
}

async function assertNoMedia(t: Test, player: FlvPlayer, what: string, status?: number) {
  if (status !== undefined) t.equal(player.status, status, `${what}: HTTP ${status}`);
  t.ok(await settles(player.closed, WIRE_DEADLINE_MS), `${what}: connection closed`);
  t.equal(player.flv.header, false, `${what}: no FLV byte`);
  player.stop();
}

/** A player with the wall-clock span the test saw it connected (from asking to its close). */
interface Watched {
  player: FlvPlayer;
  ua: string;
  askedAt: number;
  closedAt?: number;
}
const watch = async (url: string, ua: string, ws = false): Promise<Watched> => {
  const askedAt = Date.now();
  const player = ws ? playWsFlv(url, { 'user-agent': ua }) : await playHttpFlv(url, { 'user-agent': ua });
  const watched: Watched = { player, ua, askedAt };
  void player.closed.then(() => (watched.closedAt = Date.now()));
  return watched;
};

const camera = await startSimulatorProcess(t, 1);
const channel = makeChannel(1, 1, 'video', { sourceUrl: camera.urls[0] });
const tb: TestBroker = await buildTestBroker(t, {
  env: {
    ...(await embeddedMediaEnv()),
    BROKER_SOURCE_TIMEOUT_SECONDS: '4',
    BROKER_IDLE_CLOSE_SECONDS: '1',
  },
  start: true,
});
await tb.broker.catalog.seed([channel]);
const city = await tb.agency({ id: 'city-watch' });

type Entry = { action: string; outcome: string; reason?: string; actor: { id: string; agencyId: string }; details?: Record<string, string | number | boolean | null> };
const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: auth(token), ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};
const playEntries = async (sessionId: string, action: string): Promise<Entry[]> => {
  const res = await api('GET', `/audit?action=${action}&limit=200`, tb.adminToken);
  return (res.body.items as Entry[]).filter((e) => e.details?.sessionId === sessionId);
};

/** What the players of point 1 watched: the audited seconds and the test's own clock. */
const watchedTotals = { audited: 0, measured: 0, done: false };

t.test('point 1: two players at once, the third refused and audited, a freed place admits again; an admin cuts one', async (t) => {
  t.equal(tb.config.maxPlayersPerSession, 2, 'default BROKER_MAX_PLAYERS_PER_SESSION is 2');
  const opened = await api('POST', '/streams', city.operatorToken, { channelId: channel.id, purpose: 'players are people' });
  t.equal(opened.status, 201, 'session granted');
  const session = opened.body as { id: string; urls: { flv: string; wsFlv: string } };
  const watched: Watched[] = [];
  t.teardown(() => {
    for (const w of watched) w.player.stop();
  });

  const one = await watch(session.urls.flv, 'viewer-one/1.0');
  const two = await watch(session.urls.wsFlv, 'viewer-two/2.0', true);
  watched.push(one, two);
  t.equal(one.player.status, 200, 'first player (HTTP-FLV) answers 200');
  await assertPlays(t, one.player, 'first player');
  await assertPlays(t, two.player, 'second player (WS-FLV)');

  await assertNoMedia(t, (await watch(session.urls.flv, 'viewer-three/3.0')).player, 'third player over HTTP-FLV', 403);
  await assertNoMedia(t, (await watch(session.urls.wsFlv, 'viewer-three/3.0', true)).player, 'third player over WS-FLV');
  t.ok(!one.player.isClosed() && !two.player.isClosed(), 'the refusals leave the two players on');

  await until(t, 'two play.refused entries', async () => (await playEntries(session.id, 'play.refused')).length >= 1);
  const [refused] = await playEntries(session.id, 'play.refused');
  t.equal(refused!.outcome, 'denied');
  t.equal(refused!.reason, 'too-many-players');
  t.equal(refused!.details?.address, '127.0.0.1', 'the refused player’s address');
  t.equal(refused!.details?.userAgent, 'viewer-three/3.0');
  t.equal(refused!.details?.agencyId, 'city-watch', 'refusal on record under the session’s agency');

  await until(t, 'two play.start entries', async () => (await playEntries(session.id, 'play.start')).length === 2);
  const starts = await playEntries(session.id, 'play.start');
  t.same(starts.map((e) => e.details?.userAgent).sort(), ['viewer-one/1.0', 'viewer-two/2.0'], 'each start names its user agent');
  for (const start of starts) {
    t.equal(start.details?.address, '127.0.0.1', 'start: address');
    t.equal(start.details?.userId, city.operatorId, 'start: the session’s user');
    t.equal(start.details?.agencyId, 'city-watch', 'start: the session’s agency');
    t.equal(start.details?.channelId, channel.id, 'start: channel');
    t.equal(start.actor.id, city.operatorId, 'start: the session’s user answers for its players');
  }
  const ownView = await api('GET', '/audit?action=play.*&limit=50', city.operatorToken);
  t.ok(
    (ownView.body.items as Entry[]).filter((e) => e.details?.sessionId === session.id && e.action === 'play.start').length === 2,
    'the operator sees its players in its own audit view',
  );

  const listed = await api('GET', `/streams/${session.id}`, city.operatorToken);
  t.equal(listed.status, 200);
  const players = listed.body.players as Array<{ id: string; address: string; protocol: string; since: string; bytes: number; userAgent: string }>;
  t.equal(players.length, 2, 'GET /streams/:id lists the two players');
  t.same(players.map((p) => p.protocol).sort(), ['http-flv', 'ws-flv']);
  for (const p of players) {
    t.equal(p.address, '127.0.0.1');
    t.ok(p.bytes > 0, `player ${p.id} has been sent bytes (${p.bytes})`);
    t.ok(!Number.isNaN(Date.parse(p.since)), 'since is a time');
  }
  const first = players.find((p) => p.userAgent === 'viewer-one/1.0')!;

  t.equal((await api('DELETE', `/streams/${session.id}/players/${first.id}`, city.operatorToken)).status, 403, 'an operator may not cut players');
  t.equal((await api('DELETE', `/streams/${session.id}/players/nosuchplayer`, city.adminToken)).status, 404, 'an unknown player is a 404');
  t.equal((await api('DELETE', `/streams/${session.id}/players/bad!id`, city.adminToken)).status, 400, 'a malformed player id is a 400');
  t.equal((await api('DELETE', `/streams/${session.id}/players/${first.id}`, city.adminToken)).status, 204, 'the agency admin cuts the first player');
  t.ok(await settles(one.player.closed, WIRE_DEADLINE_MS), 'the cut player’s connection closes');
  const before = two.player.flv.videoTags;
  await assertPlays(t, two.player, 'the other player goes on', before + 5);
  t.equal((await api('GET', `/streams/${session.id}`, city.operatorToken)).status, 200, 'the session lives');

  // The cut freed a place: a new player is admitted.
  const four = await watch(session.urls.flv, 'viewer-four/4.0');
  watched.push(four);
  t.equal(four.player.status, 200, 'a freed place admits again');
  await assertPlays(t, four.player, 'fourth player');

  // Watch a little, then leave: the second player stops, the fourth is cut by the session's end.
  await until(t, 'the second player watched for 2 s', () => Date.now() - two.askedAt >= 2000);
  two.player.stop();
  await settles(two.player.closed, WIRE_DEADLINE_MS);
  t.equal((await api('DELETE', `/streams/${session.id}`, city.operatorToken)).status, 204, 'session released');
  t.ok(await settles(four.player.closed, WIRE_DEADLINE_MS), 'ending the session cuts the fourth player');

  await until(t, 'three play.end entries', async () => (await playEntries(session.id, 'play.end')).length === 3);
  const ends = await playEntries(session.id, 'play.end');
  let audited = 0;
  let measured = 0;
  for (const w of [one, two, four]) {
    const end = ends.find((e) => e.details?.userAgent === w.ua)!;
    t.ok(end, `${w.ua}: play.end on record`);
    t.equal(end.details?.address, '127.0.0.1', `${w.ua}: address`);
    t.equal(end.details?.userId, city.operatorId, `${w.ua}: the session’s user (also after the session ended)`);
    t.equal(end.details?.agencyId, 'city-watch', `${w.ua}: agency`);
    t.ok(typeof end.details?.bytes === 'number' && end.details.bytes > 0, `${w.ua}: bytes (${end.details?.bytes})`);
    const seconds = end.details?.seconds as number;
    const span = ((w.closedAt ?? Date.now()) - w.askedAt) / 1000;
    // The node counts from the play's admission to its close; the test from asking to seeing the close.
    t.ok(seconds > 0 && seconds <= span + 0.5 && seconds >= span - 1.5, `${w.ua}: ${seconds} s audited, ${span.toFixed(1)} s watched`);
    audited += seconds;
    measured += span;
  }
  Object.assign(watchedTotals, { audited, measured, done: true });
});

t.test("point 2: the usage report's viewingMinutes is the time the players were connected", async (t) => {
  t.ok(watchedTotals.done, 'point 1 ran its players');
  const { audited, measured } = watchedTotals;
  const month = new Date().toISOString().slice(0, 7);
  const report = (await api('GET', `/reports/usage?month=${month}`, city.adminToken)).body as {
    agencies: Array<{ agencyId: string; viewingMinutes: number; sessions: number }>;
    users: Array<{ userId: string; agencyId: string; sessions: number; viewingMinutes: number; channels: Array<{ channelId: string; viewingMinutes: number }> }>;
  };
  const row = report.agencies.find((a) => a.agencyId === 'city-watch')!;
  t.equal(row.viewingMinutes, Math.round((audited * 1000) / 6000) / 10, `viewingMinutes is the audited ${audited.toFixed(1)} s`);
  t.ok(Math.abs(row.viewingMinutes - measured / 60) <= 0.1 + 0.05, `viewingMinutes ${row.viewingMinutes} ≈ watched ${(measured / 60).toFixed(2)} min`);
  const user = report.users.find((u) => u.userId === city.operatorId)!;
  t.ok(user, 'a per-user row for the operator');
  t.equal(user.agencyId, 'city-watch');
  t.equal(user.sessions, 1);
  t.equal(user.viewingMinutes, row.viewingMinutes);
  t.same(user.channels.map((c) => c.channelId), [channel.id], 'the channel it watched');
});
