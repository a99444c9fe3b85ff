/**
 * The console in a real browser (Debian chromium driven by playwright-core) against a real broker
 * listening on a free loopback port: an operator signs in, searches, requests a stream, sees it in
 * "my sessions" and ends it; an agency admin creates an operator and disables it; the platform admin
 * edits agencies and verifies the audit chain. Then, with the embedded media plane and a simulated
 * camera, the <video> element actually plays. A screenshot of each screen lands in test-output/screens/.
 */
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { openBrowser, screenshot, signIn, stopPlayer } from './browser.js';
import type { Channel } from '../../src/core/model.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startSimulator } from '../../src/media/simulator.js';
import { auth, buildTestBroker, until } from '../helper.js';

const AGENCY = 'ui-test';
/**
 * Short leases, so the test sees the page's heartbeats keep a session alive (one every TTL/3) — yet
 * long enough that a loaded CI machine does not lapse one by accident.
 */
const LEASE_TTL_SECONDS = 6;
const PASSWORDS = { admin: 'admin-pass-0123', operator: 'operator-pass-0123', created: 'created-pass-0123' };

/** Channels of Tianhe (440106) and Haizhu (440105) on the video network (digit 14 = 0). */
const channel = (serial: number, overrides: Partial<Channel> = {}): Channel => {
  const district = serial % 2 ? '440106' : '440105';
  return {
    id: `${district}00001320${String(serial).padStart(6, '0')}`,
    name: `${serial % 2 ? '天河路' : '江南西'}路口${serial}号`,
    class: ((serial % 3) + 1) as 1 | 2 | 3,
    district,
    network: 'video',
    location: { lat: 23.1 + serial * 0.004, lon: 113.3 + serial * 0.006 },
    status: 'online',
    sourceUrl: 'rtmp://127.0.0.1:1/cam/none',
    ...overrides,
  };
};

async function startBroker(t: Test, options: Parameters<typeof buildTestBroker>[1] = {}) {
  const tb = await buildTestBroker(t, { start: true, ...options });
  const created = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies',
    headers: auth(tb.adminToken),
    payload: { id: AGENCY, name: '界面测试局', networks: ['video', 'gov'], classes: [1, 2, 3], quotas: { forwarding: 5, analytics: 2 } },
  });
  t.equal(created.statusCode, 201, 'agency created');
  for (const role of ['admin', 'operator'] as const) {
    const res = await tb.app.inject({
      method: 'POST',
      url: `/api/v1/agencies/${AGENCY}/users`,
      headers: auth(tb.adminToken),
      payload: { username: `ui.${role}`, password: PASSWORDS[role], role, displayName: role === 'admin' ? '测试管理员' : '测试值班员' },
    });
    t.equal(res.statusCode, 201, `${role} created`);
  }
  await tb.app.listen({ port: 0, host: '127.0.0.1' });
  const address = tb.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no listening address');
  return { tb, base: `http://127.0.0.1:${address.port}` };
}

/** Waits until the element's text matches (Playwright retries; no DOM types needed here). */
const hasText = (page: Page, selector: string, text: string | RegExp) => page.locator(selector).filter({ hasText: text }).first().waitFor();


async function signOut(page: Page) {
  await page.click('#logout');
  await page.waitForSelector('#login-screen:not([hidden])');
}

