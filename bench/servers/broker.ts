/**
 * The broker as a bench target: built exactly like the process (config from BROKER_* env), the
 * 86,000-channel demo catalog loaded, one agency with an operator, and BENCH_GB_DEVICES GB/T 28181 devices.
 * Prints {port, pid, token, adminToken, ...}.
 * Brokers sharing one Redis prefix must be given the same BENCH_ADMIN_PASSWORD: only the first one
 * creates `admin`, the others log in with its password.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { createBroker } from '../../src/broker.js';
import { buildApp } from '../../src/app.js';
import { DEMO_SEED, DEMO_TOTAL } from '../../src/core/demo-catalog.js';
import type { Channel } from '../../src/core/model.js';

/** Class-1 video channels in 天河 (440106): GB/T 28181 code with device type 131, network digit 0. */
function simulatedCameraChannels(baseUrl: string, cameras: number): Channel[] {
  return Array.from({ length: cameras }, (_, i) => ({
    id: `44010600001310${String(i + 1).padStart(6, '0')}`,
    name: `bench camera ${i + 1}`,
    class: 1,
    district: '440106',
    network: 'video',
    location: { lat: 23.13, lon: 113.33 },
    status: 'online',
    sourceUrl: `${baseUrl}/${i + 1}`,
  }));
}

const started = performance.now();
const adminPassword = process.env.BENCH_ADMIN_PASSWORD ?? randomBytes(12).toString('base64url');
const scratchDir = mkdtempSync(join(tmpdir(), 'se-bench-'));
const config = loadConfig(
  { BROKER_DATA_DIR: scratchDir, BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_LOG_LEVEL: 'warn', BROKER_GB_SIP_PORT: '0', ...process.env },
  { adminPassword, port: 0 },
);
const logger = pino({ level: config.logLevel });
const broker = await createBroker(config, logger);
await broker.accounts.bootstrap(adminPassword, () => adminPassword);
const admin = broker.accounts.principalOf('admin');
const cameraChannels = process.env.BENCH_CAMERA_BASE_URL
  ? simulatedCameraChannels(process.env.BENCH_CAMERA_BASE_URL, Number(process.env.BENCH_CAMERAS ?? 1))
  : [];
if (cameraChannels.length > 0) await broker.catalog.seed(cameraChannels);
// As demo mode seeds it: the catalog's seed in the store, the channels regenerated from it.
else if (broker.catalog.size === 0 && process.env.BENCH_SEED !== '0') await broker.catalog.seedBase({ kind: 'demo', seed: DEMO_SEED, total: DEMO_TOTAL }, () => []);
if (!broker.accounts.agency('bench')) {
  await broker.accounts.createAgency(admin, {
    id: 'bench',
    name: 'bench agency',
    networks: ['video', 'police', 'gov', 'interconnect'],
    classes: [1, 2, 3],
    quotas: { forwarding: 100000, analytics: 100000 },
  });
}
// bench gb-devices: its devices, created in process (the API's code minus HTTP: thousands of POSTs would
// take the bench's whole time budget on two shared cores), ids counting up from BENCH_GB_FIRST_ID.
let gbCreateMs: number | undefined;
const gbDevices = Number(process.env.BENCH_GB_DEVICES ?? 0);
if (gbDevices > 0 && broker.gb) {
  const gbStarted = performance.now();
  const first = Number(process.env.BENCH_GB_FIRST_ID!.slice(14));
  const prefix = process.env.BENCH_GB_FIRST_ID!.slice(0, 14);
  for (let i = 0; i < gbDevices; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, gbDevices - i) }, (_, j) => {
      const id = `${prefix}${String(first + i + j).padStart(6, '0')}`;
      return broker.gb!.create(admin, { id, name: `bench device ${id.slice(-6)}`, password: process.env.BENCH_GB_PASSWORD! });
    }));
  }
  gbCreateMs = Math.round(performance.now() - gbStarted);
}
const password = randomBytes(12).toString('base64url');
const username = `bench.op.${randomBytes(3).toString('hex')}`;
await broker.accounts.createUser(admin, 'bench', { username, password, role: 'operator' });
const { token } = await broker.accounts.login(username, password, '127.0.0.1');
const { token: adminToken } = await broker.accounts.login('admin', adminPassword, '127.0.0.1');
const app = await buildApp(broker, config, logger);
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });
broker.start();
const address = app.server.address();
console.log(
  JSON.stringify({
    port: typeof address === 'object' && address ? address.port : 0,
    pid: process.pid,
    token,
    adminToken,
    channels: broker.catalog.size,
    readyMs: Math.round(performance.now() - started),
    ...(gbCreateMs !== undefined && { gbCreateMs }),
    ...(cameraChannels.length > 0 && { channelIds: cameraChannels.map((c) => c.id) }),
  }),
);
process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => broker.close())
    .then(() => {
      rmSync(scratchDir, { recursive: true, force: true });
      process.exit(0);
    });
});
