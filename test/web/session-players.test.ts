/**
 * Issue 9, item 1: an agency admin sees its agency's current players in the console's sessions view
 * and cuts one without ending the session. A real broker with its own media node child, a simulated
 * camera, real HTTP-FLV / WS-FLV players, Debian Chromium: the admin cuts one player on the page, that
 * player's connection ends and a play.end is audited, the other player and the session go on. The
 * list comes from GET /streams?scope=agency&players=true, which the server scopes like every session
 * list: another agency's admin or operator does not see (or cut) these players, a stranger gets 401,
 * an unknown or already-gone player is a 404. Screens land in test-output/screens/.
 * @see ../../../shared/API.md "Streams"
 */
import t from 'tap';
import { openBrowser, screenshot, signIn } from './browser.js';
import { auth, buildTestBroker, embeddedMediaEnv, until } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv, playWsFlv, settles } from '../e2e/flv-player.js';

const AGENCY = 'ui-players';
const PASSWORDS = { admin: 'players-admin-0123', operator: 'players-operator-0123' };
const WIRE_DEADLINE_MS = 15_000;

interface ListedPlayer {
  id: string;
  address: string;
  protocol: string;
  since: string;
  bytes: number;
  userAgent: string;
}
interface Listed {
  id: string;
  agencyId: string;
  players?: ListedPlayer[];
}
type Entry = { action: string; outcome: string; reason?: string; details?: Record<string, string | number | boolean | null> };

const camera = await startSimulatorProcess(t, 1);
const channel = makeChannel(1, 1, 'video', { sourceUrl: camera.urls[0] });
const tb = await buildTestBroker(t, { env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '8' }, start: true });
await tb.broker.catalog.seed([channel]);

/** Setup steps fail the file with their reason (top-level asserts would end tap's root test early). */
function must(condition: boolean, what: string): void {
  if (!condition) throw new Error(`setup failed: ${what}`);
}

const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, token?: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: token ? auth(token) : {}, ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};

// The agency whose admin uses the page, with known passwords; another agency with tokens only.
must((await api('POST', '/agencies', tb.adminToken, { id: AGENCY, name: '播放器测试局', networks: ['video'], classes: [1, 2, 3], quotas: { forwarding: 5, analytics: 1 } })).status === 201, 'agency created');
const ids: Record<string, string> = {};
for (const role of ['admin', 'operator'] as const) {
  const created = await api('POST', `/agencies/${AGENCY}/users`, tb.adminToken, { username: `players.${role}`, password: PASSWORDS[role], role });
  must(created.status === 201, `${role} created`);
  ids[role] = created.body.id;
}
const operatorToken = await tb.login('players.operator', PASSWORDS.operator);
const adminToken = await tb.login('players.admin', PASSWORDS.admin);
const other = await tb.agency({ id: 'ui-other' });

await tb.app.listen({ port: 0, host: '127.0.0.1' });
const address = tb.app.server.address();
if (!address || typeof address === 'string') throw new Error('no listening address');
const base = `http://127.0.0.1:${address.port}`;

const opened = await api('POST', '/streams', operatorToken, { channelId: channel.id, purpose: 'players in the console' });
must(opened.status === 201, `the operator’s session is granted (${JSON.stringify(opened.body)})`);
const session = opened.body as { id: string; urls: { flv: string; wsFlv: string } };

const toCut = await playHttpFlv(session.urls.flv, { 'user-agent': 'viewer-to-cut/1.0' });
const stays = playWsFlv(session.urls.wsFlv, { 'user-agent': 'viewer-stays/2.0' });
t.teardown(() => {
  toCut.stop();
  stays.stop();
});
must(toCut.status === 200, 'HTTP-FLV player admitted');
must(await settles(toCut.videoTags(3), WIRE_DEADLINE_MS), 'the HTTP-FLV player receives video');
must(await settles(stays.videoTags(3), WIRE_DEADLINE_MS), 'the WS-FLV player receives video');

const listFor = async (token: string, scope: string) => api('GET', `/streams?scope=${scope}&players=true`, token);
const playersIn = (items: Listed[]) => items.find((s) => s.id === session.id)?.players ?? [];

