/** Picks the media plane the configuration asks for (BROKER_MEDIA). */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { MediaControl } from '../core/ports.js';
import { createNoneMediaControl } from './media-control-none.js';

export interface MediaSecrets {
  play: string;
  mediaControl: string;
}

export async function createMedia(config: Config, secrets: MediaSecrets, _logger: Logger): Promise<MediaControl> {
  const publicBase = config.publicMediaUrl || `http://127.0.0.1:${config.mediaHttpPort}`;
  switch (config.media) {
    case 'none':
      return createNoneMediaControl({ playSecret: secrets.play, publicBaseUrl: publicBase });
    default:
      throw new Error(`BROKER_MEDIA=${config.media} is not available in this build yet`);
  }
}
