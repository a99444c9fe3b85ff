/**
 * Guards around node-media-server 4.4's internals, installed by the media node (media-node.ts) once per
 * process before NMS runs. NMS trusts its clients in ways a public media port cannot (issue 8):
 *
 * - Names: FlvSession/RtmpSession check the stream name only after the session exists; a bad one closes the
 *   connection but leaves `broadcast` unset, and the next `onPlay`/`onClose` throws outside any handler
 *   (`/live/a.b.flv` took the whole node down). So every HTTP request and WebSocket upgrade is checked here
 *   first: only `GET /live/<stream key>.flv?token=<token>` reaches NMS, the rest is answered 4xx.
 * - Injection: `BroadcastServer.broadcastMessage` is called by every session's `onPacket`, publisher or
 *   not, and a refused session's remaining bytes in the same TCP read are still parsed. So the broadcast
 *   is fenced: its `postPublish` admits only this node's own in-process publisher (flv-publisher.ts, the
 *   one path media enters by), and its `broadcastMessage` drops every call; only the fenced publisher holds
 *   the original. RTMP publishes are refused before NMS answers `NetStream.Publish.Start`, media from an
 *   RTMP session is dropped and ends it, and a refused session's further commands and bytes are discarded.
 * - Robustness: NMS's RTMP parser throws on malformed commands (`new URL(tcUrl)`, a missing stream name, a
 *   short control message) and allocates whatever a chunk header declares. Its parser is wrapped so a throw
 *   ends that connection, messages and chunk streams are bounded, and every NMS session event handler is
 *   wrapped so an error in it is logged and ends that session, never the process.
 * - WebSocket frames: NMS creates its `ws` server without `maxPayload` (100 MiB default); players send
 *   nothing meaningful, so the limit is small (a larger frame closes that socket with 1009).
 * - Backpressure: NMS writes every packet to every player whatever it has not sent yet; a player whose
 *   unsent backlog passes a limit is cut (one that stopped reading made the node buffer without end).
 *   An RTMP connection gets a deadline to reach an admitted play (NMS never times one out).
 * - One encoding per tag: NMS's `broadcastMessage` encodes every packet as an FLV tag and as RTMP chunks
 *   (zeroed allocations both) whoever plays. Audio and video frames take a lean path here (`deliverFrame`):
 *   one FLV tag per packet, RTMP chunks only while an RTMP player is there, the RTMP GOP cache made from the
 *   FLV one when an RTMP player joins; headers and metadata (rare) still go through NMS's own code.
 * - Write batching: NMS writes each packet to each FLV player as it comes (a syscall per tag per player);
 *   an FLV player's packets are gathered and written together once per media tick (media-tick.ts), right
 *   after the tick's relay reads; its first ones (headers, GOP cache) at once.
 *
 * NMS 4.4 defines its methods as instance fields (arrow functions assigned in constructors), not on
 * prototypes, so most of these hooks attach per instance: broadcasts when NMS registers them in
 * `Context.broadcasts`, sessions when it registers them in `Context.sessions` (right after `run()`, before
 * any of their socket data is read). The RTMP parser's methods are real prototype methods.
 * This is coupled to NMS's source: the version is pinned exactly in package.json (see media-node.ts).
 * @see node_modules/node-media-server/src/server/http_server.js, session/flv_session.js,
 *   session/rtmp_session.js, server/broadcast_server.js, protocol/rtmp.js, core/context.js
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { NmsSession } from 'node-media-server';
import type { Logger } from 'pino';
import { PLAYBACK_APP } from './player-gate.js';
import { PLAYER_KEEPALIVE_MS, PLAYER_REQUEST_TIMEOUT_MS } from './media-node-config.js';
import { afterNextTickReads } from './media-tick.js';

const nmsRequire = createRequire(import.meta.url);

/** The fields of NMS's AVPacket (core/avpacket.js) a broadcast reads. */
export interface NmsPacket {
  codec_id: number;
  codec_type: number;
  flags: number;
  pts: number;
  dts: number;
  size: number;
  data: Buffer;
}