t.test('the list with players is scoped on the server', async (t) => {
  const agencyList = await listFor(adminToken, 'agency');
  t.equal(agencyList.status, 200);
  const listed = playersIn(agencyList.body.items);
  t.equal(listed.length, 2, "the agency admin's list carries the session's two players");
  t.same(listed.map((p) => p.userAgent).sort(), ['viewer-stays/2.0', 'viewer-to-cut/1.0']);
  for (const p of listed) {
    t.equal(p.address, '127.0.0.1', 'address as the media node sees it');
    t.ok(p.bytes > 0 && !Number.isNaN(Date.parse(p.since)), `bytes (${p.bytes}) and since`);
  }
  t.equal((await api('GET', '/streams?scope=agency', adminToken)).body.items[0].players, undefined, 'without players=true the list is as before');
  t.equal(playersIn((await listFor(tb.adminToken, 'all')).body.items).length, 2, 'the platform admin sees them in the city-wide list');
  t.equal(playersIn((await listFor(operatorToken, 'mine')).body.items).length, 2, 'the operator sees the players of its own session');

  const otherAdmin = await listFor(other.adminToken, 'agency');
  t.equal(otherAdmin.status, 200);
  t.same(otherAdmin.body.items, [], "another agency's admin lists none of them");
  for (const [who, token, scope] of [
    ["another agency's admin, city-wide", other.adminToken, 'all'],
    ["another agency's operator", other.operatorToken, 'agency'],
    ['the operator, agency-wide', operatorToken, 'agency'],
  ] as const) {
    const res = await listFor(token, scope);
    t.equal(res.status, 403, `${who}: 403`);
    t.equal(res.body.error.code, 'FORBIDDEN', `${who}: FORBIDDEN`);
  }
  const stranger = await listFor('', 'agency');
  t.equal(stranger.status, 401, 'a stranger: 401');
  t.equal(stranger.body.error.code, 'UNAUTHENTICATED');
  const bad = await api('GET', '/streams?scope=agency&players=perhaps', adminToken);
  t.equal(bad.status, 400, 'players must be a boolean');
  t.equal(bad.body.error.code, 'BAD_REQUEST');
  t.equal((await api('GET', `/streams/${session.id}`, other.adminToken)).status, 404, "another agency's admin cannot read the session either");

  const victim = listed.find((p) => p.userAgent === 'viewer-to-cut/1.0')!;
  for (const [who, token, status, code] of [
    ["another agency's admin", other.adminToken, 404, 'NOT_FOUND'],
    ["another agency's operator", other.operatorToken, 403, 'FORBIDDEN'],
    ["the session's own operator", operatorToken, 403, 'FORBIDDEN'],
    ['a stranger', undefined, 401, 'UNAUTHENTICATED'],
  ] as const) {
    const res = await api('DELETE', `/streams/${session.id}/players/${victim.id}`, token);
    t.equal(res.status, status, `${who} cutting a player: ${status}`);
    t.equal(res.body.error.code, code, `${who}: ${code}`);
  }
  const unknown = await api('DELETE', `/streams/${session.id}/players/nosuchplayer0`, adminToken);
  t.equal(unknown.status, 404, 'an unknown player id: 404');
  t.equal(unknown.body.error.code, 'NOT_FOUND');
  t.equal((await api('DELETE', `/streams/s-nosuchsession/players/${victim.id}`, adminToken)).status, 404, 'an unknown session: 404');
  t.notOk(toCut.isClosed() || stays.isClosed(), 'none of the refused cuts touched a player');
  t.equal(playersIn((await listFor(adminToken, 'agency')).body.items).length, 2, 'both players still listed');
});

