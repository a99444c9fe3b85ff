/**
 * `npm run media-node`: one media node process. Configured from the environment; a bad or missing value
 * stops it with a message naming the variable. Prints one JSON line `{"event":"ready",...}` on stdout
 * once it listens (the embedded broker adapter also waits for /healthz). With MEDIA_EXIT_WITH_PARENT=1
 * it stops when its stdin closes, so a broker that dies without cleaning up leaves no media node behind.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createLogger } from '../logging.js';
import { createControlServer } from './control-api.js';
import { MediaNode } from './media-node.js';
import { assertPortFree } from './net-ports.js';
import { mediaNodeConfigFromEnv, type MediaNodeEnvConfig } from './media-node-config.js';

/** BROKER_MEDIA=nodes: announce this node, its reach and its load in Redis every second. */
async function register(config: MediaNodeEnvConfig, node: MediaNode, logger: Logger): Promise<{ stop(): Promise<void> }> {
  // Loaded only here: an embedded node (no Redis) is spared node-redis's quarter second of module loading.
  const [{ createClient }, { startRegistration }] = await Promise.all([import('redis'), import('./node-registry.js')]);
  const redis = createClient({ url: config.redisUrl });
  redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'redis'));
  await redis.connect();
  const instance = randomUUID();
  const registration = await startRegistration(
    redis,
    config.redisPrefix,
    () => {
      const load = node.load();
      return {
        id: config.nodeId,
        instance,
        controlUrl: config.controlUrl,
        baseUrl: config.publicUrl,
        networks: config.networks,
        maxForwards: config.maxForwards,
        forwards: load.forwards,
        players: load.players,
        bytesPerSecond: load.bytesPerSecond,
        maxPlayersPerSession: config.maxPlayersPerSession,
        rtpHost: config.rtpHost,
        at: Date.now(),
      };
    },
    (error) => logger.warn({ err: error.message }, 'registration heartbeat failed'),
  );
  return {
    async stop() {
      await registration.stop();
      await redis.quit();
    },
  };
}

async function main(): Promise<void> {
  const logger = createLogger({ level: process.env.MEDIA_LOG_LEVEL || 'info', base: { service: 'media-node' } });
  let config: MediaNodeEnvConfig;
  try {
    config = mediaNodeConfigFromEnv(process.env);
  } catch (error) {
    logger.fatal((error as Error).message);
    process.exit(2);
  }
  // Last resort: node-media-server runs client-driven code in socket callbacks (nms-guard.ts contains what
  // it can per session). An error that still escapes from NMS's code is logged and the node carries on:
  // one hostile client must not end every agency's streams. Anything else is a bug of ours: exit as usual.
  process.on('uncaughtException', (error: Error) => {
    if (/node-media-server[\\/]src[\\/]/.test(error.stack ?? '')) {
      logger.error({ err: error.message, stack: error.stack }, 'error inside node-media-server contained');
      return;
    }
    logger.fatal({ err: error.message, stack: error.stack }, 'uncaught exception');
    process.exit(1);
  });
  await assertPortFree(config.controlHost, config.controlPort);
  const node = new MediaNode({ ...config, logger });
  await node.start();
  const control = createControlServer(node, config.controlSecret);
  await new Promise<void>((resolve) => control.listen(config.controlPort, config.controlHost, resolve));
  const registration = config.redisUrl ? await register(config, node, logger) : null;
  process.stdout.write(`${JSON.stringify({ event: 'ready', id: config.nodeId, controlPort: config.controlPort })}\n`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'media node stopping');
    control.closeAllConnections();
    control.close();
    Promise.resolve(registration?.stop())
      .catch(() => undefined)
      .then(() => node.stop())
      .then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  if (process.env.MEDIA_EXIT_WITH_PARENT === '1') {
    process.stdin.on('close', () => shutdown('parent-gone'));
    process.stdin.resume();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`media node failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
