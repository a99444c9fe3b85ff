/**
 * BROKER_MEDIA=embedded (the default): the broker runs one media node as its child process and speaks
 * its control API over loopback. When the child dies its forwards are reported failed and it is
 * restarted with backoff on the same ports.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NETWORKS } from '../core/model.js';
import type { MediaNodeLoad, MediaPlayerEvents, PlayUrls } from '../core/ports.js';
import type { RtpMediaControl } from './gb-play.js';
import { MediaNodeChild } from './media-node-child.js';
import { MediaNodeClient, MediaNodeUnavailableError } from './media-node-client.js';
import { findFreePort } from './net-ports.js';
import { NodeWatch, type ForwardFailedListener, type TranscodeFailedListener } from './node-watch.js';
import { buildPlayUrls } from './play-urls.js';

/** How long a planned stop waits for the cut players' ends to be queued. */
const STOP_DRAIN_MS = 2000;

export interface EmbeddedMediaOptions {
  /** Address of the node's RTMP and HTTP-FLV listeners. */
  host?: string;
  rtmpPort: number;
  httpPort: number;
  /** Loopback control port; a free one is picked when absent. */
  controlPort?: number;
  sourceTimeoutMs: number;
  playSecret: string;
  /** BROKER_PUBLIC_MEDIA_URL; defaults to http://<host>:<httpPort>. */
  publicBaseUrl?: string;
  nodeId?: string;
  maxForwards: number;
  /** BROKER_MAX_PLAYERS_PER_SESSION, enforced by the node (MEDIA_MAX_PLAYERS_PER_SESSION). */
  maxPlayersPerSession?: number;
  /** BROKER_MEDIA_MAX_TRANSCODES, the node's budget (MEDIA_MAX_TRANSCODES). */
  maxTranscodes?: number;
  logger: Logger;
  pollIntervalMs?: number;
  restartDelaysMs?: number[];
}

export interface EmbeddedMediaControl extends RtpMediaControl {
  /** Process id of the current media node child (operators, tests). */
  nodePid(): number | undefined;
}