t.test('the agency admin cuts one player on the page; the session and the other player go on', async (t) => {
  const { page, pageErrors } = await openBrowser(t);
  await signIn(page, base, 'players.admin', PASSWORDS.admin);
  await page.click('#tab-agency-sessions');
  const row = `#agency-sessions-list tr[data-session-id="${session.id}"]`;
  await page.waitForSelector(`${row} li[data-player-id]`);
  await until(t, 'both players listed on the page', async () => (await page.locator(`${row} li[data-player-id]`).count()) === 2, 15_000);
  const shown = await page.locator(`${row} li[data-player-id]`).allTextContents();
  t.ok(shown.some((text) => text.includes('127.0.0.1') && text.includes('viewer-to-cut/1.0') && text.includes('http-flv')), 'address, user agent and protocol of the HTTP-FLV player');
  t.ok(shown.some((text) => text.includes('viewer-stays/2.0') && text.includes('ws-flv')), 'the WS-FLV player');
  t.ok(shown.every((text) => /\d+(\.\d)? (B|KiB|MiB)/.test(text)), 'bytes shown');
  await screenshot(page, '20-session-players');

  const victimRow = page.locator(`${row} li[data-player-id]`).filter({ hasText: 'viewer-to-cut/1.0' });
  const victimId = (await victimRow.getAttribute('data-player-id'))!;
  await victimRow.locator('button').click();
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#confirm-ok');
  await page.waitForSelector('#panel-agency-sessions .message.ok');
  t.match(await page.textContent('#panel-agency-sessions .message'), '已断开');
  t.ok(await settles(toCut.closed, WIRE_DEADLINE_MS), "the cut player's connection ends");
  await until(t, 'the page lists the one player left', async () => (await page.locator(`${row} li[data-player-id]`).count()) === 1, 15_000);
  t.match(await page.textContent(`${row} li[data-player-id]`), 'viewer-stays/2.0');
  await screenshot(page, '21-session-player-cut');

  const endsOf = async () => ((await api('GET', '/audit?action=play.end&limit=100', tb.adminToken)).body.items as Entry[]).filter((e) => e.details?.sessionId === session.id);
  await until(t, 'a play.end of the cut player', async () => (await endsOf()).some((e) => e.details?.userAgent === 'viewer-to-cut/1.0'), 20_000);
  const end = (await endsOf()).find((e) => e.details?.userAgent === 'viewer-to-cut/1.0')!;
  t.equal(end.details?.address, '127.0.0.1', 'play.end: address');
  t.equal(end.details?.userId, ids.operator, "play.end: the session's user");
  t.ok((end.details?.bytes as number) > 0 && (end.details?.seconds as number) > 0, 'play.end: bytes and seconds');
  const cut = ((await api('GET', '/audit?action=play.cut&limit=10', tb.adminToken)).body.items as Entry[]).find((e) => e.details?.sessionId === session.id);
  t.equal(cut?.outcome, 'ok', 'the cut itself is on record');
  t.equal(cut?.details?.playerId, victimId);

  t.equal((await api('GET', `/streams/${session.id}`, operatorToken)).status, 200, 'the session lives');
  const before = stays.flv.videoTags;
  t.ok(await settles(stays.videoTags(before + 3), WIRE_DEADLINE_MS), 'the other player keeps receiving video');
  const again = await api('DELETE', `/streams/${session.id}/players/${victimId}`, adminToken);
  t.equal(again.status, 404, 'cutting the already-gone player again: 404');
  t.equal(again.body.error.code, 'NOT_FOUND');

  // The last player leaves by itself while the page still shows it: cutting the stale row says so.
  const lastId = (await page.locator(`${row} li[data-player-id]`).getAttribute('data-player-id'))!;
  stays.stop();
  await until(t, 'the media node lets the player go', async () => playersIn((await listFor(adminToken, 'agency')).body.items).every((p) => p.id !== lastId), 15_000);
  await page.locator(`${row} li[data-player-id="${lastId}"] button`).click();
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#confirm-ok');
  await page.waitForSelector('#panel-agency-sessions .message.info');
  t.match(await page.textContent('#panel-agency-sessions .message'), '已不在线');
  await page.waitForSelector(`${row} .muted`);
  t.match(await page.textContent(`${row} .muted`), '无播放器');
  t.equal((await api('GET', `/streams/${session.id}`, operatorToken)).status, 200, 'the session still lives with no player');
  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});

t.test("another agency's admin sees none of it on the page; the platform admin sees it", async (t) => {
  const player = await playHttpFlv(session.urls.flv, { 'user-agent': 'viewer-late/3.0' });
  t.teardown(() => player.stop());
  t.equal(player.status, 200, 'a new player is admitted after the cuts');
  t.ok(await settles(player.videoTags(2), WIRE_DEADLINE_MS));
  const { page, pageErrors } = await openBrowser(t);
  const otherAdmin = await api('POST', '/agencies/ui-other/users', tb.adminToken, { username: 'other.pageadmin', password: 'other-admin-0123', role: 'admin' });
  t.equal(otherAdmin.status, 201);
  await signIn(page, base, 'other.pageadmin', 'other-admin-0123');
  await page.click('#tab-agency-sessions');
  await page.waitForSelector('#agency-sessions-list td.empty');
  t.equal(await page.locator('#agency-sessions-list li[data-player-id]').count(), 0, 'no player of another agency on the page');

  await signIn(page, base, 'admin', tb.adminPassword);
  await page.click('#tab-agency-sessions');
  await page.waitForSelector(`#agency-sessions-list tr[data-session-id="${session.id}"] li[data-player-id]`);
  t.match(await page.textContent(`#agency-sessions-list tr[data-session-id="${session.id}"]`), 'viewer-late/3.0', 'the platform admin sees the player');
  await screenshot(page, '22-session-players-platform');
  t.same(pageErrors, []);
});
