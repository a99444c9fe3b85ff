/**
 * Who may play what on a media node, and who is playing. Runs inside node-media-server's synchronous
 * `prePlay` event: the play token is checked without I/O (HMAC, see play-token.ts), against the fence of
 * the channel's current forward and the sessions the broker has ended.
 */
import type { NmsSession } from 'node-media-server';
import { WebSocket } from 'ws';
import { verifyPlayToken, type PlayTokenRejection } from './play-token.js';
import type { PlayerProtocol } from './player-events.js';

export const PLAYBACK_APP = 'live';
/** The stream name suffix of a channel's H.264 rendition (transcodes.ts). */
export const TRANSCODE_SUFFIX = '_h264';

export type PlayRefusal =
  | PlayTokenRejection
  | 'no-token'
  | 'unknown-app'
  | 'session-ended'
  | 'no-forward'
  | 'stale-fence'
  | 'too-many-players';

/** Default of BROKER_MAX_PLAYERS_PER_SESSION / MEDIA_MAX_PLAYERS_PER_SESSION: players are people. */
export const DEFAULT_MAX_PLAYERS_PER_SESSION = 2;
const MAX_USER_AGENT_LENGTH = 256;

/** Who is at the other end of a play, as the node sees it (taken when the play is decided). */
export interface PlayerOrigin {
  address: string;
  protocol: PlayerProtocol;
  userAgent: string;
}

export interface Player extends PlayerOrigin {
  id: string;
  sessionId: string;
  channelId: string;
  since: number;
  connection: NmsSession;
  /** Whose session it is, once the broker said so (endSession). */
  owner?: { userId: string; agencyId: string };
}

/** A player as the control API lists it. */
export interface PlayerSummary {
  id: string;
  sessionId: string;
  channelId: string;
  address: string;
  protocol: PlayerProtocol;
  userAgent: string;
  since: number;
  bytes: number;
}

export function originOf(connection: NmsSession): PlayerOrigin {
  const remote = connection.req?.socket.remoteAddress ?? connection.socket?.remoteAddress;
  const address = remote ?? connection.ip.replace(/:\d+$/, '');
  const protocol: PlayerProtocol = connection.protocol === 'rtmp' ? 'rtmp' : connection.res instanceof WebSocket ? 'ws-flv' : 'http-flv';
  const agent = connection.req?.headers['user-agent'] ?? '';
  return { address, protocol, userAgent: agent.slice(0, MAX_USER_AGENT_LENGTH) };
}

export type AdmitVerdict =
  | { ok: true; player: Player }
  /** `sessionId` is set when the token was good: the refusal is the session's to account for. */
  | { ok: false; reason: PlayRefusal; sessionId?: string; channelId: string };

export interface PlayerGateOptions {
  playSecret: string;
  /** Fence of the channel's current forward on this node, if any. */
  fenceOf: (channelId: string) => number | undefined;
  now?: () => number;
  /** How long an ended session is remembered; longer than any play token lives. */
  endedSessionRetentionMs?: number;
  /** Players one broker session may have at once on this node (a session's channel is on one node). */
  maxPlayersPerSession?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export class PlayerGate {
  /** NMS connection id → player. */
  readonly #players = new Map<string, Player>();
  readonly #bySession = new Map<string, Set<string>>();
  /** Broker session id → when it ended; insertion order = end order, so pruning walks from the front. */
  readonly #ended = new Map<string, number>();
  readonly #now: () => number;
  readonly #retentionMs: number;
  readonly #maxPerSession: number;

  constructor(private readonly options: PlayerGateOptions) {
    this.#now = options.now ?? Date.now;
    this.#retentionMs = options.endedSessionRetentionMs ?? DAY_MS;
    this.#maxPerSession = options.maxPlayersPerSession ?? DEFAULT_MAX_PLAYERS_PER_SESSION;
  }

  /**
   * Decide a play and, when allowed, remember the connection under its broker session. Synchronous
   * (NMS's prePlay): the count checked and the place taken in one step, so two plays at once cannot
   * both take the last place.
   */
  admit(connection: NmsSession): AdmitVerdict {
    // `<channel>_h264` is the channel's transcoded rendition (transcodes.ts): same token, same channel.
    const name = connection.streamName;
    const channelId = name.endsWith(TRANSCODE_SUFFIX) ? name.slice(0, -TRANSCODE_SUFFIX.length) : name;
    if (connection.streamApp !== PLAYBACK_APP) return { ok: false, reason: 'unknown-app', channelId };
    const token = connection.streamQuery.token;
    if (token === undefined) return { ok: false, reason: 'no-token', channelId };
    const verdict = verifyPlayToken(token, this.options.playSecret, { channelId, now: this.#now() });
    if ('error' in verdict) return { ok: false, reason: verdict.error, channelId };
    const { sessionId } = verdict;
    if (this.#ended.has(sessionId)) return { ok: false, reason: 'session-ended', sessionId, channelId };
    const fence = this.options.fenceOf(channelId);
    if (fence === undefined) return { ok: false, reason: 'no-forward', sessionId, channelId };
    if (verdict.fence < fence) return { ok: false, reason: 'stale-fence', sessionId, channelId };
    let connections = this.#bySession.get(sessionId);
    if ((connections?.size ?? 0) >= this.#maxPerSession) return { ok: false, reason: 'too-many-players', sessionId, channelId };

    const player: Player = { id: connection.id, sessionId, channelId, since: this.#now(), connection, ...originOf(connection) };
    this.#players.set(connection.id, player);
    if (!connections) this.#bySession.set(sessionId, (connections = new Set()));
    connections.add(connection.id);
    return { ok: true, player };
  }

  /** NMS reports the connection closed (`donePlay`): the player that left, if it was admitted. */
  released(connection: NmsSession): Player | undefined {
    const player = this.#players.get(connection.id);
    if (!player) return undefined;
    this.#players.delete(connection.id);
    const connections = this.#bySession.get(player.sessionId);
    connections?.delete(connection.id);
    if (connections?.size === 0) this.#bySession.delete(player.sessionId);
    return player;
  }

  /** The session's current players (optionally only on one channel). */
  playersOf(sessionId: string, channelId?: string): Player[] {
    const ids = this.#bySession.get(sessionId) ?? new Set<string>();
    return [...ids]
      .map((id) => this.#players.get(id))
      .filter((p): p is Player => p !== undefined && (channelId === undefined || p.channelId === channelId));
  }

  /** The connections of a session (optionally only on one channel), to be cut by the caller. */
  connectionsOf(sessionId: string, channelId?: string): NmsSession[] {
    return this.playersOf(sessionId, channelId).map((p) => p.connection);
  }

  allConnections(): NmsSession[] {
    return [...this.#players.values()].map((p) => p.connection);
  }

  connectionsOnChannel(channelId: string): NmsSession[] {
    return [...this.#players.values()].filter((p) => p.channelId === channelId).map((p) => p.connection);
  }

  /** From now on the session's tokens open nothing. */
  markEnded(sessionId: string): void {
    const now = this.#now();
    this.#ended.delete(sessionId);
    this.#ended.set(sessionId, now);
    for (const [id, endedAt] of this.#ended) {
      if (now - endedAt < this.#retentionMs) break;
      this.#ended.delete(id);
    }
  }

  get playerCount(): number {
    return this.#players.size;
  }
}
