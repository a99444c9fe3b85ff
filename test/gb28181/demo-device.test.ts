/**
 * Demo mode, as `npm start` runs it on an empty data dir: a simulated GB/T 28181 lower platform registers over
 * SIP with digest, its catalog lands as GB channels, and a demo operator watches one (INVITE → PS over RTP →
 * FLV) — what a newcomer sees in the first minute (issue 11, point 4).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embeddedMediaEnv, makeTempDir, until } from '../helper.js';
import { api, freePort, startBroker } from '../process/helpers.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { freeSipPort } from './helpers.js';
import { DEMO_GB_CHANNELS, DEMO_GB_DEVICE_ID } from '../../src/gb28181/demo-device.js';

t.test('demo mode: a simulated lower platform is online with its channels, and one plays', async (t) => {
  const dataDir = await makeTempDir(t, 'se-demo-gb-');
  const adminPassword = 'demo-gb-admin-password';
  const broker = await startBroker(t, {
    ...(await embeddedMediaEnv()),
    BROKER_DATA_DIR: dataDir,
    BROKER_DEMO: '1',
    BROKER_DEMO_CAMERAS: '1',
    BROKER_SIMULATOR_RTMP_PORT: String(await freePort()),
    BROKER_GB_SIP_PORT: String(await freeSipPort()),
    BROKER_ADMIN_PASSWORD: adminPassword,
  });
  const login = async (username: string, password: string) => (await api(broker.url, 'POST', '/auth/login', undefined, { username, password })).body.token as string;
  const admin = await login('admin', adminPassword);
  const device = async () => (await api(broker.url, 'GET', `/gb/devices/${DEMO_GB_DEVICE_ID}`, admin)).body;
  await until(t, 'the simulated platform registers and its catalog lands', async () => {
    const d = await device();
    return d?.online === true && d.channels === DEMO_GB_CHANNELS;
  }, 90_000);

  const credentials = await readFile(join(dataDir, 'demo-credentials.txt'), 'utf8');
  t.match(credentials, new RegExp(`GB/T 28181 lower platform \\(simulated\\): device ${DEMO_GB_DEVICE_ID}`), 'the credentials file names the device');
  const [username, password] = credentials.split('\n').find((l) => l.startsWith('public.security.op'))!.split('\t');
  const operator = await login(username!, password!);
  const search = await api(broker.url, 'GET', '/channels?q=4401060000131&limit=50', operator);
  const gbChannels = (search.body.items as Array<{ id: string; source: string; deviceId?: string }>).filter((c) => c.source === 'gb28181');
  t.equal(gbChannels.length, DEMO_GB_CHANNELS, 'the demo operator finds the GB channels, marked gb28181');
  t.equal(gbChannels[0]!.deviceId, DEMO_GB_DEVICE_ID);

  const opened = await api(broker.url, 'POST', '/streams', operator, { channelId: gbChannels[0]!.id, purpose: 'demo: watch a GB/T 28181 channel' });
  t.equal(opened.status, 201, JSON.stringify(opened.body));
  const player = await playHttpFlv(opened.body.urls.flv);
  t.equal(player.status, 200);
  await player.videoTags(10);
  t.ok(player.flv.videoTags >= 10 && !player.flv.malformed, `FLV plays (${player.flv.videoTags} video tags)`);
  player.stop();
  t.notOk(broker.output().includes(password!), 'no demo password in the output');

  // Ctrl-C on `npm start`: the demo's peers stop with it, promptly and cleanly.
  t.equal(await broker.kill('SIGINT'), 0, 'SIGINT stops the broker, its simulator and its simulated platform: exit 0');
  t.notMatch(broker.output(), /shutdown took too long|unclean shutdown/, 'within the grace period');
});
