/**
 * Demo mode, as `npm start` runs it on an empty data dir: a quarter of the simulated cameras send H.265 (issue
 * 10 point 4). A demo operator finds such a channel marked `codec: "h265"` before anyone watched it (so the
 * console asks for H.264 at once), and it plays both ways: hvc1 as the camera sends it, AVC when asked for H.264.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embeddedMediaEnv, makeTempDir } from '../helper.js';
import { api, freePort, startBroker } from '../process/helpers.js';
import { readFlvTags } from '../media/helpers.js';
import { DEMO_SEED, DEMO_TOTAL, demoSimulatedChannels, generateDemoCatalog } from '../../src/core/demo-catalog.js';

const CAMERAS = 4;

t.test('demo mode: an H.265 simulated camera plays as hvc1, and as AVC through the H.264 fallback', async (t) => {
  const dataDir = await makeTempDir(t, 'se-demo-h265-');
  const adminPassword = 'demo-h265-admin-password';
  const broker = await startBroker(t, {
    ...(await embeddedMediaEnv()),
    BROKER_DATA_DIR: dataDir,
    BROKER_DEMO: '1',
    BROKER_DEMO_CAMERAS: String(CAMERAS),
    BROKER_SIMULATOR_RTMP_PORT: String(await freePort()),
    BROKER_SOURCE_TIMEOUT_SECONDS: '20',
    BROKER_ADMIN_PASSWORD: adminPassword,
  });
  // The demo's simulated channels, as seeding picks them: the last of four is the H.265 one.
  const simulated = demoSimulatedChannels(generateDemoCatalog({ total: DEMO_TOTAL, seed: DEMO_SEED }), CAMERAS);
  const h265 = simulated[CAMERAS - 1]!;

  const credentials = await readFile(join(dataDir, 'demo-credentials.txt'), 'utf8');
  const [username, password] = credentials.split('\n').find((l) => l.startsWith('public.security.op'))!.split('\t');
  const operator = (await api(broker.url, 'POST', '/auth/login', undefined, { username, password })).body.token as string;

  const channel = await api(broker.url, 'GET', `/channels/${h265.id}`, operator);
  t.equal(channel.status, 200);
  t.equal(channel.body.codec, 'h265', 'marked H.265 before anyone watched it');
  t.ok(channel.body.tags.includes('simulated'));
  t.equal((await api(broker.url, 'GET', `/channels/${simulated[0]!.id}`, operator)).body.codec, undefined, 'the H.264 ones are learnt at their first forward');

  const source = await api(broker.url, 'POST', '/streams', operator, { channelId: h265.id, purpose: 'demo: watch an H.265 camera' });
  t.equal(source.status, 201, JSON.stringify(source.body));
  t.equal(source.body.codec, 'h265');
  const hevc = (await readFlvTags(source.body.urls.flv, 3)).find((tag) => tag.type === 9)!.data;
  t.equal(hevc.toString('latin1', 1, 5), 'hvc1', 'the source plays as enhanced FLV hvc1');

  const fallback = await api(broker.url, 'POST', '/streams', operator, { channelId: h265.id, purpose: 'demo: watch it as H.264', codec: 'h264' });
  t.equal(fallback.status, 201, JSON.stringify(fallback.body));
  t.equal(fallback.body.codec, 'h264');
  const video = (await readFlvTags(fallback.body.urls.flv, 5)).filter((tag) => tag.type === 9);
  t.ok(video.every((tag) => (tag.data[0] & 0x0f) === 7), 'the fallback plays AVC');
  t.equal(video[0]!.data[1], 0, 'starting with its sequence header');
  t.match(broker.output(), /4 channels play simulated cameras \(1 of them H\.265\)/, 'the start banner says so');
});
