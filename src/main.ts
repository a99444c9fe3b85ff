/**
 * The broker process: configuration, logger, stores, media plane, HTTP server, graceful shutdown.
 * Everything testable lives in broker.ts and app.ts; this file only owns the process.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createBroker } from './broker.js';
import { createLogger } from './logging.js';
import { buildApp } from './app.js';
import { compileRemaining, rememberForWarmUp } from './http/lazy-compilers.js';
import { demoState, seedDemo } from './demo.js';

const ADMIN_PASSWORD_FILE = 'admin-password.txt';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sharp-eyes-broker: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

async function main() {
  const startedAt = performance.now();
  const config = readConfig();
  // Tokens, keys and passwords never reach the logs (STYLE.md 15): logging.ts redacts URLs, headers and fields.
  const logger = createLogger({ level: config.logLevel });

  // The media plane (the embedded node is a child process) starts meanwhile; /readyz says 503 until it is up.
  const broker = await createBroker(config, logger, { deferMedia: true });
  const fresh = broker.accounts.agencyIds().length === 0;
  const { generatedPassword } = await broker.accounts.bootstrap(config.adminPassword, () => randomBytes(12).toString('base64url'));
  if (generatedPassword) {
    const file = join(config.dataDir, ADMIN_PASSWORD_FILE);
    await writeFile(file, `${generatedPassword}\n`, { mode: 0o600 });
    process.stdout.write(`\nBootstrap platform administrator: admin / ${generatedPassword}\n(also stored in ${file}, mode 0600; set BROKER_ADMIN_PASSWORD to choose it)\n\n`);
  }

  const wantDemo = config.demo === '1' || (config.demo === 'auto' && fresh);
  const seeded = await demoState(broker);
  if (wantDemo && !seeded) {
    const seed = await seedDemo(broker, { simulatorRtmpPort: config.simulatorRtmpPort, cameras: config.demoCameras });
    logger.info({ channels: seed.channels, credentials: seed.credentialsFile }, 'demo data seeded');
  }
  const demo = await demoState(broker);

  rememberForWarmUp();
  const app = await buildApp(broker, config, logger);
  await app.listen({ host: config.host, port: config.port });
  broker.start();
  // A media plane that cannot start stops the broker, as before it listened.
  await broker.mediaStarted;

  // The simulated cameras start once the API answers: it does not need them, and spawning their ffmpeg
  // processes is a third of a second the first answer would otherwise wait for. A stream requested before
  // they publish waits for its source anyway.
  const h265Cameras = demo?.simulated.filter((s) => s.codec === 'h265').length ?? 0;
  const cameras = (demo?.simulated.length ?? 0) - h265Cameras;
  const simulator =
    config.media !== 'none' && cameras + h265Cameras > 0
      ? // Loaded here, after the listener: the simulator's node-media-server is a fifth of a second and ~20 MB of modules.
        import('./media/simulator.js').then(({ startSimulator }) => startSimulator({ cameras, h265Cameras, rtmpPort: demo!.simulatorRtmpPort })).catch((err: unknown) => {
          logger.error({ err }, 'camera simulator failed to start; demo channels will answer SOURCE_UNAVAILABLE');
          return undefined;
        })
      : undefined;

  const gbDevice =
    config.media !== 'none' && broker.gb && demo?.gbDevice
      ? import('./gb28181/demo-device.js').then(({ startDemoGbDevice }) => startDemoGbDevice(demo.gbDevice!, { port: config.gbSipPort, serverId: config.gbServerId })).catch((err: unknown) => {
          logger.error({ err }, 'the simulated GB/T 28181 platform failed to start; its channels stay offline');
          return undefined;
        })
      : undefined;

  const address = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  process.stdout.write(
    [
      `Sharp Eyes broker ready in ${Math.round(performance.now() - startedAt)} ms: ${address}`,
      `  console:  ${address}/          API docs: ${address}/docs`,
      `  log in as admin (password above, or in ${join(config.dataDir, ADMIN_PASSWORD_FILE)} on first start)`,
      demo ? `  demo accounts: ${join(config.dataDir, 'demo-credentials.txt')}; ${demo.simulated.length} channels play simulated cameras (${h265Cameras} of them H.265)` : '',
      demo?.gbDevice && broker.gb ? `  GB/T 28181: SIP on port ${config.gbSipPort}; a simulated lower platform (${demo.gbDevice.id}) registers with a few channels` : '',
      '',
    ]
      .filter((l) => l !== undefined)
      .join('\n'),
  );

  // The routes' schemas compile on first use (http/lazy-compilers.ts); the rest compile now, between requests, so
  // that no first request pays for it.
  compileRemaining().then(
    (compiled) => logger.debug({ compiled }, 'route schemas compiled'),
    (err: unknown) => logger.error({ err }, 'a route schema did not compile'),
  );

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'draining: no new requests, finishing the ones in flight');
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    force.unref();
    // Keep-alive connections go idle once their in-flight request is answered: close them as
    // they do, or the drain would wait for the clients to hang up.
    const idleSweep = setInterval(() => app.server.closeIdleConnections(), 100);
    idleSweep.unref();
    try {
      await app.close();
      clearInterval(idleSweep);
      // The demo's peers first, while the broker still answers them: the simulated platform unregisters over
      // SIP, and a broker whose SIP server had already closed would leave it waiting out its request timeout.
      await (await gbDevice)?.stop();
      await (await simulator)?.stop();
      await broker.close();
      logger.info('stopped');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'unclean shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`sharp-eyes-broker failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
