/**
 * A media node: one node-media-server 4.x instance (it keeps global state, so one per process) that
 * publishes what its in-process relays pull (relays.ts) and serves HTTP-FLV / WebSocket-FLV to players holding a play
 * token. The broker drives it over the control API (control-api.ts).
 *
 * NMS defaults that are unsafe here are turned off: bind 0.0.0.0 (we bind the configured host), the web
 * admin and its JWT API with default secrets (not configured → not mounted), NMS's md5 URL signing (our
 * own HMAC tokens instead), auto-recording, and its store's SIGINT/SIGTERM handlers (which exit the
 * process under the owner's feet).
 *
 * NMS itself is not safe on a public port (issue 8): a malformed stream name crashed it, any session's
 * packets were broadcast, its WebSocket frames were unbounded. nms-guard.ts validates every request before
 * NMS sees it, fences each broadcast so only this node's in-process publisher (flv-publisher.ts) reaches
 * viewers, refuses every RTMP and FLV publish, and contains errors in NMS's session handlers. Relays
 * run in this process and publish through flv-publisher.ts, so the RTMP port serves RTMP players only.
 *
 * Those guards patch NMS internals (instance fields, `Context`, the RTMP parser's prototype), so
 * node-media-server is pinned to the exact version they were written against (package.json "4.4.3", no
 * caret): an upgrade must re-read node_modules/node-media-server/src and re-run test/security/media-*.
 * @see node_modules/node-media-server/src/index.js, src/server/http_server.js, src/store/lightweight_store.js
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import NodeMediaServer, { type NmsSession } from 'node-media-server';
import type { Logger } from 'pino';
import { openFlvPublisher } from './flv-publisher.js';
import { ForwardSet, type ForwardFailure, type ForwardSummary, type RtpServer } from './forwards.js';
import { TranscodeSet } from './transcodes.js';
import type { RtspTransport } from './rtsp-client.js';
import {
  PLAYER_MAX_BACKLOG_BYTES,
  PLAYER_MAX_CONNECTIONS,
  PLAYER_WS_MAX_PAYLOAD_BYTES,
  RTP_REORDER_WAIT_MS,
  RTP_REORDER_WINDOW_PACKETS,
  RTP_SILENCE_MS,
} from './media-node-config.js';
import type { RtpTransport } from './rtp-receiver.js';
import { assertPortFree } from './net-ports.js';
import { installNmsGuard } from './nms-guard.js';
import { routeNmsLogs } from './nms-logging.js';
import { cutPlayer, refuseSession } from './nms-sessions.js';
import { PlayerEventLog, type PlayerEventClaim } from './player-events.js';
import { originOf as originOfSession, PLAYBACK_APP, PlayerGate, TRANSCODE_SUFFIX, type Player, type PlayerSummary } from './player-gate.js';
import { DEFAULT_MEDIA_TICK_MS, setMediaTickMs } from './media-tick.js';

export interface MediaNodeOptions {
  nodeId: string;
  /** Address of the playback (HTTP-FLV/WS-FLV) and RTMP listeners. */
  host: string;
  rtmpPort: number;
  httpPort: number;
  /** Shared with the broker: it signs play tokens, the node verifies them. */
  playSecret: string;
  sourceTimeoutMs: number;
  /** RTSP transport for camera URLs that do not choose one (MEDIA_RTSP_TRANSPORT); default tcp. */
  rtspTransport?: RtspTransport;
  maxRelayRetries?: number;
  relayRetryBaseMs?: number;
  /** Lowest level of node-media-server's own messages passed on to the logger. */
  nmsLogLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Largest WebSocket frame a player may send (players send nothing meaningful); default PLAYER_WS_MAX_PAYLOAD_BYTES. */
  wsMaxPayloadBytes?: number;
  /** Unsent bytes a player may fall behind by before it is cut; default PLAYER_MAX_BACKLOG_BYTES. */
  playerMaxBacklogBytes?: number;
  /** Open playback connections at once; default PLAYER_MAX_CONNECTIONS. */
  playerMaxConnections?: number;
  /** Players one broker session may have at once (MEDIA_MAX_PLAYERS_PER_SESSION); default 2. */
  maxPlayersPerSession?: number;
  /** H.265 → H.264 transcodes at once (MEDIA_MAX_TRANSCODES); default DEFAULT_MAX_TRANSCODES. */
  maxTranscodes?: number;
  /** Restarts of a dead transcoder allowed per window (MEDIA_TRANSCODE_MAX_RESTARTS); default 3. */
  maxTranscodeRestarts?: number;
  /** That window (MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS, in ms here); default 60 s. */
  transcodeRestartWindowMs?: number;
  /** Address GB/T 28181 RTP ports listen on and are offered at (MEDIA_RTP_HOST); default `host`. */
  rtpHost?: string;
  /** No RTP this long ends a live GB/T 28181 forward (API.md: 10 s); default RTP_SILENCE_MS. */
  rtpSilenceMs?: number;
  /** Relay reads and player writes batched once per tick (MEDIA_TICK_MS, media-tick.ts); 0: off. Default 100. */
  mediaTickMs?: number;
  logger: Logger;
}

