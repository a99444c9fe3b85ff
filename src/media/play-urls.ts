/**
 * Play URLs handed to clients: `<base>/live/<channelId>.flv?token=…` over HTTP-FLV, and the same path
 * over ws(s):// for WebSocket-FLV (node-media-server serves both on its HTTP port).
 */
import type { PlayUrls } from '../core/ports.js';
import { PLAYBACK_APP } from './player-gate.js';
import { signPlayToken } from './play-token.js';

export function buildPlayUrls(
  publicBaseUrl: string,
  playSecret: string,
  grant: { sessionId: string; channelId: string; nodeId: string; fence: number; expiresAt: number },
): PlayUrls {
  const token = signPlayToken(grant, playSecret);
  const flv = new URL(`${PLAYBACK_APP}/${encodeURIComponent(grant.channelId)}.flv`, withTrailingSlash(publicBaseUrl));
  flv.searchParams.set('token', token);
  const wsFlv = new URL(flv);
  wsFlv.protocol = flv.protocol === 'https:' ? 'wss:' : 'ws:';
  return { flv: flv.toString(), wsFlv: wsFlv.toString() };
}

function withTrailingSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
