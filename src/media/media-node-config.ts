/**
 * Media node configuration from the environment (see media-node-main.ts). A bad or missing value throws
 * a MediaNodeConfigError naming the variable.
 */
import { NETWORKS, type Network } from '../core/model.js';
import { DEFAULT_MAX_PLAYERS_PER_SESSION } from './player-gate.js';
import { DEFAULT_MEDIA_TICK_MS, MAX_MEDIA_TICK_MS } from './media-tick.js';

/** Upper bound of the players-per-session setting (broker and node validate the same range). */
export const MAX_PLAYERS_PER_SESSION = 100;

export interface MediaNodeEnvConfig {
  nodeId: string;
  host: string;
  rtmpPort: number;
  httpPort: number;
  controlHost: string;
  controlPort: number;
  controlSecret: string;
  playSecret: string;
  sourceTimeoutMs: number;
  /** BROKER_MEDIA=nodes: register in this Redis (MEDIA_REDIS_URL); absent → no registration. */
  redisUrl?: string;
  redisPrefix: string;
  /** Networks whose cameras this node reaches (MEDIA_NETWORKS, comma-separated). */
  networks: Network[];
  maxForwards: number;
  /** Base of play URLs as clients reach this node (MEDIA_PUBLIC_URL). */
  publicUrl: string;
  /** Control URL as brokers reach this node (MEDIA_CONTROL_URL). */
  controlUrl: string;
  /** MEDIA_PLAYER_MAX_BACKLOG_BYTES, default PLAYER_MAX_BACKLOG_BYTES. */
  playerMaxBacklogBytes: number;
  /** MEDIA_MAX_PLAYER_CONNECTIONS, default PLAYER_MAX_CONNECTIONS. */
  playerMaxConnections: number;
  /** MEDIA_MAX_PLAYERS_PER_SESSION (the broker's BROKER_MAX_PLAYERS_PER_SESSION), default 2. */
  maxPlayersPerSession: number;
  /** MEDIA_RTSP_TRANSPORT: `tcp` (interleaved, default) or `udp`, for camera URLs without `#transport=`. */
  rtspTransport: 'tcp' | 'udp';
  /** MEDIA_MAX_TRANSCODES: H.265 → H.264 transcodes at once (0 disables them). */
  maxTranscodes: number;
  /** MEDIA_TRANSCODE_MAX_RESTARTS: restarts of a dead transcoder per window before its sessions end (0: none). */
  maxTranscodeRestarts: number;
  /** MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS, as ms: the window those restarts are counted in. */
  transcodeRestartWindowMs: number;
  /** MEDIA_RTP_HOST: where GB/T 28181 devices send RTP (the address in the INVITE's SDP); default MEDIA_HOST. */
  rtpHost: string;
  /** MEDIA_TICK_MS: relay reads and player writes are batched once per tick (media-tick.ts); 0 turns it off. */
  mediaTickMs: number;
  /** MEDIA_RTP_SILENCE_MS, default RTP_SILENCE_MS. */
  rtpSilenceMs: number;
}

/**
 * A transcoder (transcodes.ts) that died is restarted at most this many times within the window
 * (MEDIA_TRANSCODE_MAX_RESTARTS per MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS); one more death ends its
 * sessions `source-failed`. A crash loop (a bad stream, a broken ffmpeg) costs a few seconds, not forever.
 */
export const DEFAULT_TRANSCODE_MAX_RESTARTS = 3;
export const DEFAULT_TRANSCODE_RESTART_WINDOW_MS = 60_000;

/** A live GB/T 28181 stream that sends no RTP this long has failed (API.md "GB/T 28181 access": 10 s). */
export const RTP_SILENCE_MS = 10_000;
/** UDP packets held while a missing one may still arrive out of order; then it is a loss. */
export const RTP_REORDER_WINDOW_PACKETS = 64;
/** How long a gap in the RTP sequence may stay open before it counts as a loss. */
export const RTP_REORDER_WAIT_MS = 100;

/**
 * Largest WebSocket frame the media port accepts from a player (ws's default is 100 MiB, and NMS sets none).
 * WS-FLV players only receive; anything larger closes that socket with 1009.
 */