/** What a media node reports of itself (GET /load); the broker's view of a node is ports.ts' MediaNodeLoad. */
export interface NodeLoadReport {
  id: string;
  forwards: number;
  players: number;
  /** Media bytes in and out of this node per second, over the last second. */
  bytesPerSecond: number;
  transcodes: number;
  maxTranscodes: number;
  forwardsList: ForwardSummary[];
  /** Forwards that failed after they went live (most recent last), for the broker to end their sessions. */
  failed: ForwardFailure[];
  /** Transcodes given up after too many restarts (most recent last): the broker ends their sessions `source-failed`. */
  failedTranscodes?: TranscodeFailure[];
  /** Open GB/T 28181 RTP ports (each holds one SSRC). */
  rtpServers?: number;
}

const nmsRequire = createRequire(import.meta.url);
/** NMS internals with no public accessor: its process-wide traffic counters. */
const nmsContext = nmsRequire('node-media-server/src/core/context.js') as {
  networkStats: { inBytes: number; outBytes: number };
};

let nmsInstanceCreated = false;

export interface TranscodeFailure {
  /** Increases with every transcode failure this node process records (a restarted node starts at 1). */
  seq: number;
  channelId: string;
  /** The broker sessions the transcode played for. */
  sessionIds: string[];
  at: number;
}

const MAX_TRANSCODE_FAILURES_KEPT = 200;

/** A media node transcodes few channels: each is a libx264 encoder (see `npm run bench -- media-capacity`). */
export const DEFAULT_MAX_TRANSCODES = 4;

export class NotTranscodableError extends Error {
  constructor(
    message: string,
    /** No forward of the channel here, or one whose camera does not send H.265. */
    readonly reason: 'no-forward' | 'not-h265',
  ) {
    super(message);
    this.name = 'NotTranscodableError';
  }
}

export class MediaNode {
  readonly #forwards: ForwardSet;
  readonly #transcodes: TranscodeSet;
  readonly #players: PlayerGate;
  readonly #playerEvents = new PlayerEventLog();
  readonly #transcodeFailures: TranscodeFailure[] = [];
  #transcodeFailureSeq = 0;
  readonly #log: Logger;
  #nms: NodeMediaServer | null = null;
  #storeDir: string | null = null;
  #bytesPerSecond = 0;
  #lastTraffic = 0;
  #sampler: NodeJS.Timeout | null = null;