export async function createEmbeddedMediaControl(options: EmbeddedMediaOptions): Promise<EmbeddedMediaControl> {
  const host = options.host ?? '127.0.0.1';
  const nodeId = options.nodeId ?? 'embedded';
  const controlPort = options.controlPort ?? (await findFreePort());
  const controlSecret = randomBytes(32).toString('base64url');
  const baseUrl = options.publicBaseUrl ?? `http://${host}:${options.httpPort}`;
  const log = options.logger.child({ component: 'media-embedded' });
  const listeners: ForwardFailedListener[] = [];
  const playerListeners: Array<(report: MediaPlayerEvents) => void> = [];
  const transcodeListeners: TranscodeFailedListener[] = [];

  const client = new MediaNodeClient({
    controlUrl: `http://127.0.0.1:${controlPort}`,
    controlSecret,
    sourceTimeoutMs: options.sourceTimeoutMs,
  });
  const watch = new NodeWatch(
    client,
    (channelId, fence) => {
      for (const listener of listeners) {
        try {
          listener(channelId, fence);
        } catch (error) {
          log.error({ err: (error as Error).message, channelId, fence }, 'forward-failed listener threw');
        }
      }
    },
    log,
    (report) => {
      for (const listener of playerListeners) listener(report);
    },
    (channelId, sessionIds) => {
      for (const listener of transcodeListeners) listener(channelId, sessionIds);
    },
  );
  const child = new MediaNodeChild({
    env: {
      MEDIA_NODE_ID: nodeId,
      MEDIA_HOST: host,
      MEDIA_RTMP_PORT: String(options.rtmpPort),
      MEDIA_HTTP_PORT: String(options.httpPort),
      MEDIA_CONTROL_HOST: '127.0.0.1',
      MEDIA_CONTROL_PORT: String(controlPort),
      MEDIA_CONTROL_SECRET: controlSecret,
      MEDIA_PLAY_SECRET: options.playSecret,
      MEDIA_SOURCE_TIMEOUT_MS: String(options.sourceTimeoutMs),
      ...(options.maxPlayersPerSession !== undefined && { MEDIA_MAX_PLAYERS_PER_SESSION: String(options.maxPlayersPerSession) }),
      ...(options.maxTranscodes !== undefined && { MEDIA_MAX_TRANSCODES: String(options.maxTranscodes) }),
      // The child writes to the broker's stdout: at the broker's log level, not louder.
      MEDIA_LOG_LEVEL: options.logger.level,
    },
    client,
    logger: log,
    restartDelaysMs: options.restartDelaysMs,
    onDown: () => watch.nodeLost(),
    onUp: () => void watch.poll(),
  });

  let polling = false;
  const poller = setInterval(() => {
    if (polling || !child.up) return;
    polling = true;
    watch
      .poll()
      .catch((err: unknown) => log.error({ err }, 'media node poll failed'))
      .finally(() => (polling = false));
  }, options.pollIntervalMs ?? 1000);
  poller.unref();

  /**
   * A planned stop cuts the players first and claims their ends, so the audit log has a play.end for
   * each (a crash cannot: see player-events.ts). Bounded: a node that does not answer is stopped anyway.
   */
  const recordPlayersBeforeStop = async () => {
    if (!child.up) return;
    try {
      while (polling) await new Promise((resolve) => setTimeout(resolve, 20));
      if ((await client.cutAllPlayers()) > 0) {
        const deadline = Date.now() + STOP_DRAIN_MS;
        while ((await client.load()).players > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await watch.poll();
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'players could not be recorded before the media node stopped');
    }
  };

  try {
    await child.start();
  } catch (error) {
    clearInterval(poller);
    await child.stop();
    throw error;
  }

  return {
    async startForward({ channelId, sourceUrl, fence }) {
      if (!child.up) throw new MediaNodeUnavailableError('the embedded media node is restarting');
      const { codec } = await client.startForward(channelId, sourceUrl, fence);
      watch.forwardStarted(channelId, fence);
      return { nodeId, codec };
    },
    async openRtpServer({ channelId, fence, transport, ssrcPrefix }) {
      if (!child.up) throw new MediaNodeUnavailableError('the embedded media node is restarting');
      return { nodeId, ...(await client.openRtpServer(channelId, fence, transport, ssrcPrefix)) };
    },
    async awaitRtpForward({ channelId, fence }) {
      await client.awaitForward(channelId, fence);
      watch.forwardStarted(channelId, fence);
    },
    rtpHosts: () => [host],
    // One broker per embedded node: its joiners share the start in-process (stream-service.ts).
    async awaitForward() {},
    async stopForward(channelId, fence) {
      watch.forwardStopped(channelId, fence);
      // A node that is down has no forward left to stop.
      if (child.up) await client.stopForward(channelId, fence);
    },
    async startTranscode({ sessionId, channelId }) {
      if (!child.up) throw new MediaNodeUnavailableError('the embedded media node is restarting');
      return client.startTranscode(channelId, sessionId);
    },
    async disconnectSession(sessionId, channelId, owner) {
      if (child.up) await client.endSession(sessionId, channelId, owner);
    },
    async players(sessionId) {
      if (!child.up) return [];
      return (await client.players(sessionId)).map(({ id, address, protocol, userAgent, since, bytes }) => ({ id, address, protocol, userAgent, since, bytes }));
    },
    async cutPlayer(sessionId, _channelId, playerId) {
      return child.up && (await client.cutPlayer(sessionId, playerId));
    },
    onPlayerEvents(listener) {
      playerListeners.push(listener);
    },
    async playUrls(input): Promise<PlayUrls> {
      return buildPlayUrls(baseUrl, options.playSecret, { ...input, nodeId });
    },
    onForwardFailed(listener) {
      listeners.push(listener);
    },
    onTranscodeFailed(listener) {
      transcodeListeners.push(listener);
    },
    async nodes(): Promise<MediaNodeLoad[]> {
      const load = watch.lastLoad;
      return [
        {
          id: nodeId,
          baseUrl,
          networks: [...NETWORKS],
          maxForwards: options.maxForwards,
          forwards: load?.forwards ?? 0,
          players: load?.players ?? 0,
          bytesPerSecond: load?.bytesPerSecond ?? 0,
          alive: child.up && watch.alive,
        },
      ];
    },
    async ready() {
      return child.up && (await client.healthy());
    },
    async close() {
      clearInterval(poller);
      await recordPlayersBeforeStop();
      await child.stop();
    },
    nodePid: () => child.pid,
  };
}
