/**
 * Play URLs handed to clients: `<base>/live/<channelId>.flv?token=…` over HTTP-FLV, and the same path
 * over ws(s):// for WebSocket-FLV (node-media-server serves both on its HTTP port). A session that plays the
 * channel's H.264 transcode gets `<channelId>_h264` with the same token: it is bound to the channel, so it
 * opens that channel's renditions only (player-gate.ts).
 */
import type { PlayUrls } from '../core/ports.js';
import { PLAYBACK_APP, TRANSCODE_SUFFIX } from './player-gate.js';
import { signPlayToken } from './play-token.js';

export function buildPlayUrls(
  publicBaseUrl: string,
  playSecret: string,
  grant: { sessionId: string; channelId: string; nodeId: string; fence: number; expiresAt: number; rendition?: 'h264' },
): PlayUrls {
  const { rendition, ...signed } = grant;
  const token = signPlayToken(signed, playSecret);
  const stream = rendition === 'h264' ? `${grant.channelId}${TRANSCODE_SUFFIX}` : grant.channelId;
  const flv = new URL(`${PLAYBACK_APP}/${encodeURIComponent(stream)}.flv`, withTrailingSlash(publicBaseUrl));
  flv.searchParams.set('token', token);
  const wsFlv = new URL(flv);
  wsFlv.protocol = flv.protocol === 'https:' ? 'wss:' : 'ws:';
  return { flv: flv.toString(), wsFlv: wsFlv.toString() };
}

function withTrailingSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