t.test('operator, admin and platform admin work through the console', async (t) => {
  // A pool of two forwarding slots, freed as soon as their last session ends, so the test can fill it.
  const { tb, base } = await startBroker(t, { config: { leaseTtlSeconds: LEASE_TTL_SECONDS, forwardingSlots: 2, idleCloseSeconds: 0 } });
  // Serial 11 is a 天河路 channel that is offline: the search below filters it out by status.
  const channels = Array.from({ length: 12 }, (_, i) => channel(i + 1, i === 10 ? { status: 'offline' } : {}));
  await tb.broker.catalog.seed(channels);
  const { page, pageErrors } = await openBrowser(t);

  await page.goto(base);
  await page.waitForSelector('#login-screen:not([hidden])');
  t.equal(await page.textContent('#login-form h1'), '登录', 'Chinese by default');
  await screenshot(page, '01-login');

  await t.test('a wrong password is said plainly', async (t) => {
    await page.fill('#login-username', 'ui.operator');
    await page.fill('#login-password', 'not-the-password');
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('#login-message.error');
    t.match(await page.textContent('#login-message'), '用户名或密码错误');
  });

  let sessionId = '';
  await t.test('an operator searches, requests a stream and ends it from "my sessions"', async (t) => {
    await signIn(page, base, 'ui.operator', PASSWORDS.operator);
    t.match(await page.textContent('#whoami'), '测试值班员');
    await page.waitForSelector('#channel-results tr[data-channel-id]');
    t.equal(await page.locator('#channel-results tr[data-channel-id]').count(), 12, 'every visible channel is listed');
    await page.waitForSelector('#live-status.live');
    t.match(await page.textContent('#gauge-forwarding .gauge-figures'), /^0 \/ 2$/);

    await page.fill('#filter-q', '天河路');
    await page.check('input[name="status"][value="online"]');
    await page.click('#search-submit');
    await hasText(page, '#channel-summary', '共 5 个通道');
    t.equal(await page.locator('#channel-results tr[data-channel-id]').count(), 5, 'online 天河路 channels only');
    t.match(await page.textContent('#plot-caption'), '显示 5 / 5');
    await screenshot(page, '02-channels');

    const target = channels[0]!;
    await page.click(`tr[data-channel-id="${target.id}"] button`);
    await page.waitForSelector('#stream-dialog[open]');
    await page.click('#stream-submit');
    t.match(await page.textContent('#stream-message'), '请填写用途', 'the purpose is required');
    await page.fill('#stream-purpose', '路口拥堵巡查');
    await screenshot(page, '03-stream-request');
    await page.click('#stream-submit');
    await page.waitForSelector('#stream-dialog', { state: 'hidden' });
    const player = await page.waitForSelector('#players article[data-session-id]');
    sessionId = (await player.getAttribute('data-session-id'))!;
    t.match(await player.textContent(), '路口拥堵巡查');
    t.match(await page.textContent(`#players article[data-session-id="${sessionId}"] .player-status`), '租约有效至');
    await hasText(page, '#gauge-forwarding .gauge-figures', /^1 \//);
    await screenshot(page, '04-player');

    const session = () => tb.app.inject({ url: `/api/v1/streams/${sessionId}`, headers: auth(tb.adminToken) });
    const granted = (await session()).json();
    t.match(granted, { channelId: target.id, purpose: '路口拥堵巡查', priority: 'normal' }, 'the broker holds the session');
    // The lease is LEASE_TTL_SECONDS long: only the page's heartbeats keep it beyond that.
    await until(t, 'a heartbeat', async () => Date.parse((await session()).json().expiresAt) > Date.parse(granted.expiresAt), 15_000);
    await new Promise((resolve) => setTimeout(resolve, LEASE_TTL_SECONDS * 1000 + 500));
    t.equal((await session()).statusCode, 200, 'the heartbeating page keeps its session past the lease TTL');

    await page.click('#tab-mine');
    const row = `#mine-list tr[data-session-id="${sessionId}"]`;
    await page.waitForSelector(row);
    await screenshot(page, '05-my-sessions');
    await page.click(`${row} button.btn-danger`);
    await page.waitForSelector(row, { state: 'detached' });
    await page.waitForSelector('#players article', { state: 'detached' });
    t.equal((await session()).statusCode, 404, 'the session is gone from the broker');
    await signOut(page);
  });

  await t.test('leaving the page releases what it was watching', async (t) => {
    await signIn(page, base, 'ui.operator', PASSWORDS.operator);
    await page.click(`tr[data-channel-id="${channels[2]!.id}"] button`);
    await page.fill('#stream-purpose', '离开页面时释放');
    await page.click('#stream-submit');
    const id = await (await page.waitForSelector('#players article[data-session-id]')).getAttribute('data-session-id');
    await page.goto('about:blank');
    await until(t, 'the keepalive release', async () => (await tb.app.inject({ url: `/api/v1/streams/${id}`, headers: auth(tb.adminToken) })).statusCode === 404, 10_000);
    // The session is gone before its end is on record (the effects follow the store's end): wait for the entry.
    const endOf = async () => {
      const entries = (await tb.app.inject({ url: `/api/v1/audit?action=stream.*&limit=500`, headers: auth(tb.adminToken) })).json().items as Array<{ action: string; target: string }>;
      return entries.find((entry) => entry.target.includes(id!) && (entry.action === 'stream.release' || entry.action === 'stream.expire'));
    };
    await until(t, 'the end of the session on record', async () => (await endOf()) !== undefined, 10_000);
    t.equal((await endOf())?.action, 'stream.release', 'released by the page, not expired');
  });

  await t.test('a full forwarding pool offers to queue, and the queued request plays when a slot frees', async (t) => {
    const adminToken = await tb.login('ui.admin', PASSWORDS.admin);
    const held: string[] = [];
    for (const c of [channels[4]!, channels[6]!]) {
      const res = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(adminToken), payload: { channelId: c.id, purpose: '占满转发资源' } });
      t.equal(res.statusCode, 201, 'the admin takes a slot');
      held.push(res.json().id);
    }
    await signIn(page, base, 'ui.operator', PASSWORDS.operator);
    await hasText(page, '#gauge-forwarding .gauge-figures', /^2 \/ 2$/);
    await page.click(`tr[data-channel-id="${channels[8]!.id}"] button`);
    await page.fill('#stream-purpose', '排队等待空闲资源');
    await page.click('#stream-submit');
    await hasText(page, '#stream-message', '全市转发资源已满');
    await page.waitForSelector('#stream-queue:visible');
    await screenshot(page, '05b-capacity-full');
    await page.click('#stream-queue');
    await hasText(page, '#stream-message', '已进入排队');
    const released = await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${held[0]}`, headers: auth(adminToken) });
    t.equal(released.statusCode, 204, 'a slot frees');
    await page.waitForSelector('#stream-dialog', { state: 'hidden' });
    await page.waitForSelector('#players article[data-session-id]');
    t.match(await page.textContent('#players article'), '排队等待空闲资源', 'the queued request was granted and plays');
    t.equal(await stopPlayer(page), 204, 'the page released the granted lease');
    await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${held[1]}`, headers: auth(adminToken) });
  });

  await t.test('an agency admin creates an operator and disables it', async (t) => {
    await signIn(page, base, 'ui.admin', PASSWORDS.admin);
    await page.click('#tab-users');
    await page.waitForSelector('#users-list tr[data-username="ui.operator"]');
    await page.fill('#new-username', 'ui.night-shift');
    await page.fill('#new-display-name', '夜班值班员');
    await page.fill('#new-password', PASSWORDS.created);
    await page.selectOption('#new-role', 'operator');
    await page.click('#user-form button[type="submit"]');
    const row = '#users-list tr[data-username="ui.night-shift"]';
    await page.waitForSelector(row);
    t.match(await page.textContent(row), '夜班值班员');
    await screenshot(page, '06-users');
    t.equal((await tb.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'ui.night-shift', password: PASSWORDS.created } })).statusCode, 200, 'the new operator can sign in');

    await page.click(`${row} button`);
    await page.waitForSelector('#confirm-dialog[open]');
    await page.click('#confirm-ok');
    await hasText(page, row, '已停用');
    await screenshot(page, '07-user-disabled');
    const refused = await tb.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'ui.night-shift', password: PASSWORDS.created } });
    t.equal(refused.json().error.code, 'ACCOUNT_DISABLED', 'the broker refuses the disabled operator');

    await page.click('#tab-agency-sessions');
    await page.waitForSelector('#agency-sessions-list table');
    t.notOk(await page.isVisible('#tab-agencies'), 'agency admins do not manage agencies');
    await signOut(page);
  });

  await t.test('the platform admin edits quotas and verifies the audit chain, in English too', async (t) => {
    await signIn(page, base, 'admin', tb.adminPassword);
    await page.click('#tab-agencies');
    const row = `#agencies-list tr[data-agency-id="${AGENCY}"]`;
    await page.waitForSelector(row);
    await page.click(`${row} button`);
    await page.fill('#agency-forwarding', '9');
    await page.click('#agency-form button[type="submit"]');
    await hasText(page, `${row} td:nth-child(5)`, /^0 \/ 9$/);
    await screenshot(page, '08-agencies');
    const agency = await tb.app.inject({ url: `/api/v1/agencies/${AGENCY}`, headers: auth(tb.adminToken) });
    t.equal(agency.json().quotas.forwarding, 9, 'the quota change reached the broker');

    await page.click('#tab-audit');
    await page.waitForSelector('#audit-list tbody tr td:not(.empty)');
    await page.click('#audit-verify');
    await page.waitForSelector('#audit-verify-result.ok');
    t.match(await page.textContent('#audit-verify-result'), '校验通过');
    await screenshot(page, '09-audit');

    await page.click('#lang-switch');
    t.equal(await page.textContent('#tab-audit'), 'Audit trail');
    t.match(await page.textContent('#audit-verify-result'), 'Verified');
    await screenshot(page, '10-audit-en');
    await page.click('#lang-switch');
    await signOut(page);
  });

  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});

