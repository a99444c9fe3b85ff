/** `npm run simulate -- --gb28181 …` as a real process: it registers with a broker and its catalog lands. */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { auth, embeddedMediaEnv, nodeArgs, until } from '../helper.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { buildGbBroker, SERVER_ID } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `npm run simulate -- --gb28181 <args>` with the device password in its environment: its output so far, and its exit. */
function simulatorProcess(t: Test, args: string[], password: string) {
  const child = spawn(process.execPath, [...nodeArgs('src/media/simulator-main.ts'), '--gb28181', ...args], {
    cwd: root,
    env: { ...process.env, GB_DEVICE_PASSWORD: password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, exited, output: () => output };
}

t.test('the GB/T 28181 simulator process registers over TCP, answers the catalog, unregisters on SIGTERM', async (t) => {
  const tb = await buildGbBroker(t);
  const { id, password } = await tb.device();
  const { child, exited, output } = simulatorProcess(t, ['--server', `127.0.0.1:${tb.sipPort}`, '--server-id', SERVER_ID, '--device-id', id, '--channels', '30', '--items-per-message', '7', '--transport', 'tcp'], password);
  await until(t, 'registered', () => output().includes(`${id} registered over tcp with 30 channels`), 60_000);
  await until(t, 'its 30 channels in the catalog', () => tb.broker.catalog.channelsOfDevice(id).length === 30, 30_000);
  t.notOk(output().includes(password), 'the password is never printed');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  await until(t, 'unregistered', () => !tb.broker.gb!.read(tb.broker.accounts.authenticate(`Bearer ${tb.adminToken}`)!, id).online);
});

t.test('the simulator process sends H.265 PS over RTP when INVITEd: its channel plays through the broker', async (t) => {
  const tb = await buildGbBroker(t, { env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '8' } });
  tb.broker.start();
  const agency = await tb.agency({ id: 'agency-gb-cli' });
  const { id, password } = await tb.device();
  const { output } = simulatorProcess(t, ['--server', `127.0.0.1:${tb.sipPort}`, '--server-id', SERVER_ID, '--device-id', id, '--channels', '2', '--codec', 'h265'], password);
  await until(t, 'registered', () => output().includes(`${id} registered over udp with 2 channels`), 60_000);
  await until(t, 'its channels in the catalog', () => tb.broker.catalog.channelsOfDevice(id).length === 2, 30_000);
  const channelId = tb.broker.catalog.channelsOfDevice(id)[0]!.id;
  const opened = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(agency.operatorToken), payload: { channelId, purpose: 'GB simulator process play test' } });
  t.equal(opened.statusCode, 201, opened.body);
  const player = await playHttpFlv((opened.json() as { urls: { flv: string } }).urls.flv);
  t.equal(player.status, 200);
  await player.videoTags(10);
  t.ok(player.flv.videoTags >= 10 && !player.flv.malformed, `FLV plays (${player.flv.videoTags} video tags)`);
  player.stop();
});

t.test('without GB_DEVICE_PASSWORD it refuses to start', async (t) => {
  const env = { ...process.env };
  delete env.GB_DEVICE_PASSWORD;
  const child = spawn(process.execPath, [...nodeArgs('src/media/simulator-main.ts'), '--gb28181'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.equal(code, 1);
  t.match(stderr, /GB_DEVICE_PASSWORD/);
});

t.test('with --devices N over UDP the simulator process runs N devices on one shared socket', async (t) => {
  const tb = await buildGbBroker(t);
  const first = '44010600001180070001';
  const ids = [first, '44010600001180070002', '44010600001180070003'];
  // One password for all (the CLI's contract): create the devices with it.
  const password = 'cli-many-devices-pw';
  for (const id of ids) {
    const res = await tb.app.inject({ method: 'POST', url: '/api/v1/gb/devices', headers: auth(tb.adminToken), payload: { id, name: `cli ${id.slice(-1)}`, password } });
    t.equal(res.statusCode, 201);
  }
  const { child, exited, output } = simulatorProcess(t, ['--server', `127.0.0.1:${tb.sipPort}`, '--server-id', SERVER_ID, '--device-id', first, '--devices', '3', '--channels', '0'], password);
  await until(t, 'all three registered', () => ids.every((id) => output().includes(`${id} registered over udp`)), 60_000);
  const read = async (id: string) => (await tb.app.inject({ url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken) })).json();
  const devices = await Promise.all(ids.map(read));
  t.ok(devices.every((d) => d.online), 'all three online');
  t.equal(new Set(devices.map((d) => d.address)).size, 1, 'all from one socket');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  await until(t, 'all unregistered', async () => (await Promise.all(ids.map(read))).every((d) => !d.online));
});
