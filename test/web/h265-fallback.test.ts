/**
 * Issue 10 point 3, the console's side: headless Debian Chromium cannot decode H.265, so for an H.265 camera
 * the console asks POST /streams for `codec: "h264"`, plays the transcode (the <video> clock moves) and says
 * why on the player. A real broker with its embedded media node, a simulated H.265 camera, real ffmpeg.
 */
import t from 'tap';
import { openBrowser, screenshot, signIn, stopPlayer } from './browser.js';
import type { Channel } from '../../src/core/model.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startSimulator } from '../../src/media/simulator.js';
import { auth, buildTestBroker, until } from '../helper.js';

const AGENCY = 'ui-h265';
const PASSWORD = 'operator-pass-0123';

t.test('an H.265 channel plays in Chromium through the H.264 fallback, and the player says why', async (t) => {
  const simulator = await startSimulator({ cameras: 1, h265Cameras: 1, rtmpPort: await findFreePort() });
  t.teardown(() => simulator.stop());
  const h265Url = simulator.cameras.find((camera) => camera.codec === 'h265')!.rtmp;
  const [mediaRtmpPort, mediaHttpPort, mediaControlPort] = [await findFreePort(), await findFreePort(), await findFreePort()];
  const tb = await buildTestBroker(t, {
    start: true,
    env: { BROKER_MEDIA: 'embedded' },
    config: { mediaRtmpPort, mediaHttpPort, mediaControlPort, sourceTimeoutSeconds: 20 },
  });
  const camera: Channel = {
    id: '44010600001320000265',
    name: '模拟H265摄像机',
    class: 1,
    district: '440106',
    network: 'video',
    location: { lat: 23.13, lon: 113.33 },
    status: 'online',
    sourceUrl: h265Url,
    // What the media node recorded at an earlier forward (API.md Channels `codec`).
    codec: 'h265',
  };
  await tb.broker.catalog.seed([camera]);
  const agency = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies',
    headers: auth(tb.adminToken),
    payload: { id: AGENCY, name: '转码测试局', networks: ['video'], classes: [1], quotas: { forwarding: 2, analytics: 1 } },
  });
  t.equal(agency.statusCode, 201);
  const user = await tb.app.inject({
    method: 'POST',
    url: `/api/v1/agencies/${AGENCY}/users`,
    headers: auth(tb.adminToken),
    payload: { username: 'h265.operator', password: PASSWORD, role: 'operator' },
  });
  t.equal(user.statusCode, 201);
  await tb.app.listen({ port: 0, host: '127.0.0.1' });
  const address = tb.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no listening address');
  const base = `http://127.0.0.1:${address.port}`;

  const { page, pageErrors } = await openBrowser(t);
  await signIn(page, base, 'h265.operator', PASSWORD);
  const decodesH265 = await page.evaluate(`MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"')`);
  t.equal(decodesH265, false, 'this Chromium cannot decode H.265 (the case the fallback is for)');

  await page.click(`tr[data-channel-id="${camera.id}"] button`);
  await page.fill('#stream-purpose', 'H.265 回退播放验证');
  await page.click('#stream-submit');
  await page.waitForSelector('#players article[data-session-id] video', { timeout: 30_000 });

  const sessions = (await tb.app.inject({ url: '/api/v1/streams?scope=all', headers: auth(tb.adminToken) })).json().items;
  t.equal(sessions.length, 1);
  t.equal(sessions[0].codec, 'h264', 'the console asked for H.264');
  t.match(sessions[0].urls.wsFlv, `/live/${camera.id}_h264.flv?token=`, 'and plays the transcoded stream');

  const video = page.locator('#players video');
  const currentTime = () => video.evaluate((element: { currentTime: number }) => element.currentTime);
  await until(t, 'the video to start', async () => (await currentTime()) > 0.2, 30_000);
  const started = await currentTime();
  await until(t, 'the video to keep playing', async () => (await currentTime()) > started + 1, 30_000);
  t.pass(`the H.264 transcode plays (currentTime moved on from ${started.toFixed(2)} s)`);
  t.equal(
    (await page.textContent('#players article .player-codec'))?.trim(),
    'H.265 摄像机,正在播放 H.264 转码:此浏览器无法解码 H.265。',
    'the player says why it plays a transcode',
  );
  await screenshot(page, '20-h265-fallback');

  t.equal(await stopPlayer(page), 204, 'the page released the lease');
  const after = await tb.app.inject({ url: '/api/v1/streams?scope=all', headers: auth(tb.adminToken) });
  t.same(after.json().items, [], 'stopping released the session');
  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});
