/**
 * BROKER_MEDIA=none: the control plane without relays (load tests, or where another system relays the
 * video). Forwards "start" at once; play URLs are still signed, against the configured public base URL.
 */
import type { MediaControl, MediaNodeLoad, PlayUrls } from '../core/ports.js';
import { buildPlayUrls } from './play-urls.js';

export interface NoneMediaOptions {
  playSecret: string;
  publicBaseUrl: string;
}

const NODE_ID = 'none';

export function createNoneMediaControl(options: NoneMediaOptions): MediaControl {
  return {
    async startForward() {
      return { nodeId: NODE_ID };
    },
    async awaitForward() {},
    async stopForward() {},
    // Nothing relays, so nothing is transcoded: a session asking for H.264 gets the source's URLs.
    async startTranscode() {
      return false;
    },
    async disconnectSession() {},
    async players() {
      return [];
    },
    async cutPlayer() {
      return false;
    },
    onPlayerEvents() {
      // No media node, no players.
    },
    async playUrls(input): Promise<PlayUrls> {
      return buildPlayUrls(options.publicBaseUrl, options.playSecret, { ...input, nodeId: NODE_ID });
    },
    onForwardFailed() {
      // Nothing relays, so nothing can fail.
    },
    onTranscodeFailed() {
      // Nothing transcodes.
    },
    async nodes(): Promise<MediaNodeLoad[]> {
      return [];
    },
    async ready() {
      return true;
    },
    async close() {},
  };
}