/** The slice of NMS's BroadcastServer the guard and the in-process publisher touch. */
export interface NmsBroadcastServer {
  streamPath: string;
  publisher: NmsSession | null;
  subscribers: Map<string, NmsSession & NmsSessionInternals>;
  flvGopCache: Set<Buffer> | null;
  rtmpGopCache: Set<Buffer> | null;
  _lastDts: Record<number, number>;
  _dtsOffset: Record<number, number>;
  postPlay: (session: NmsSession) => string | null;
  postPublish: (session: NmsSession) => string | null;
  donePublish: (session: NmsSession) => void;
  broadcastMessage: (packet: NmsPacket) => void;
}

interface NmsContext {
  broadcasts: Map<string, NmsBroadcastServer>;
  sessions: Map<string, NmsSession>;
  networkStats: { inBytes: number; outBytes: number };
}

interface RtmpParser {
  parserPacket: { header: { length: number; type: number } };
  inPackets: Map<number, unknown>;
  inChunkSize: number;
  onConnectCallback: (...args: unknown[]) => void;
  onPlayCallback: (...args: unknown[]) => void;
  onPushCallback: (...args: unknown[]) => void;
  onPacketCallback: (...args: unknown[]) => void;
}

interface RtmpPrototype {
  parserData(this: RtmpParser, buffer: Buffer): string | null;
  packetAlloc(this: RtmpParser): void;
  packetParse(this: RtmpParser): void;
  controlHandler(this: RtmpParser): void;
  onPublish(this: RtmpParser, invokeMessage: unknown): void;
}

/** NMS session fields beyond the public typing: its protocol parsers and its own event handlers. */
interface NmsSessionInternals {
  sendBuffer?: (buffer: Buffer) => void;
  rtmp?: RtmpParser;
  flv?: { parserData: (buffer: Buffer) => string | null };
  onData?: (...args: unknown[]) => void;
  onClose?: (...args: unknown[]) => void;
  onError?: (...args: unknown[]) => void;
}

export const nmsContext = nmsRequire('node-media-server/src/core/context.js') as NmsContext;
const BroadcastServer = nmsRequire('node-media-server/src/server/broadcast_server.js') as new (path: string) => NmsBroadcastServer;
const Rtmp = nmsRequire('node-media-server/src/protocol/rtmp.js') as { prototype: RtmpPrototype; createMessage(packet: NmsPacket): Buffer };

/** The only play request a media port serves. Stream keys are what control-api.ts accepts as channel ids. */
const PLAY_PATH = new RegExp(`^/${PLAYBACK_APP}/[A-Za-z0-9_-]{1,64}\\.flv$`);
/** Play tokens are base64url + "." (play-token.ts); anything else is not one of ours. */
const PLAY_QUERY = /^token=[A-Za-z0-9_.-]{1,1024}$/;
/** Players send only connect/createStream/play and control messages; none comes near this. */
const MAX_RTMP_MESSAGE_BYTES = 64 * 1024;
/** Chunk streams one RTMP connection may open (a player uses three or four). */
const MAX_RTMP_CHUNK_STREAMS = 16;
/** An RTMP connection has this long from accept to an admitted play; NMS itself never times one out. */
export const RTMP_PLAY_DEADLINE_MS = 10_000;
const MIN_RTMP_CHUNK_SIZE = 1;
const MAX_RTMP_CHUNK_SIZE = 0xffffff;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
};

export interface Refusal {
  status: 400 | 401 | 404 | 405;
  code: string;
  message: string;
}

/**
 * Whether a request to the media port is a play NMS may see: `GET /live/<key>.flv?token=<token>`, no body,
 * no WebSocket subprotocol (NMS reads "post"/"publisher" as a publish). Checked on the raw `req.url`, so
 * %-encoding, dots, spaces and traversals never reach NMS's own parsing.
 */
