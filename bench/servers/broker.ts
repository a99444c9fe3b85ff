/**
 * The broker as a bench target: built exactly like the process (config from BROKER_* env), the
 * 86,000-channel demo catalog loaded, one agency with an operator. Prints {port, pid, token, ...}.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { createBroker } from '../../src/broker.js';
import { buildApp } from '../../src/app.js';
import { generateDemoCatalog } from '../../src/core/demo-catalog.js';

const started = performance.now();
const adminPassword = randomBytes(12).toString('base64url');
const config = loadConfig(
  { BROKER_DATA_DIR: mkdtempSync(join(tmpdir(), 'se-bench-')), BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_LOG_LEVEL: 'warn', ...process.env },
  { adminPassword, port: 0 },
);
const logger = pino({ level: config.logLevel });
const broker = await createBroker(config, logger);
await broker.accounts.bootstrap(adminPassword, () => adminPassword);
const admin = broker.accounts.principalOf('admin');
if (broker.catalog.size === 0 && process.env.BENCH_SEED !== '0') await broker.catalog.seed(generateDemoCatalog());
if (!broker.accounts.agency('bench')) {
  await broker.accounts.createAgency(admin, {
    id: 'bench',
    name: 'bench agency',
    networks: ['video', 'police', 'gov', 'interconnect'],
    classes: [1, 2, 3],
    quotas: { forwarding: 100000, analytics: 100000 },
  });
}
const password = randomBytes(12).toString('base64url');
const username = `bench.op.${randomBytes(3).toString('hex')}`;
await broker.accounts.createUser(admin, 'bench', { username, password, role: 'operator' });
const { token } = await broker.accounts.login(username, password, '127.0.0.1');
const app = await buildApp(broker, config, logger);
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });
broker.start();
const address = app.server.address();
console.log(
  JSON.stringify({
    port: typeof address === 'object' && address ? address.port : 0,
    pid: process.pid,
    token,
    channels: broker.catalog.size,
    readyMs: Math.round(performance.now() - started),
  }),
);
process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => broker.close())
    .then(() => process.exit(0));
});