  constructor(private readonly options: MediaNodeOptions) {
    this.#log = options.logger;
    this.#forwards = new ForwardSet({
      openPublisher: (channelId) => openFlvPublisher(PLAYBACK_APP, channelId),
      sourceTimeoutMs: options.sourceTimeoutMs,
      rtspTransport: options.rtspTransport ?? 'tcp',
      maxRetries: options.maxRelayRetries ?? 3,
      retryBaseMs: options.relayRetryBaseMs ?? 500,
      stableMs: 10_000,
      onEnded: (channelId) => {
        this.#transcodes.stop(channelId);
        for (const player of this.#players.connectionsOnChannel(channelId)) cutPlayer(player);
      },
      log: (message, fields) => this.#log.warn(fields, message),
      rtp: {
        host: options.rtpHost ?? options.host,
        silenceMs: options.rtpSilenceMs ?? RTP_SILENCE_MS,
        reorderWindowPackets: RTP_REORDER_WINDOW_PACKETS,
        reorderWaitMs: RTP_REORDER_WAIT_MS,
      },
    });
    this.#transcodes = new TranscodeSet({
      max: options.maxTranscodes ?? DEFAULT_MAX_TRANSCODES,
      tap: (channelId, listener) => this.#forwards.tap(channelId, listener),
      frameRateOf: (channelId) => this.#forwards.frameRateOf(channelId),
      openPublisher: (streamName) => openFlvPublisher(PLAYBACK_APP, streamName),
      viewersOf: (channelId) =>
        this.#players.connectionsOnChannel(channelId).filter((c) => c.streamName === `${channelId}${TRANSCODE_SUFFIX}`).length,
      log: (message, fields) => this.#log.info(fields, message),
      maxRestarts: options.maxTranscodeRestarts,
      restartWindowMs: options.transcodeRestartWindowMs,
      cutViewers: (channelId) => {
        for (const player of this.#players.connectionsOnChannel(channelId)) {
          if (player.streamName === `${channelId}${TRANSCODE_SUFFIX}`) cutPlayer(player);
        }
      },
      onFailed: (channelId, sessionIds) => {
        this.#transcodeFailureSeq += 1;
        this.#transcodeFailures.push({ seq: this.#transcodeFailureSeq, channelId, sessionIds, at: Date.now() });
        if (this.#transcodeFailures.length > MAX_TRANSCODE_FAILURES_KEPT) this.#transcodeFailures.shift();
      },
    });
    this.#players = new PlayerGate({
      playSecret: options.playSecret,
      fenceOf: (channelId) => this.#forwards.fenceOf(channelId),
      maxPlayersPerSession: options.maxPlayersPerSession,
    });
  }

  get id(): string {
    return this.options.nodeId;
  }

  async start(): Promise<void> {
    if (nmsInstanceCreated) throw new Error('node-media-server keeps global state: one media node per process');
    const { host, rtmpPort, httpPort } = this.options;
    await assertPortFree(host, rtmpPort);
    await assertPortFree(host, httpPort);
    nmsInstanceCreated = true;
    setMediaTickMs(this.options.mediaTickMs ?? DEFAULT_MEDIA_TICK_MS);
    // NMS persists relay tasks and stream history in a store; ours is throwaway, never ./data.
    this.#storeDir = await mkdtemp(join(tmpdir(), `media-node-${this.options.nodeId}-`));
    routeNmsLogs(this.#log, this.options.nmsLogLevel ?? 'warn');
    const nms = new NodeMediaServer({
      bind: host,
      rtmp: { port: rtmpPort },
      http: { port: httpPort },
      webadmin: { enable: false },
      store: { path: this.#storeDir, maxHistory: 100 },
      auth: { play: false, publish: false, secret: '' },
    });
    nms.store.options.signals = false;
    installNmsGuard({
      logger: this.#log,
      httpServer: (nms as unknown as { httpServer: Parameters<typeof installNmsGuard>[0]['httpServer'] }).httpServer,
      wsMaxPayloadBytes: this.options.wsMaxPayloadBytes ?? PLAYER_WS_MAX_PAYLOAD_BYTES,
      playerMaxBacklogBytes: this.options.playerMaxBacklogBytes ?? PLAYER_MAX_BACKLOG_BYTES,
      playerMaxConnections: this.options.playerMaxConnections ?? PLAYER_MAX_CONNECTIONS,
    });
    nms.on('prePlay', this.#onPrePlay);
    nms.on('donePlay', this.#onDonePlay);
    this.#nms = nms;
    await nms.run();
    this.#lastTraffic = this.#traffic();
    this.#sampler = setInterval(() => {
      const traffic = this.#traffic();
      this.#bytesPerSecond = traffic - this.#lastTraffic;
      this.#lastTraffic = traffic;
    }, 1000);
    this.#sampler.unref();
    this.#log.info({ nodeId: this.options.nodeId, host, rtmpPort, httpPort }, 'media node started');
  }

  /** Resolves once media flows, with what the camera sends (its `codec`). */
  startForward(channelId: string, sourceUrl: string, fence: number): Promise<ForwardSummary> {
    return this.#forwards.start(channelId, sourceUrl, fence);
  }

  /**
   * Makes the channel's H.264 rendition (`<channel>_h264`) play: starts or shares its transcode. Throws
   * TranscodeCapacityError when the node's budget is spent, NotTranscodableError when there is nothing to transcode.
   */
  async startTranscode(channelId: string, sessionId?: string): Promise<{ stream: string }> {
    const forward = this.#forwards.list().find((f) => f.channelId === channelId);
    if (!forward || forward.state === 'ended') throw new NotTranscodableError(`channel ${channelId} has no forward here`, 'no-forward');
    if (forward.codec !== 'h265') throw new NotTranscodableError(`channel ${channelId} sends ${forward.codec ?? 'no known codec'}, not H.265`, 'not-h265');
    await this.#transcodes.ensure(channelId, sessionId);
    return { stream: `${channelId}${TRANSCODE_SUFFIX}` };
  }

  /** A GB/T 28181 forward: the RTP port and SSRC to INVITE the device with (API.md "GB/T 28181 access", Play). */
  async openRtpServer(channelId: string, fence: number, transport: RtpTransport, ssrcPrefix: string): Promise<RtpServer & { host: string }> {
    const server = await this.#forwards.openRtp(channelId, fence, transport, ssrcPrefix);
    return { ...server, host: this.options.rtpHost ?? this.options.host };
  }

  /** Resolves on the first picture of a forward (a GB/T 28181 one, after the device was INVITEd). */
  awaitForward(channelId: string, fence: number): Promise<ForwardSummary> {
    return this.#forwards.awaitStart(channelId, fence);
  }

  /** Process id of the channel's transcoder, while one runs (tests kill it to check restarts). */
  transcoderPid(channelId: string): number | undefined {
    return this.#transcodes.pidOf(channelId);
  }

  rtpStats(channelId: string): ReturnType<ForwardSet['rtpStats']> {
    return this.#forwards.rtpStats(channelId);
  }

  stopForward(channelId: string, fence: number): 'stopped' | 'absent' {
    return this.#forwards.stop(channelId, fence);
  }

  /** Cut the session's players; its token still opens a new play (use endSession to stop that too). */
  disconnectSession(sessionId: string, channelId?: string): number {
    const players = this.#players.connectionsOf(sessionId, channelId);
    for (const player of players) cutPlayer(player);
    return players.length;
  }

  /** `owner` (from the broker) is stamped on the play.end events of the players this cuts. */
  endSession(sessionId: string, owner?: { userId: string; agencyId: string }): number {
    this.#players.markEnded(sessionId);
    this.#transcodes.release(sessionId);
    if (owner) for (const player of this.#players.playersOf(sessionId)) player.owner = owner;
    return this.disconnectSession(sessionId);
  }

  /** The session's current players (GET /streams/:id lists them). */
  players(sessionId: string): PlayerSummary[] {
    return this.#players.playersOf(sessionId).map((p) => ({
      id: p.id,
      sessionId: p.sessionId,
      channelId: p.channelId,
      address: p.address,
      protocol: p.protocol,
      userAgent: p.userAgent,
      since: p.since,
      bytes: p.connection.outBytes,
    }));
  }

  /** Cut one of the session's players; its session and other players go on. False when it is not there. */
  cutPlayer(sessionId: string, playerId: string): boolean {
    const player = this.#players.playersOf(sessionId).find((p) => p.id === playerId);
    if (!player) return false;
    cutPlayer(player.connection);
    return true;
  }

  /** Cut every player (the broker shuts its embedded node down): their ends are queued for a last claim. */
  cutAllPlayers(): number {
    const connections = this.#players.allConnections();
    for (const connection of connections) cutPlayer(connection);
    return connections.length;
  }

  /** Player events not handed out yet (player-events.ts); each goes to one claimer. */
  claimPlayerEvents(): PlayerEventClaim {
    return this.#playerEvents.claim();
  }

  load(): NodeLoadReport {
    const forwardsList = this.#forwards.list();
    return {
      id: this.options.nodeId,
      forwards: forwardsList.length,
      players: this.#players.playerCount,
      bytesPerSecond: this.#bytesPerSecond,
      transcodes: this.#transcodes.count,
      maxTranscodes: this.options.maxTranscodes ?? DEFAULT_MAX_TRANSCODES,
      forwardsList,
      failed: this.#forwards.failures(),
      failedTranscodes: [...this.#transcodeFailures],
      rtpServers: this.#forwards.ssrcsInUse,
    };
  }

  async stop(): Promise<void> {
    if (this.#sampler) clearInterval(this.#sampler);
    this.#forwards.stopAll();
    await this.#transcodes.stopAll();
    await this.#nms?.stop();
    if (this.#storeDir) await rm(this.#storeDir, { recursive: true, force: true });
    this.#log.info({ nodeId: this.options.nodeId }, 'media node stopped');
  }

  #traffic(): number {
    return nmsContext.networkStats.inBytes + nmsContext.networkStats.outBytes;
  }

  #onPrePlay = (session: NmsSession): void => {
    const verdict = this.#players.admit(session);
    if (verdict.ok) {
      const { player } = verdict;
      this.#playerEvents.push({ kind: 'start', sessionId: player.sessionId, channelId: player.channelId, playerId: player.id, ...originOf(player) });
      return;
    }
    this.#log.info({ ip: session.ip, path: session.streamPath, reason: verdict.reason }, 'play refused');
    refuseSession(session, verdict.reason === 'no-token' ? 401 : 403);
    // A refusal of a good token is the session's (its URL shared too widely, or used after its end); a
    // bad or missing token names no session, and a stranger's flood of them must not crowd the queue.
    if (verdict.sessionId !== undefined) {
      this.#playerEvents.pushRefusal({ kind: 'refused', sessionId: verdict.sessionId, channelId: verdict.channelId, reason: verdict.reason, ...originOfSession(session) });
    }
  };

  #onDonePlay = (session: NmsSession): void => {
    const player = this.#players.released(session);
    if (!player) return;
    this.#playerEvents.push({
      kind: 'end',
      sessionId: player.sessionId,
      channelId: player.channelId,
      playerId: player.id,
      ...originOf(player),
      bytes: session.outBytes,
      seconds: Math.round((Date.now() - player.since) / 100) / 10,
      ...player.owner,
    });
  };
}

function originOf(player: Player): { address: string; protocol: Player['protocol']; userAgent: string } {
  return { address: player.address, protocol: player.protocol, userAgent: player.userAgent };
}
