/**
 * The media node's control API: plain node:http and JSON, for the broker only. Every route but
 * /healthz needs `Authorization: Bearer <MEDIA_CONTROL_SECRET>`, compared in constant time.
 *
 *   POST   /forwards                      {channelId, sourceUrl, fence} → 200 {…, codec?} once media flows | 504 | 409
 *   DELETE /forwards/:channelId?fence=N   → 200 {result: 'stopped'|'absent'} | 409 stale fence
 *   POST   /transcodes                    {channelId, sessionId?} → 200 {stream} once H.264 plays | 503 TRANSCODE_CAPACITY_EXHAUSTED
 *                                         | 409 NOT_TRANSCODABLE (not H.265) | 409 NO_FORWARD; the session's end releases it
 *   POST   /rtp-servers                   {channelId, fence, transport: 'udp'|'tcp-passive', ssrcPrefix}
 *                                         → 200 {channelId, fence, nodeId, host, port, ssrc} | 409 | 503 (GB/T 28181)
 *   POST   /forwards/:channelId/await     {fence} → 200 once its first picture is published | 504 | 409
 *   GET    /rtp-servers/:channelId        → 200 {port, ssrc, accepted, wrongSsrc, wrongPeer, malformed, lost, …} | 404
 *   POST   /sessions/:sessionId/disconnect {channelId?} → 200 {disconnected}
 *   POST   /sessions/:sessionId/end       {channelId?, userId?, agencyId?} → 200 {disconnected}   (its tokens stop working)
 *   GET    /sessions/:sessionId/players   → 200 {players: PlayerSummary[]}
 *   DELETE /sessions/:sessionId/players/:playerId → 200 {cut: true} | 404
 *   POST   /player-events/claim           → PlayerEventClaim (each event handed out once, player-events.ts)
 *   POST   /players/cut-all               → 200 {cut} (before a planned stop, so the players' ends can be claimed)
 *   GET    /load                          → NodeLoadReport
 *   GET    /healthz                       → {ok, id}
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SourceUnavailableError } from '../core/ports.js';
import { ForwardSupersededError, RtpPortsExhaustedError, StaleFenceError } from './forwards.js';
import { NotTranscodableError, type MediaNode } from './media-node.js';
import { TranscodeCapacityError } from './transcodes.js';
import { isRelaySource } from './relays.js';

/** Control bodies are a few short fields. */
const MAX_BODY_BYTES = 8 * 1024;
/** node-media-server accepts only these characters in a stream name. */
const CHANNEL_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SESSION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const MAX_SOURCE_URL_LENGTH = 2048;
/** NMS connection ids (base_session.js generateRandomId) and the broker's principal / agency ids. */
const PLAYER_ID = /^[A-Za-z0-9]{1,32}$/;
const OWNER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** GB/T 28181 Annex F: `0` live / `1` playback, then digits 4-8 of the realm. */
const SSRC_PREFIX = /^[01][0-9]{5}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message = code,
  ) {
    super(message);
  }
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'PAYLOAD_TOO_LARGE');
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'body must be a JSON object');
  }
}

function onlyFields(body: Record<string, unknown>, allowed: string[]): void {
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw new HttpError(400, 'BAD_REQUEST', `unknown fields: ${unknown.join(', ')}`);
}

function channelIdOf(value: unknown): string {
  if (typeof value !== 'string' || !CHANNEL_ID.test(value)) throw new HttpError(400, 'BAD_REQUEST', 'bad channelId');
  return value;
}

function fenceOf(value: unknown): number {
  const fence = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;
  if (typeof fence !== 'number' || !Number.isSafeInteger(fence) || fence < 0) {
    throw new HttpError(400, 'BAD_REQUEST', 'bad fence');
  }
  return fence;
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'bad path encoding');
  }
}

function sessionIdOf(value: string): string {
  if (!SESSION_ID.test(value)) throw new HttpError(400, 'BAD_REQUEST', 'bad sessionId');
  return value;
}

