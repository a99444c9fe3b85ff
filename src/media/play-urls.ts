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
  // A play token is base64url and a dot: nothing in it needs escaping in a query.
  const token = signPlayToken(signed, playSecret);
  const stream = rendition === 'h264' ? `${grant.channelId}${TRANSCODE_SUFFIX}` : grant.channelId;
  const { http, ws } = basesOf(publicBaseUrl);
  const path = `${PLAYBACK_APP}/${encodeURIComponent(stream)}.flv?token=${token}`;
  return { flv: `${http}${path}`, wsFlv: `${ws}${path}` };
}

/** The base URL as WHATWG URL writes it (with a trailing slash), for HTTP and WebSocket; parsed once per base. */
const bases = new Map<string, { http: string; ws: string }>();
function basesOf(publicBaseUrl: string): { http: string; ws: string } {
  let known = bases.get(publicBaseUrl);
  if (known === undefined) {
    const http = new URL(publicBaseUrl);
    http.search = '';
    http.hash = '';
    if (!http.pathname.endsWith('/')) http.pathname = `${http.pathname}/`;
    const ws = new URL(http);
    ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
    known = { http: http.toString(), ws: ws.toString() };
    if (bases.size < 64) bases.set(publicBaseUrl, known);
  }
  return known;
}