export const PLAYER_WS_MAX_PAYLOAD_BYTES = 4 * 1024;

/**
 * Unsent bytes a player may fall behind by before the node cuts it (MEDIA_PLAYER_MAX_BACKLOG_BYTES):
 * room for a joiner's burst (headers + a GOP of a high-bitrate camera) and a slow network's hiccup.
 */
export const PLAYER_MAX_BACKLOG_BYTES = 16 * 1024 * 1024;

/** Open connections the playback port accepts at once (MEDIA_MAX_PLAYER_CONNECTIONS); more are refused. */
export const PLAYER_MAX_CONNECTIONS = 10_000;

/**
 * A play request is one GET line and a few headers: it must arrive in full within this, and an idle
 * keep-alive connection is closed after PLAYER_KEEPALIVE_MS (Node's defaults are 60 s and 300 s).
 * A playing response is not bounded by these: they time the request, not the answer.
 */
export const PLAYER_REQUEST_TIMEOUT_MS = 10_000;
export const PLAYER_KEEPALIVE_MS = 5_000;

export class MediaNodeConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'MediaNodeConfigError';
  }
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new MediaNodeConfigError(name, 'must be a port 1..65535');
  return value;
}

function secret(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new MediaNodeConfigError(name, 'is required');
  if (value.length < 16) throw new MediaNodeConfigError(name, 'must be at least 16 characters');
  return value;
}

