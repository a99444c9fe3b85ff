/**
 * The console's GB/T 28181 devices page in real Chromium, against a broker with SIP on a free loopback
 * port and one simulated lower platform registered with digest: the platform admin sees it online with
 * its channels, re-queries its catalog (the device receives the Catalog query), disables it (offline, its
 * channels offline) and enables it again; names the device and its catalog carry are shown as text, never
 * markup; GB channels are marked in search; an agency admin never gets the page.
 */
import t from 'tap';
import type { Page } from 'playwright-core';
import { openBrowser, screenshot, signIn } from './browser.js';
import { buildGbBroker } from '../gb28181/helpers.js';
import { simulatedCatalog } from '../../src/gb28181/device-simulator.js';
import type { Channel } from '../../src/core/model.js';
import { auth, until } from '../helper.js';

const AGENCY = 'gb-ui';
const AGENCY_ADMIN = { username: 'gbui.admin', password: 'gbui-admin-pass-0123' };
/** A name as a hostile or broken device might send it: it must render as these characters. */
const XSS = '<img src=x onerror=alert(1)>';

const hasText = (page: Page, selector: string, text: string | RegExp) => page.locator(selector).filter({ hasText: text }).first().waitFor();

t.test('the platform admin manages GB/T 28181 devices in the console; others never see the page', async (t) => {
  const tb = await buildGbBroker(t);
  const created = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies',
    headers: auth(tb.adminToken),
    payload: { id: AGENCY, name: '国标界面测试局', networks: ['video'], classes: [1, 2, 3], quotas: { forwarding: 5, analytics: 1 } },
  });
  t.equal(created.statusCode, 201, 'agency created');
  const user = await tb.app.inject({
    method: 'POST',
    url: `/api/v1/agencies/${AGENCY}/users`,
    headers: auth(tb.adminToken),
    payload: { ...AGENCY_ADMIN, role: 'admin' },
  });
  t.equal(user.statusCode, 201, 'agency admin created');

  // One URL channel beside the GB ones: search must mark only the GB channels.
  const urlChannel: Channel = {
    id: '44010600001320000901', name: '天河路口摄像机URL', class: 1, district: '440106', network: 'video',
    location: { lat: 23.12, lon: 113.31 }, status: 'online', sourceUrl: 'rtmp://127.0.0.1:1/cam/none',
  };
  await tb.broker.catalog.seed([urlChannel]);

  const { id: deviceId, password } = await tb.device();
  const renamed = await tb.app.inject({ method: 'PATCH', url: `/api/v1/gb/devices/${deviceId}`, headers: auth(tb.adminToken), payload: { name: XSS } });
  t.equal(renamed.statusCode, 200, 'the device carries a name with markup in it');
  const items = simulatedCatalog(deviceId, 3);
  items[1] = { ...items[1]!, name: `${XSS}天河路口摄像机` };
  const sim = await tb.simulator({ deviceId, password, channels: items, itemsPerMessage: 2 });
  const device = async () => (await tb.app.inject({ url: `/api/v1/gb/devices/${deviceId}`, headers: auth(tb.adminToken) })).json();
  await until(t, 'the catalog synced', async () => (await device()).channels === 3);

  await tb.app.listen({ port: 0, host: '127.0.0.1' });
  const address = tb.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no listening address');
  const base = `http://127.0.0.1:${address.port}`;
  const { page, pageErrors } = await openBrowser(t);
  const dialogs: string[] = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  const row = `#devices-list tr[data-device-id="${deviceId}"]`;

  await t.test('the platform admin sees the device online with its channels, its name as text', async (t) => {
    await signIn(page, base, 'admin', tb.adminPassword);
    await page.click('#tab-devices');
    await page.waitForSelector(`${row}[data-online="true"]`);
    t.equal(await page.textContent(`${row} .device-name`), XSS, 'the device name is shown as the characters it is');
    t.equal(await page.locator('#devices-list img').count(), 0, 'no element was made from the name');
    t.equal(await page.textContent(`${row} .device-channels`), '3 / 3', 'three channels, all online');
    t.match(await page.textContent(row), '在线');
    t.match(await page.textContent(row), /127\.0\.0\.1:\d+/, 'the address it registered from');
    t.match(await page.textContent(row), 'UDP');
    t.match(await page.textContent('#devices-summary'), '1 台在线');
    await screenshot(page, 'gb-01-devices');
  });

  await t.test('re-querying asks the device for its catalog again', async (t) => {
    const before = sim.seen.catalogQueries;
    await page.click(`${row} button[data-action="requery"]`);
    await page.waitForSelector('#panel-devices .message.ok');
    await until(t, 'the device received a Catalog query', () => sim.seen.catalogQueries > before);
    t.ok(sim.seen.catalogQueries > before, 'the device received a Catalog query');
  });

  await t.test('disabling takes the device and its channels offline; enabling lets it register again', async (t) => {
    await page.click(`${row} button[data-action="disable"]`);
    await page.waitForSelector('#confirm-dialog[open]');
    await page.click('#confirm-ok');
    await page.waitForSelector(`${row}[data-online="false"]`);
    await hasText(page, `${row} .device-channels`, /^0 \/ 3$/);
    t.match(await page.textContent(row), '已停用');
    t.notOk(await page.isEnabled(`${row} button[data-action="requery"]`), 'an offline device cannot be re-queried');
    const listed = await tb.app.inject({ url: '/api/v1/channels?q=天河路口摄像机&limit=50', headers: auth(tb.adminToken) });
    const gb = listed.json().items.filter((c: Channel) => c.deviceId === deviceId);
    t.same(gb.map((c: Channel) => c.status), ['offline', 'offline', 'offline'], 'the broker set its channels offline');
    t.equal(await sim.register(), 403, 'the disabled device may not register');
    await screenshot(page, 'gb-02-disabled');

    await page.click(`${row} button[data-action="enable"]`);
    await page.waitForSelector(`${row} button[data-action="disable"]`);
    t.equal(await sim.register(), 200, 'the enabled device registers again');
    // Nobody clicks: the page's own refresh shows it online, and its channels with it once the catalog answers.
    await page.waitForSelector(`${row}[data-online="true"]`);
    await hasText(page, `${row} .device-channels`, /^3 \/ 3$/);
    t.pass('the page followed the registration by itself');
  });

  await t.test('search marks GB channels with their device; catalog names are text', async (t) => {
    await page.click('#tab-channels');
    await page.fill('#filter-q', '天河路口摄像机');
    await page.click('#search-submit');
    await page.waitForSelector(`#channel-results tr[data-channel-id="${items[0]!.deviceId}"]`);
    for (const item of items) {
      const badge = `#channel-results tr[data-channel-id="${item.deviceId}"] .badge-gb`;
      t.match(await page.textContent(badge), `国标 · ${deviceId}`, `${item.deviceId} is marked as a GB channel of its device`);
    }
    t.equal(await page.locator(`#channel-results tr[data-channel-id="${urlChannel.id}"] .badge-gb`).count(), 0, 'a URL channel is not marked');
    t.match(await page.textContent(`#channel-results tr[data-channel-id="${items[1]!.deviceId}"]`), XSS, 'the catalog name is shown as text');
    t.equal(await page.locator('#channel-results img').count(), 0, 'no element was made from a catalog name');
    await screenshot(page, 'gb-03-search');
  });

  await t.test('an agency admin does not get the devices page, and the API refuses it', async (t) => {
    await signIn(page, base, AGENCY_ADMIN.username, AGENCY_ADMIN.password);
    await page.waitForSelector('#tab-channels');
    t.equal(await page.locator('#tab-devices').count(), 0, 'no devices tab');
    t.equal(await page.locator('#panel-devices').count(), 0, 'no devices panel');
    // In the page, with the token the console holds (a string: this file is not typed against the DOM).
    const status = await page.evaluate(`(async () => {
      const { token } = JSON.parse(sessionStorage.getItem('sharp-eyes.console.session'));
      return (await fetch('/api/v1/gb/devices', { headers: { authorization: 'Bearer ' + token } })).status;
    })()`);
    t.equal(status, 403, 'the broker refuses the list to an agency admin');
  });

  t.same(dialogs, [], 'no script ran from a device-provided name');
  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});