export function checkPlayRequest(req: IncomingMessage, upgrade: boolean): Refusal | null {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q + 1);
  if (!PLAY_PATH.test(path)) return { status: 404, code: 'NOT_FOUND', message: 'no such stream' };
  if (req.method !== 'GET') return { status: 405, code: 'METHOD_NOT_ALLOWED', message: 'only GET plays' };
  const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
  if (hasBody) return { status: 400, code: 'BAD_REQUEST', message: 'a play has no body' };
  if (upgrade && req.headers['sec-websocket-protocol'] !== undefined) {
    return { status: 400, code: 'BAD_REQUEST', message: 'no WebSocket subprotocol is served' };
  }
  if (query === '') return { status: 401, code: 'UNAUTHENTICATED', message: 'token required' };
  if (!PLAY_QUERY.test(query)) return { status: 400, code: 'BAD_REQUEST', message: 'the query is one token' };
  return null;
}

function isPlayPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?', 1)[0];
  return PLAY_PATH.test(path);
}

/**
 * A browser's CORS preflight for a play URL (consoles on another origin), answered here as NMS's cors()
 * middleware would, so it never reaches NMS's route (which treats any method as a session).
 */
function answerPreflight(req: IncomingMessage, res: ServerResponse): void {
  const requested = req.headers['access-control-request-headers'];
  res.writeHead(204, {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET',
    ...(typeof requested === 'string' && /^[A-Za-z0-9, -]{1,256}$/.test(requested) ? { 'access-control-allow-headers': requested } : {}),
    vary: 'Access-Control-Request-Headers',
    'content-length': 0,
  });
  res.end();
}

function refusalBody(refusal: Refusal): string {
  return JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
}

function refuseRequest(res: ServerResponse, refusal: Refusal): void {
  const body = refusalBody(refusal);
  res.writeHead(refusal.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body, () => res.socket?.destroy());
}

