/** Picks the media plane the configuration asks for (BROKER_MEDIA). */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { MediaControl } from '../core/ports.js';
import { createEmbeddedMediaControl } from './media-control-embedded.js';
import { createNoneMediaControl } from './media-control-none.js';

export interface MediaSecrets {
  play: string;
  /** Control API secret shared with the city's media nodes (BROKER_MEDIA=nodes). */
  mediaControl: string;
}

export async function createMedia(config: Config, secrets: MediaSecrets, logger: Logger): Promise<MediaControl> {
  const publicBase = config.publicMediaUrl || `http://127.0.0.1:${config.mediaHttpPort}`;
  const sourceTimeoutMs = config.sourceTimeoutSeconds * 1000;
  switch (config.media) {
    case 'none':
      return createNoneMediaControl({ playSecret: secrets.play, publicBaseUrl: publicBase });
    case 'embedded':
      return createEmbeddedMediaControl({
        rtmpPort: config.mediaRtmpPort,
        httpPort: config.mediaHttpPort,
        controlPort: config.mediaControlPort || undefined,
        sourceTimeoutMs,
        playSecret: secrets.play,
        publicBaseUrl: config.publicMediaUrl || undefined,
        maxForwards: config.forwardingSlots,
        maxPlayersPerSession: config.maxPlayersPerSession,
        maxTranscodes: config.mediaMaxTranscodes,
        logger,
      });
    case 'nodes': {
      // Loaded only for this plane: node-redis costs the embedded and `none` planes a quarter of a second at start.
      const [{ createClient }, { createNodesMediaControl }] = await Promise.all([import('redis'), import('./media-control-nodes.js')]);
      const redis = createClient({ url: config.redisUrl });
      redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'media registry redis'));
      await redis.connect();
      const media = await createNodesMediaControl({
        redis,
        prefix: `${config.redisPrefix}:`,
        controlSecret: secrets.mediaControl,
        playSecret: secrets.play,
        sourceTimeoutMs,
        maxPlayersPerSession: config.maxPlayersPerSession,
        logger,
      });
      return {
        ...media,
        async close() {
          await media.close();
          await redis.quit();
        },
      };
    }
  }
}