t.test('a requested stream plays in the page (embedded media plane, simulated camera)', async (t) => {
  const simulator = await startSimulator({ cameras: 1, rtmpPort: await findFreePort() });
  t.teardown(() => simulator.stop());
  const [mediaRtmpPort, mediaHttpPort] = [await findFreePort(), await findFreePort()];
  const { tb, base } = await startBroker(t, {
    env: { BROKER_MEDIA: 'embedded' },
    config: { mediaRtmpPort, mediaHttpPort, mediaControlPort: await findFreePort(), sourceTimeoutSeconds: 20 },
  });
  const camera = channel(1, { sourceUrl: simulator.urls[0]!, name: '模拟摄像机1' });
  await tb.broker.catalog.seed([camera]);
  const { page, pageErrors } = await openBrowser(t);

  await page.goto(base);
  await signIn(page, base, 'ui.operator', PASSWORDS.operator);
  await page.click(`tr[data-channel-id="${camera.id}"] button`);
  await page.fill('#stream-purpose', '视频播放验证');
  await page.click('#stream-submit');
  await page.waitForSelector('#players article[data-session-id] video', { timeout: 30_000 });
  // Playing means the clock of the <video> moves: once past zero, it must move on again.
  const video = page.locator('#players video');
  const currentTime = () => video.evaluate((element: { currentTime: number }) => element.currentTime);
  await until(t, 'the video to start', async () => (await currentTime()) > 0.2, 30_000);
  const started = await currentTime();
  await until(t, 'the video to keep playing', async () => (await currentTime()) > started + 1, 30_000);
  t.pass(`the video plays (currentTime moved on from ${started.toFixed(2)} s)`);
  await screenshot(page, '11-video');

  t.equal(await stopPlayer(page), 204, 'the page released the lease');
  const mine = await tb.app.inject({ url: '/api/v1/streams?scope=all', headers: auth(tb.adminToken) });
  t.same(mine.json().items, [], 'stopping released the session');
  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});
