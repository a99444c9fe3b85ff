/**
 * Who may play what on a media node, and who is playing. Runs inside node-media-server's synchronous
 * `prePlay` event: the play token is checked without I/O (HMAC, see play-token.ts), against the fence of
 * the channel's current forward and the sessions the broker has ended.
 */
import type { NmsSession } from 'node-media-server';
import { verifyPlayToken, type PlayTokenRejection } from './play-token.js';

export const PLAYBACK_APP = 'live';

export type PlayRefusal = PlayTokenRejection | 'no-token' | 'unknown-app' | 'session-ended' | 'no-forward' | 'stale-fence';

interface Player {
  sessionId: string;
  channelId: string;
  connection: NmsSession;
}

export interface PlayerGateOptions {
  playSecret: string;
  /** Fence of the channel's current forward on this node, if any. */
  fenceOf: (channelId: string) => number | undefined;
  now?: () => number;
  /** How long an ended session is remembered; longer than any play token lives. */
  endedSessionRetentionMs?: number;
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

  constructor(private readonly options: PlayerGateOptions) {
    this.#now = options.now ?? Date.now;
    this.#retentionMs = options.endedSessionRetentionMs ?? DAY_MS;
  }

  /** Decide a play and, when allowed, remember the connection under its broker session. */
  admit(connection: NmsSession): { ok: true } | { ok: false; reason: PlayRefusal } {
    if (connection.streamApp !== PLAYBACK_APP) return { ok: false, reason: 'unknown-app' };
    const token = connection.streamQuery.token;
    if (token === undefined) return { ok: false, reason: 'no-token' };
    const channelId = connection.streamName;
    const verdict = verifyPlayToken(token, this.options.playSecret, { channelId, now: this.#now() });
    if ('error' in verdict) return { ok: false, reason: verdict.error };
    if (this.#ended.has(verdict.sessionId)) return { ok: false, reason: 'session-ended' };
    const fence = this.options.fenceOf(channelId);
    if (fence === undefined) return { ok: false, reason: 'no-forward' };
    if (verdict.fence < fence) return { ok: false, reason: 'stale-fence' };

    this.#players.set(connection.id, { sessionId: verdict.sessionId, channelId, connection });
    let connections = this.#bySession.get(verdict.sessionId);
    if (!connections) this.#bySession.set(verdict.sessionId, (connections = new Set()));
    connections.add(connection.id);
    return { ok: true };
  }

  /** NMS reports the connection closed (`donePlay`). */
  released(connection: NmsSession): void {
    const player = this.#players.get(connection.id);
    if (!player) return;
    this.#players.delete(connection.id);
    const connections = this.#bySession.get(player.sessionId);
    connections?.delete(connection.id);
    if (connections?.size === 0) this.#bySession.delete(player.sessionId);
  }

  /** The connections of a session (optionally only on one channel), to be cut by the caller. */
  connectionsOf(sessionId: string, channelId?: string): NmsSession[] {
    const ids = this.#bySession.get(sessionId) ?? new Set<string>();
    return [...ids]
      .map((id) => this.#players.get(id))
      .filter((p): p is Player => p !== undefined && (channelId === undefined || p.channelId === channelId))
      .map((p) => p.connection);
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
