/**
 * A media node: one node-media-server 4.x instance (it keeps global state, so one per process) that
 * takes RTMP from the relays it starts and serves HTTP-FLV / WebSocket-FLV to players holding a play
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
 * write FLV to their stdout and are published in-process, so the RTMP port serves RTMP players only.
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
import { ForwardSet, type ForwardFailure, type ForwardSummary } from './forwards.js';
import { PLAYER_MAX_BACKLOG_BYTES, PLAYER_MAX_CONNECTIONS, PLAYER_WS_MAX_PAYLOAD_BYTES } from './media-node-config.js';
import { assertPortFree } from './net-ports.js';
import { installNmsGuard } from './nms-guard.js';
import { routeNmsLogs } from './nms-logging.js';
import { cutPlayer, refuseSession } from './nms-sessions.js';
import { PLAYBACK_APP, PlayerGate } from './player-gate.js';

export interface MediaNodeOptions {
  nodeId: string;
  /** Address of the playback (HTTP-FLV/WS-FLV) and RTMP listeners. */
  host: string;
  rtmpPort: number;
  httpPort: number;
  /** Shared with the broker: it signs play tokens, the node verifies them. */
  playSecret: string;
  sourceTimeoutMs: number;
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
  logger: Logger;
}

export interface MediaNodeLoad {
  id: string;
  forwards: number;
  players: number;
  /** Media bytes in and out of this node per second, over the last second. */
  bytesPerSecond: number;
  forwardsList: ForwardSummary[];
  /** Forwards that failed after they went live (most recent last), for the broker to end their sessions. */
  failed: ForwardFailure[];
}

const nmsRequire = createRequire(import.meta.url);
/** NMS internals with no public accessor: its process-wide traffic counters. */
const nmsContext = nmsRequire('node-media-server/src/core/context.js') as {
  networkStats: { inBytes: number; outBytes: number };
};

let nmsInstanceCreated = false;

export class MediaNode {
  readonly #forwards: ForwardSet;
  readonly #players: PlayerGate;
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
      maxRetries: options.maxRelayRetries ?? 3,
      retryBaseMs: options.relayRetryBaseMs ?? 500,
      stableMs: 10_000,
      onEnded: (channelId) => {
        for (const player of this.#players.connectionsOnChannel(channelId)) cutPlayer(player);
      },
      log: (message, fields) => this.#log.warn(fields, message),
    });
    this.#players = new PlayerGate({
      playSecret: options.playSecret,
      fenceOf: (channelId) => this.#forwards.fenceOf(channelId),
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
    nms.on('donePlay', (session) => this.#players.released(session));
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

  startForward(channelId: string, sourceUrl: string, fence: number): Promise<void> {
    return this.#forwards.start(channelId, sourceUrl, fence);
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

  endSession(sessionId: string): number {
    this.#players.markEnded(sessionId);
    return this.disconnectSession(sessionId);
  }

  load(): MediaNodeLoad {
    const forwardsList = this.#forwards.list();
    return {
      id: this.options.nodeId,
      forwards: forwardsList.length,
      players: this.#players.playerCount,
      bytesPerSecond: this.#bytesPerSecond,
      forwardsList,
      failed: this.#forwards.failures(),
    };
  }

  async stop(): Promise<void> {
    if (this.#sampler) clearInterval(this.#sampler);
    await this.#forwards.stopAll();
    await this.#nms?.stop();
    if (this.#storeDir) await rm(this.#storeDir, { recursive: true, force: true });
    this.#log.info({ nodeId: this.options.nodeId }, 'media node stopped');
  }

  #traffic(): number {
    return nmsContext.networkStats.inBytes + nmsContext.networkStats.outBytes;
  }

  #onPrePlay = (session: NmsSession): void => {
    const verdict = this.#players.admit(session);
    if (verdict.ok) return;
    this.#log.info({ ip: session.ip, path: session.streamPath, reason: verdict.reason }, 'play refused');
    refuseSession(session, verdict.reason === 'no-token' ? 401 : 403);
  };
}