function refuseUpgrade(socket: Duplex, refusal: Refusal): void {
  const body = refusalBody(refusal);
  socket.on('error', () => undefined);
  socket.end(
    `HTTP/1.1 ${refusal.status} ${REASONS[refusal.status]}\r\nConnection: close\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/** Sessions whose connection this node refused or ended: whatever else they sent is discarded. */
const silenced = new WeakSet<object>();
/** The in-process publishers (flv-publisher.ts): the only sessions a broadcast admits as publisher. */
const ownPublishers = new WeakSet<object>();
/** RTMP parsers that threw or refused: their connection is ended and never parsed again. */
const brokenParsers = new WeakSet<object>();
/** The original `broadcastMessage` of each fenced broadcast, reachable only through `openFencedBroadcast`. */
const deliveries = new WeakMap<NmsBroadcastServer, (packet: NmsPacket, encoded?: Buffer) => void>();

let installedLogger: Logger | null = null;
let maxPlayerBacklogBytes = Number.POSITIVE_INFINITY;

/** From now on the session's commands and media are ignored (its connection is being closed). */
export function silence(session: NmsSession): void {
  silenced.add(session);
}

function endConnection(session: NmsSession): void {
  silenced.add(session);
  const { res, req, socket } = session;
  if (socket) socket.destroy();
  else if (req) req.socket.destroy();
  else if (res && 'terminate' in res) res.terminate();
}

/** NMS's packet flags (flv.js parserTag): audio frame, video keyframe, video inter frame. */
const FLAG_AUDIO_FRAME = 1;
const FLAG_KEYFRAME = 3;
const FLAG_INTER_FRAME = 4;
/** broadcast_server.js drops a GOP cache past this many packets. */
const MAX_GOP_PACKETS = 4096;

/** An FLV tag (header, body, PreviousTagSize) for `packet`, as flv.js createMessage but not zero-filled first. */
function flvTagOf(packet: NmsPacket): Buffer {
  const tag = Buffer.allocUnsafe(11 + packet.size + 4);
  packet.data.copy(tag, 11, 0, packet.size);
  return stampFlvTag(tag, packet);
}

/** Writes `packet`'s tag header and PreviousTagSize around the body already at `tag[11..]`. */
function stampFlvTag(tag: Buffer, packet: NmsPacket): Buffer {
  const { size, dts } = packet;
  tag[0] = packet.codec_type;
  tag.writeUIntBE(size, 1, 3);
  tag[4] = (dts >> 16) & 0xff;
  tag[5] = (dts >> 8) & 0xff;
  tag[6] = dts & 0xff;
  tag[7] = (dts >> 24) & 0xff;
  tag[8] = 0;
  tag[9] = 0;
  tag[10] = 0;
  tag.writeUInt32BE(11 + size, 11 + size);
  return tag;
}

/** The packet an FLV tag of the GOP cache holds (for RTMP players, who get RTMP chunks of it). */
function packetOfFlvTag(tag: Buffer): NmsPacket {
  const size = tag.readUIntBE(1, 3);
  const dts = ((tag[4]! << 16) | (tag[5]! << 8) | tag[6]! | (tag[7]! << 24)) >>> 0;
  return { codec_id: 0, codec_type: tag[0]!, flags: 0, pts: dts, dts, size, data: tag.subarray(11, 11 + size) };
}

/**
 * What NMS's `broadcastMessage` does with an audio or video frame (timeline offset of a resumed publish,
 * GOP cache, fan-out), with one FLV encoding and RTMP chunks only for RTMP players (see the header).
 * `encoded`, when the publisher has it, is room for the whole tag with `packet.data` already at offset 11
 * (flv-publisher.ts `FlvTagSlab`): its header is written in place, and the body is not copied again.
 */
function deliverFrame(broadcast: NmsBroadcastServer, packet: NmsPacket, encoded: Buffer | undefined): void {
  const offset = broadcast._dtsOffset[packet.codec_type] || 0;
  if (offset > 0) {
    packet.dts += offset;
    packet.pts += offset;
  }
  broadcast._lastDts[packet.codec_type] = packet.dts;
  const flv = encoded !== undefined ? stampFlvTag(encoded, packet) : flvTagOf(packet);
  if (packet.flags === FLAG_KEYFRAME) broadcast.flvGopCache = new Set([flv]);
  else broadcast.flvGopCache?.add(flv);
  // Made from the FLV cache when an RTMP player joins (fenced postPlay).
  broadcast.rtmpGopCache = null;
  if (broadcast.flvGopCache && broadcast.flvGopCache.size > MAX_GOP_PACKETS) broadcast.flvGopCache.clear();
  let rtmp: Buffer | null = null;
  for (const session of broadcast.subscribers.values()) {
    if (session.protocol === 'flv') session.sendBuffer?.(flv);
    else if (session.protocol === 'rtmp') session.sendBuffer?.((rtmp ??= Rtmp.createMessage(packet)));
  }
}

function fence(broadcast: NmsBroadcastServer): void {
  if (deliveries.has(broadcast)) return;
  const postPublish = broadcast.postPublish;
  const postPlay = broadcast.postPlay;
  const broadcastMessage = broadcast.broadcastMessage;
  deliveries.set(broadcast, (packet, encoded) => {
    const { flags } = packet;
    if (flags === FLAG_AUDIO_FRAME || flags === FLAG_KEYFRAME || flags === FLAG_INTER_FRAME) deliverFrame(broadcast, packet, encoded);
    else broadcastMessage(packet);
  });
  broadcast.postPlay = (session) => {
    if (session.protocol === 'rtmp' && broadcast.flvGopCache) {
      broadcast.rtmpGopCache = new Set([...broadcast.flvGopCache].map((tag) => Rtmp.createMessage(packetOfFlvTag(tag))));
    }
    return postPlay(session);
  };
  broadcast.postPublish = (session) => {
    if (ownPublishers.has(session)) return postPublish(session);
    installedLogger?.warn({ ip: session.ip, path: session.streamPath, protocol: session.protocol }, 'publish refused');
    endConnection(session);
    return 'publishing into this media node is refused';
  };
  // NMS calls this from every session's onPacket, players included: no caller but the fenced publisher counts.
  broadcast.broadcastMessage = () => undefined;
}

/** Context.broadcasts that fences each broadcast as NMS registers it. */
class FencedBroadcasts extends Map<string, NmsBroadcastServer> {
  override set(path: string, broadcast: NmsBroadcastServer): this {
    fence(broadcast);
    return super.set(path, broadcast);
  }
}

/** A publish slot on one stream path, held by the in-process publisher. */
export interface FencedBroadcast {
  readonly broadcast: NmsBroadcastServer;
  /**
   * `encoded`: optional room for the packet's whole FLV tag, `packet.data` being its view at offset 11 and the
   * tag exactly 15 bytes longer; frames then go out without another copy (the header is written into it).
   */
  deliver(packet: NmsPacket, encoded?: Buffer): void;
  /** Ends the publish (NMS keeps it resumable for its grace window, like a dropped RTMP publisher). */
  release(): void;
}

/**
 * Claims `streamPath` for `session`, an in-process publisher; throws if another publisher holds it.
 * The returned `deliver` is the only way a packet reaches the path's viewers.
 */
export function openFencedBroadcast(streamPath: string, session: NmsSession): FencedBroadcast {
  if (installedLogger === null) throw new Error('nms-guard is not installed');
  const broadcast = nmsContext.broadcasts.get(streamPath) ?? new BroadcastServer(streamPath);
  nmsContext.broadcasts.set(streamPath, broadcast);
  const deliver = deliveries.get(broadcast);
  if (!deliver) throw new Error(`broadcast ${streamPath} is not fenced`);
  ownPublishers.add(session);
  const error = broadcast.postPublish(session);
  if (error !== null) {
    ownPublishers.delete(session);
    throw new Error(error);
  }
  let released = false;
  return {
    broadcast,
    deliver(packet, encoded) {
      if (released || broadcast.publisher !== session) return;
      deliver(packet, encoded);
    },
    release() {
      if (released) return;
      released = true;
      broadcast.donePublish(session);
      ownPublishers.delete(session);
    },
  };
}

/** Runs an NMS handler; an error in it is logged and ends that session instead of the process. */
function guarded(session: NmsSession, event: string, handler: (...args: unknown[]) => void): (...args: unknown[]) => void {
  return (...args) => {
    try {
      handler(...args);
    } catch (error) {
      installedLogger?.error({ err: (error as Error).message, event, protocol: session.protocol, ip: session.ip }, 'media session handler failed');
      try {
        endConnection(session);
      } catch {
        // Nothing more to end.
      }
    }
  };
}

/** Moves NMS's own listener `handler` of `event` behind `guarded`. */
function rewrap(
  emitter: EventEmitter | undefined,
  event: string,
  session: NmsSession,
  handler: ((...args: unknown[]) => void) | undefined,
): void {
  if (!emitter || !handler) return;
  emitter.removeListener(event, handler);
  emitter.on(event, guarded(session, event, handler));
}

/**
 * NMS writes every packet to every player without looking at backpressure, so a player that stops reading
 * would have the node buffer the live stream for it without end. Past the limit, that player is cut.
 */
function boundBacklog(session: NmsSession & NmsSessionInternals, socket: { writableLength: number } | undefined): void {
  const send = session.sendBuffer;
  if (!send || !socket) return;
  session.sendBuffer = (buffer) => {
    if (silenced.has(session)) return;
    if (socket.writableLength > maxPlayerBacklogBytes) {
      installedLogger?.info({ ip: session.ip, path: session.streamPath, backlog: socket.writableLength }, 'player too slow; cut');
      endConnection(session);
      return;
    }
    send(buffer);
  };
}

/** An FLV player's packets not yet written: flushed together (see `batchWrites`). */
interface PendingWrites {
  session: NmsSession & NmsSessionInternals;
  socket: { writableLength: number };
  send: (buffer: Buffer) => void;
  buffers: Buffer[];
  bytes: number;
  /** Until its first flush, a player's writes go out on the next turn of the event loop (first frame). */
  started: boolean;
}

/** Players with writes pending, flushed together after the next media tick's reads. */
const pendingPlayers = new Set<PendingWrites>();

/**
 * A tick's writes to a player are joined in a view of a shared slab, not a new ArrayBuffer each (one per
 * player per tick was the largest allocation left): the socket is done with it when the write completes,
 * which it does at once when the player has no backlog. Only then is the slab used, so a player turning
 * slow pins one slab at most; a player with a backlog, or a batch too large, gets its own buffer.
 */
const WRITE_SLAB_BYTES = 256 * 1024;
let writeSlab = Buffer.allocUnsafeSlow(WRITE_SLAB_BYTES);
let writeSlabOffset = 0;

function joinWrites(buffers: Buffer[], bytes: number, backlog: number): Buffer {
  if (backlog > 0 || bytes > WRITE_SLAB_BYTES / 8) return Buffer.concat(buffers, bytes);
  if (writeSlabOffset + bytes > WRITE_SLAB_BYTES) {
    writeSlab = Buffer.allocUnsafeSlow(WRITE_SLAB_BYTES);
    writeSlabOffset = 0;
  }
  const joined = writeSlab.subarray(writeSlabOffset, writeSlabOffset + bytes);
  let offset = 0;
  for (const buffer of buffers) offset += buffer.copy(joined, offset);
  writeSlabOffset += (bytes + 7) & ~7;
  return joined;
}

function flushPlayer(pending: PendingWrites): void {
  pendingPlayers.delete(pending);
  const { buffers, bytes } = pending;
  if (buffers.length === 0) return;
  pending.buffers = [];
  pending.bytes = 0;
  pending.started = true;
  if (silenced.has(pending.session)) return;
  if (pending.socket.writableLength > maxPlayerBacklogBytes) {
    installedLogger?.info({ ip: pending.session.ip, path: pending.session.streamPath, backlog: pending.socket.writableLength }, 'player too slow; cut');
    endConnection(pending.session);
    return;
  }
  try {
    pending.send(buffers.length === 1 ? buffers[0]! : joinWrites(buffers, bytes, pending.socket.writableLength));
  } catch (error) {
    installedLogger?.error({ err: (error as Error).message, path: pending.session.streamPath }, 'player write failed');
    endConnection(pending.session);
  }
}

function flushPlayers(): void {
  for (const pending of [...pendingPlayers]) flushPlayer(pending);
}

/**
 * An FLV player's packets are gathered and written in one buffer per media tick (one write per player per
 * tick instead of one per tag); the backlog bound counts what is gathered too. A player's first
 * writes (FLV header, sequence headers, GOP cache) are flushed on the next turn of the event loop.
 */
function batchWrites(session: NmsSession & NmsSessionInternals, socket: { writableLength: number } | undefined): void {
  const send = session.sendBuffer;
  if (!send || !socket) return;
  const pending: PendingWrites = { session, socket, send, buffers: [], bytes: 0, started: false };
  session.sendBuffer = (buffer) => {
    if (silenced.has(session)) return;
    // What a joiner is sent at once (headers, the GOP cache) is gathered before its first flush: it is not a
    // backlog, and counting it cut every player that joined late in a long GOP under a small limit. From the
    // first flush on, what waits for the tick counts with what the kernel has not taken.
    const backlog = socket.writableLength + (pending.started ? pending.bytes : 0);
    if (backlog > maxPlayerBacklogBytes) {
      installedLogger?.info({ ip: session.ip, path: session.streamPath, backlog }, 'player too slow; cut');
      pending.buffers = [];
      pending.bytes = 0;
      endConnection(session);
      return;
    }
    pending.buffers.push(buffer);
    pending.bytes += buffer.length;
    if (pendingPlayers.has(pending)) return;
    pendingPlayers.add(pending);
    if (!pending.started) setImmediate(() => flushPlayer(pending));
    else afterNextTickReads(flushPlayers);
  };
}

function hardenRtmpSession(session: NmsSession & NmsSessionInternals): void {
  const rtmp = session.rtmp;
  if (!rtmp) return;
  boundBacklog(session, session.socket);
  const ignoreWhenSilenced = (name: 'onConnectCallback') => {
    const callback = rtmp[name];
    rtmp[name] = (...args) => {
      if (!silenced.has(session)) callback(...args);
    };
  };
  ignoreWhenSilenced('onConnectCallback');
  const onPlay = rtmp.onPlayCallback;
  rtmp.onPlayCallback = (...args) => {
    if (silenced.has(session)) return;
    onPlay(...args);
    // Admitted (a refusal silences it first): from now on media flows to it, its pace is the stream's.
    if (!silenced.has(session)) session.socket?.setTimeout(0);
  };
  session.socket?.setTimeout(RTMP_PLAY_DEADLINE_MS, () => {
    installedLogger?.info({ ip: session.ip }, 'RTMP connection did not play in time');
    endConnection(session);
  });
  // RTMP carries no publisher into this node (Rtmp.prototype.onPublish refuses first); belt and braces.
  rtmp.onPushCallback = () => endConnection(session);
  rtmp.onPacketCallback = () => {
    if (silenced.has(session)) return;
    installedLogger?.warn({ ip: session.ip, path: session.streamPath }, 'media from an RTMP player dropped; session ended');
    endConnection(session);
  };
  const socket = session.socket;
  const onData = session.onData;
  if (socket && onData) {
    socket.removeListener('data', onData);
    const safe = guarded(session, 'data', onData);
    socket.on('data', (chunk: Buffer) => {
      // A refused or broken session's later reads are not parsed at all.
      if (!silenced.has(session) && !brokenParsers.has(rtmp)) safe(chunk);
      if (silenced.has(session) || brokenParsers.has(rtmp)) socket.destroy();
    });
  }
  rewrap(socket, 'close', session, session.onClose);
  rewrap(socket, 'error', session, session.onError);
}

function hardenFlvSession(session: NmsSession & NmsSessionInternals): void {
  // Players send nothing meaningful; NMS would feed it to an FLV parser that allocates what a tag declares.
  if (session.flv) session.flv.parserData = () => null;
  const { res, req } = session;
  // HTTP-FLV and WS-FLV both write through the request's socket.
  batchWrites(session, req?.socket);
  if (res && 'terminate' in res) {
    rewrap(res, 'message', session, session.onData);
    rewrap(res, 'close', session, session.onClose);
    rewrap(res, 'error', session, session.onError);
  } else if (req) {
    rewrap(req, 'data', session, session.onData);
    rewrap(req, 'error', session, session.onError);
    rewrap(req.socket, 'close', session, session.onClose);
  }
}

/** Context.sessions that hardens each session as NMS registers it (after `run()`, before any data). */
class HardenedSessions extends Map<string, NmsSession> {
  override set(id: string, session: NmsSession): this {
    if (!super.has(id)) {
      const internals = session as NmsSession & NmsSessionInternals;
      if (session.protocol === 'rtmp') hardenRtmpSession(internals);
      else if (session.protocol === 'flv') hardenFlvSession(internals);
    }
    return super.set(id, session);
  }
}


/** A refusal of ours thrown inside NMS's RTMP parser (already logged). */
class RtmpRefused extends Error {}

function hardenRtmpParser(): void {
  const proto = Rtmp.prototype;
  const { parserData, packetAlloc, packetParse, controlHandler } = proto;
  proto.parserData = function guardedParserData(buffer) {
    if (brokenParsers.has(this)) return 'connection refused';
    try {
      return parserData.call(this, buffer);
    } catch (error) {
      brokenParsers.add(this);
      if (!(error instanceof RtmpRefused)) installedLogger?.info({ err: (error as Error).message }, 'malformed RTMP input');
      return `rtmp input refused: ${(error as Error).message}`;
    }
  };
  proto.packetAlloc = function boundedPacketAlloc() {
    const { length } = this.parserPacket.header;
    if (length > MAX_RTMP_MESSAGE_BYTES) throw new Error(`RTMP message of ${length} bytes`);
    packetAlloc.call(this);
  };
  proto.packetParse = function boundedPacketParse() {
    packetParse.call(this);
    if (this.inPackets.size > MAX_RTMP_CHUNK_STREAMS) throw new Error('too many RTMP chunk streams');
  };
  proto.controlHandler = function checkedControlHandler() {
    controlHandler.call(this);
    const size = this.inChunkSize;
    if (!Number.isInteger(size) || size < MIN_RTMP_CHUNK_SIZE || size > MAX_RTMP_CHUNK_SIZE) {
      throw new Error(`RTMP chunk size ${size}`);
    }
  };
  // Before NMS answers NetStream.Publish.Start: nothing publishes into a media node over RTMP.
  proto.onPublish = function refusedPublish() {
    installedLogger?.warn({}, 'RTMP publish refused');
    throw new RtmpRefused('RTMP publish refused');
  };
}

/** Puts `check` in front of every `event` listener NMS (and ws) attached to `server`. */
function gateListeners(server: Server, event: 'request' | 'upgrade', check: (...args: never[]) => boolean): void {
  const listeners = server.listeners(event) as Array<(...args: unknown[]) => void>;
  server.removeAllListeners(event);
  server.on(event, (...args: unknown[]) => {
    if (!(check as (...a: unknown[]) => boolean)(...args)) return;
    for (const listener of listeners) listener.apply(server, args);
  });
}

let installed = false;

export interface NmsGuardOptions {
  logger: Logger;
  /** NMS's HTTP-FLV / WS-FLV server (`nms.httpServer`), constructed but not yet listening. */
  httpServer: { httpServer?: Server; wsServer?: { options: { maxPayload?: number } } };
  wsMaxPayloadBytes: number;
  /** Unsent bytes a player may fall behind by before it is cut. */
  playerMaxBacklogBytes: number;
  /** Open playback connections at once; beyond it Node drops new ones. */
  playerMaxConnections: number;
}

/** Installs every guard; once per process, after `new NodeMediaServer()` and before `run()`. */
export function installNmsGuard(options: NmsGuardOptions): void {
  if (installed) throw new Error('nms-guard is installed once per process');
  installed = true;
  installedLogger = options.logger;
  maxPlayerBacklogBytes = options.playerMaxBacklogBytes;
  const { httpServer, wsServer } = options.httpServer;
  if (!httpServer || !wsServer) throw new Error('node-media-server has no HTTP server to guard');
  // ws reads maxPayload from its options at every upgrade.
  wsServer.options.maxPayload = options.wsMaxPayloadBytes;
  // Bounded connection time and count, as on the broker's port (issue 8 point 8): a play request must
  // arrive promptly; a silent or trickling one is cut. Upgraded sockets leave these behind.
  httpServer.headersTimeout = PLAYER_REQUEST_TIMEOUT_MS;
  httpServer.requestTimeout = PLAYER_REQUEST_TIMEOUT_MS;
  httpServer.keepAliveTimeout = PLAYER_KEEPALIVE_MS;
  httpServer.maxConnections = options.playerMaxConnections;
  gateListeners(httpServer, 'request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'OPTIONS' && isPlayPath(req.url)) {
      answerPreflight(req, res);
      return false;
    }
    const refusal = checkPlayRequest(req, false);
    if (refusal) refuseRequest(res, refusal);
    return refusal === null;
  });
  gateListeners(httpServer, 'upgrade', (req: IncomingMessage, socket: Duplex) => {
    const refusal = checkPlayRequest(req, true);
    if (refusal) refuseUpgrade(socket, refusal);
    return refusal === null;
  });

  const broadcasts = new FencedBroadcasts();
  for (const [path, broadcast] of nmsContext.broadcasts) broadcasts.set(path, broadcast);
  nmsContext.broadcasts = broadcasts;
  const sessions = new HardenedSessions();
  for (const [id, session] of nmsContext.sessions) sessions.set(id, session);
  nmsContext.sessions = sessions;
  hardenRtmpParser();
}