export function mediaNodeConfigFromEnv(env: NodeJS.ProcessEnv): MediaNodeEnvConfig {
  const timeout = env.MEDIA_SOURCE_TIMEOUT_MS ? Number(env.MEDIA_SOURCE_TIMEOUT_MS) : 8000;
  if (!Number.isInteger(timeout) || timeout < 100 || timeout > 120_000) {
    throw new MediaNodeConfigError('MEDIA_SOURCE_TIMEOUT_MS', 'must be an integer 100..120000');
  }
  const nodeId = env.MEDIA_NODE_ID || 'media-1';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(nodeId)) throw new MediaNodeConfigError('MEDIA_NODE_ID', 'must match [A-Za-z0-9_.-]{1,64}');
  const networks = (env.MEDIA_NETWORKS || NETWORKS.join(',')).split(',').map((n) => n.trim());
  const unknownNetwork = networks.find((n) => !(NETWORKS as readonly string[]).includes(n));
  if (unknownNetwork !== undefined) throw new MediaNodeConfigError('MEDIA_NETWORKS', `unknown network "${unknownNetwork}"`);
  const maxForwards = env.MEDIA_MAX_FORWARDS ? Number(env.MEDIA_MAX_FORWARDS) : 500;
  if (!Number.isInteger(maxForwards) || maxForwards < 1) throw new MediaNodeConfigError('MEDIA_MAX_FORWARDS', 'must be a positive integer');
  const backlog = env.MEDIA_PLAYER_MAX_BACKLOG_BYTES ? Number(env.MEDIA_PLAYER_MAX_BACKLOG_BYTES) : PLAYER_MAX_BACKLOG_BYTES;
  const maxConnections = env.MEDIA_MAX_PLAYER_CONNECTIONS ? Number(env.MEDIA_MAX_PLAYER_CONNECTIONS) : PLAYER_MAX_CONNECTIONS;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new MediaNodeConfigError('MEDIA_MAX_PLAYER_CONNECTIONS', 'must be a positive integer');
  }
  if (!Number.isSafeInteger(backlog) || backlog < 1024) {
    throw new MediaNodeConfigError('MEDIA_PLAYER_MAX_BACKLOG_BYTES', 'must be an integer of at least 1024');
  }
  const perSession = env.MEDIA_MAX_PLAYERS_PER_SESSION ? Number(env.MEDIA_MAX_PLAYERS_PER_SESSION) : DEFAULT_MAX_PLAYERS_PER_SESSION;
  if (!Number.isInteger(perSession) || perSession < 1 || perSession > MAX_PLAYERS_PER_SESSION) {
    throw new MediaNodeConfigError('MEDIA_MAX_PLAYERS_PER_SESSION', `must be an integer 1..${MAX_PLAYERS_PER_SESSION}`);
  }
  const maxTranscodes = env.MEDIA_MAX_TRANSCODES ? Number(env.MEDIA_MAX_TRANSCODES) : 4;
  if (!Number.isInteger(maxTranscodes) || maxTranscodes < 0 || maxTranscodes > 256) throw new MediaNodeConfigError('MEDIA_MAX_TRANSCODES', 'must be an integer 0..256');
  const maxTranscodeRestarts = env.MEDIA_TRANSCODE_MAX_RESTARTS ? Number(env.MEDIA_TRANSCODE_MAX_RESTARTS) : DEFAULT_TRANSCODE_MAX_RESTARTS;
  if (!Number.isInteger(maxTranscodeRestarts) || maxTranscodeRestarts < 0 || maxTranscodeRestarts > 100) {
    throw new MediaNodeConfigError('MEDIA_TRANSCODE_MAX_RESTARTS', 'must be an integer 0..100');
  }
  const restartWindowSeconds = env.MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS
    ? Number(env.MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS)
    : DEFAULT_TRANSCODE_RESTART_WINDOW_MS / 1000;
  if (!Number.isInteger(restartWindowSeconds) || restartWindowSeconds < 1 || restartWindowSeconds > 3600) {
    throw new MediaNodeConfigError('MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS', 'must be an integer 1..3600');
  }
  const rtspTransport = env.MEDIA_RTSP_TRANSPORT || 'tcp';
  if (rtspTransport !== 'tcp' && rtspTransport !== 'udp') throw new MediaNodeConfigError('MEDIA_RTSP_TRANSPORT', 'must be tcp or udp');
  const rtpSilenceMs = env.MEDIA_RTP_SILENCE_MS ? Number(env.MEDIA_RTP_SILENCE_MS) : RTP_SILENCE_MS;
  if (!Number.isInteger(rtpSilenceMs) || rtpSilenceMs < 500 || rtpSilenceMs > 120_000) {
    throw new MediaNodeConfigError('MEDIA_RTP_SILENCE_MS', 'must be an integer 500..120000');
  }
  const mediaTickMs = env.MEDIA_TICK_MS ? Number(env.MEDIA_TICK_MS) : DEFAULT_MEDIA_TICK_MS;
  if (!Number.isInteger(mediaTickMs) || mediaTickMs < 0 || mediaTickMs > MAX_MEDIA_TICK_MS) {
    throw new MediaNodeConfigError('MEDIA_TICK_MS', `must be an integer 0..${MAX_MEDIA_TICK_MS}`);
  }
  const host = env.MEDIA_HOST || '127.0.0.1';
  const httpPort = port(env, 'MEDIA_HTTP_PORT', 8000);
  const controlHost = env.MEDIA_CONTROL_HOST || '127.0.0.1';
  const controlPort = port(env, 'MEDIA_CONTROL_PORT', 8100);
  return {
    nodeId,
    host,
    rtmpPort: port(env, 'MEDIA_RTMP_PORT', 1935),
    httpPort,
    controlHost,
    controlPort,
    controlSecret: secret(env, 'MEDIA_CONTROL_SECRET'),
    playSecret: secret(env, 'MEDIA_PLAY_SECRET'),
    sourceTimeoutMs: timeout,
    redisUrl: env.MEDIA_REDIS_URL || undefined,
    redisPrefix: env.MEDIA_REDIS_PREFIX ?? 'sharp-eyes:',
    networks: networks as Network[],
    maxForwards,
    publicUrl: env.MEDIA_PUBLIC_URL || `http://${host}:${httpPort}`,
    controlUrl: env.MEDIA_CONTROL_URL || `http://${controlHost}:${controlPort}`,
    playerMaxBacklogBytes: backlog,
    playerMaxConnections: maxConnections,
    maxPlayersPerSession: perSession,
    rtspTransport,
    maxTranscodes,
    maxTranscodeRestarts,
    transcodeRestartWindowMs: restartWindowSeconds * 1000,
    rtpHost: env.MEDIA_RTP_HOST || host,
    rtpSilenceMs,
    mediaTickMs,
  };
}
