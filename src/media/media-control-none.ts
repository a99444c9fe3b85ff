/**
 * BROKER_MEDIA=none: the control plane without relays — slots, tokens and audit still work, play
 * URLs are still signed (for another system that relays the video, or for load tests).
 */
import type { MediaControl, MediaNodeLoad, PlayUrls } from '../core/ports.js';
import { signPlayToken } from './play-token.js';

export const NONE_NODE_ID = 'none';

export class NoMediaControl implements MediaControl {
  constructor(
    private readonly playSecret: string,
    /** Base of play URLs, e.g. http://media.example:8000 (the ws:// form is derived). */
    private readonly publicBaseUrl: string,
  ) {}

  async startForward(): Promise<{ nodeId: string }> {
    return { nodeId: NONE_NODE_ID };
  }

  async stopForward(): Promise<void> {}

  async disconnectSession(): Promise<void> {}

  async playUrls(input: { sessionId: string; channelId: string; fence: number; expiresAt: number }): Promise<PlayUrls> {
    return playUrlsFor(this.publicBaseUrl, NONE_NODE_ID, this.playSecret, input);
  }

  onForwardFailed(): void {}

  async nodes(): Promise<MediaNodeLoad[]> {
    return [];
  }

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}
}

/** `<base>/live/<channel>.flv?token=…` over HTTP and the same path over WebSocket. */
export function playUrlsFor(
  baseUrl: string,
  nodeId: string,
  secret: string,
  input: { sessionId: string; channelId: string; fence: number; expiresAt: number },
): PlayUrls {
  const token = signPlayToken({ sessionId: input.sessionId, channelId: input.channelId, nodeId, fence: input.fence, expiresAt: input.expiresAt }, secret);
  const base = baseUrl.replace(/\/+$/, '');
  const path = `/live/${input.channelId}.flv?token=${encodeURIComponent(token)}`;
  return { flv: `${base}${path}`, wsFlv: `${base.replace(/^http/, 'ws')}${path}` };
}