export function createControlServer(node: MediaNode, controlSecret: string): Server {
  const expectedAuth = sha256(`Bearer ${controlSecret}`);
  const authorized = (req: IncomingMessage) =>
    timingSafeEqual(sha256(req.headers.authorization ?? ''), expectedAuth);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://control');
    const parts = url.pathname.split('/').filter(Boolean).map(decodePathPart);
    const method = req.method ?? 'GET';

    if (method === 'GET' && url.pathname === '/healthz') return send(res, 200, { ok: true, id: node.id });
    if (!authorized(req)) throw new HttpError(401, 'UNAUTHENTICATED');

    if (method === 'GET' && url.pathname === '/load') return send(res, 200, node.load());
    if (method === 'POST' && url.pathname === '/player-events/claim') return send(res, 200, node.claimPlayerEvents());
    if (method === 'POST' && url.pathname === '/players/cut-all') return send(res, 200, { cut: node.cutAllPlayers() });

    if (parts.length >= 3 && parts[0] === 'sessions' && parts[2] === 'players') {
      const sessionId = sessionIdOf(parts[1]);
      if (method === 'GET' && parts.length === 3) return send(res, 200, { players: node.players(sessionId) });
      if (method === 'DELETE' && parts.length === 4) {
        if (!PLAYER_ID.test(parts[3])) throw new HttpError(400, 'BAD_REQUEST', 'bad playerId');
        if (!node.cutPlayer(sessionId, parts[3])) throw new HttpError(404, 'NOT_FOUND');
        return send(res, 200, { cut: true });
      }
    }

    if (method === 'POST' && url.pathname === '/forwards') {
      const body = await readJson(req);
      onlyFields(body, ['channelId', 'sourceUrl', 'fence']);
      const channelId = channelIdOf(body.channelId);
      const fence = fenceOf(body.fence);
      const { sourceUrl } = body;
      if (typeof sourceUrl !== 'string' || sourceUrl.length > MAX_SOURCE_URL_LENGTH || !isRelaySource(sourceUrl)) {
        throw new HttpError(400, 'INVALID_SOURCE', 'sourceUrl must be rtmp://, rtsp:// or http(s)://');
      }
      const { codec } = await node.startForward(channelId, sourceUrl, fence);
      return send(res, 200, { channelId, fence, nodeId: node.id, ...(codec ? { codec } : {}) });
    }

    if (method === 'POST' && url.pathname === '/transcodes') {
      const body = await readJson(req);
      onlyFields(body, ['channelId', 'sessionId']);
      const channelId = channelIdOf(body.channelId);
      if (body.sessionId !== undefined && typeof body.sessionId !== 'string') throw new HttpError(400, 'BAD_REQUEST', 'bad sessionId');
      const sessionId = body.sessionId === undefined ? undefined : sessionIdOf(body.sessionId);
      try {
        return send(res, 200, await node.startTranscode(channelId, sessionId));
      } catch (error) {
        if (error instanceof TranscodeCapacityError) throw new HttpError(503, 'TRANSCODE_CAPACITY_EXHAUSTED', error.message);
        if (error instanceof NotTranscodableError) throw new HttpError(409, error.reason === 'no-forward' ? 'NO_FORWARD' : 'NOT_TRANSCODABLE', error.message);
        throw new HttpError(502, 'TRANSCODE_FAILED', (error as Error).message);
      }
    }

    if (method === 'POST' && url.pathname === '/rtp-servers') {
      const body = await readJson(req);
      onlyFields(body, ['channelId', 'fence', 'transport', 'ssrcPrefix']);
      const channelId = channelIdOf(body.channelId);
      const fence = fenceOf(body.fence);
      const { transport, ssrcPrefix } = body;
      if (transport !== 'udp' && transport !== 'tcp-passive') throw new HttpError(400, 'BAD_REQUEST', 'transport must be udp or tcp-passive');
      if (typeof ssrcPrefix !== 'string' || !SSRC_PREFIX.test(ssrcPrefix)) throw new HttpError(400, 'BAD_REQUEST', 'ssrcPrefix must be 6 digits, the first 0 or 1');
      const server = await node.openRtpServer(channelId, fence, transport, ssrcPrefix);
      return send(res, 200, { channelId, fence, nodeId: node.id, ...server });
    }

    if (method === 'GET' && parts.length === 2 && parts[0] === 'rtp-servers') {
      const stats = node.rtpStats(channelIdOf(parts[1]));
      if (!stats) throw new HttpError(404, 'NOT_FOUND');
      return send(res, 200, stats);
    }

    if (method === 'POST' && parts.length === 3 && parts[0] === 'forwards' && parts[2] === 'await') {
      const body = await readJson(req);
      onlyFields(body, ['fence']);
      const channelId = channelIdOf(parts[1]);
      const fence = fenceOf(body.fence);
      await node.awaitForward(channelId, fence);
      return send(res, 200, { channelId, fence, nodeId: node.id });
    }

    if (method === 'DELETE' && parts.length === 2 && parts[0] === 'forwards') {
      const result = node.stopForward(channelIdOf(parts[1]), fenceOf(url.searchParams.get('fence')));
      return send(res, 200, { result });
    }

    if (method === 'POST' && parts.length === 3 && parts[0] === 'sessions') {
      const sessionId = sessionIdOf(parts[1]);
      const body = await readJson(req);
      if (parts[2] === 'disconnect') {
        onlyFields(body, ['channelId']);
        const channelId = body.channelId === undefined ? undefined : channelIdOf(body.channelId);
        return send(res, 200, { disconnected: node.disconnectSession(sessionId, channelId) });
      }
      if (parts[2] === 'end') {
        onlyFields(body, ['channelId', 'userId', 'agencyId']);
        const { userId, agencyId } = body;
        const owner =
          typeof userId === 'string' && OWNER_ID.test(userId) && typeof agencyId === 'string' && OWNER_ID.test(agencyId) ? { userId, agencyId } : undefined;
        return send(res, 200, { disconnected: node.endSession(sessionId, owner) });
      }
    }
    throw new HttpError(404, 'NOT_FOUND');
  }

  return createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) return;
      if (error instanceof HttpError) return send(res, error.status, { error: error.code, message: error.message });
      if (error instanceof SourceUnavailableError) return send(res, 504, { error: 'SOURCE_UNAVAILABLE' });
      if (error instanceof StaleFenceError) return send(res, 409, { error: 'STALE_FENCE', message: error.message });
      if (error instanceof RtpPortsExhaustedError) return send(res, 503, { error: 'RTP_PORTS_EXHAUSTED', message: error.message });
      if (error instanceof ForwardSupersededError) {
        return send(res, 409, { error: 'FORWARD_SUPERSEDED', message: error.message });
      }
      send(res, 500, { error: 'INTERNAL' });
    });
  });
}
