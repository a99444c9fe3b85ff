/**
 * The broker's side of a media node's control API (control-api.ts), shared by the embedded and the
 * nodes adapters. Maps the node's answers onto the MediaControl port's errors — the one place where
 * a node's failure becomes a cause the core understands (issue 8, point 15): a node that cannot be
 * reached, is restarting or refuses our control secret is the media plane's failure, a 504 from the
 * node is a silent camera, a refused source URL is the channel's configuration.
 */
import { MediaUnavailableError, SourceInvalidError, SourceUnavailableError, TranscodeCapacityExhaustedError } from '../core/ports.js';
import { VIDEO_CODECS, type VideoCodecName } from '../core/model.js';
import type { NodeLoadReport } from './media-node.js';
import type { PlayerEventClaim } from './player-events.js';
import type { PlayerSummary } from './player-gate.js';

/** The node could not be reached, refused us or answered unexpectedly. */
export class MediaNodeUnavailableError extends MediaUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'MediaNodeUnavailableError';
  }
}

export interface MediaNodeClientOptions {
  controlUrl: string;
  controlSecret: string;
  /** The node's own source timeout; a start request waits a little longer than that. */
  sourceTimeoutMs: number;
  requestTimeoutMs?: number;
}

const START_SLACK_MS = 5000;
/** The node gives a transcoder 15 s to publish its first H.264 keyframe (transcodes.ts), plus slack. */
const TRANSCODE_START_TIMEOUT_MS = 20_000;

export class MediaNodeClient {
  constructor(private readonly options: MediaNodeClientOptions) {}

  get controlUrl(): string {
    return this.options.controlUrl;
  }

  /** Resolves with the camera's codec as the node saw it (absent for a codec the node does not name). */
  async startForward(channelId: string, sourceUrl: string, fence: number): Promise<{ codec?: VideoCodecName }> {
    const res = await this.#call('POST', '/forwards', { channelId, sourceUrl, fence }, this.options.sourceTimeoutMs + START_SLACK_MS);
    if (res.status === 200) {
      const codec = (res.body as { codec?: unknown } | undefined)?.codec;
      return (VIDEO_CODECS as readonly unknown[]).includes(codec) ? { codec: codec as VideoCodecName } : {};
    }
    if (res.status === 504) throw new SourceUnavailableError(`no media from the source of ${channelId} in time`);
    if (res.status === 400 && res.code === 'INVALID_SOURCE') throw new SourceInvalidError(`the media node will not relay the source of ${channelId}`);
    throw new MediaNodeUnavailableError(`media node refused forward ${channelId}#${fence}: ${res.status} ${res.code}`);
  }

  /**
   * Makes the channel's H.264 rendition play for the session (shared per channel on the node). False when the
   * channel's forward is not H.265 (its source is what an H.264 viewer plays); TranscodeCapacityExhaustedError
   * when the node's budget is spent. libx264's first keyframe may take a GOP or two after the start.
   */
  async startTranscode(channelId: string, sessionId: string): Promise<boolean> {
    const res = await this.#call('POST', '/transcodes', { channelId, sessionId }, TRANSCODE_START_TIMEOUT_MS);
    if (res.status === 200) return true;
    if (res.status === 503 && res.code === 'TRANSCODE_CAPACITY_EXHAUSTED') throw new TranscodeCapacityExhaustedError(`the media node's transcodes are all in use (${channelId})`);
    if (res.status === 409 && res.code === 'NOT_TRANSCODABLE') return false;
    throw new MediaNodeUnavailableError(`media node refused a transcode of ${channelId}: ${res.status} ${res.code}`);
  }

  /** Opens a GB/T 28181 RTP port for the channel's forward (control-api.ts POST /rtp-servers). */
  async openRtpServer(channelId: string, fence: number, transport: 'udp' | 'tcp-passive', ssrcPrefix: string): Promise<{ host: string; port: number; ssrc: string }> {
    const res = await this.#call('POST', '/rtp-servers', { channelId, fence, transport, ssrcPrefix });
    if (res.status === 200) return res.body as { host: string; port: number; ssrc: string };
    throw new MediaNodeUnavailableError(`media node refused an RTP port for ${channelId}#${fence}: ${res.status} ${res.code}`);
  }

  /** Waits for the first picture of a forward the node was told about (a GB/T 28181 one). */
  async awaitForward(channelId: string, fence: number): Promise<void> {
    const res = await this.#call('POST', `/forwards/${encodeURIComponent(channelId)}/await`, { fence }, this.options.sourceTimeoutMs + START_SLACK_MS);
    if (res.status === 200) return;
    if (res.status === 504 || res.status === 409) throw new SourceUnavailableError(`no media from the GB/T 28181 device of ${channelId} in time`);
    throw new MediaNodeUnavailableError(`media node: await forward ${channelId}#${fence}: ${res.status} ${res.code}`);
  }

  /** A 409 means a newer fence owns the channel now: nothing of ours is left to stop. */
  async stopForward(channelId: string, fence: number): Promise<void> {
    const res = await this.#call('DELETE', `/forwards/${encodeURIComponent(channelId)}?fence=${fence}`);
    if (res.status !== 200 && res.status !== 409) throw new MediaNodeUnavailableError(`stop forward: ${res.status}`);
  }

  /** Marks the session ended on the node (its tokens stop working) and cuts its players. */
  async endSession(sessionId: string, channelId: string, owner?: { userId: string; agencyId: string }): Promise<void> {
    const res = await this.#call('POST', `/sessions/${encodeURIComponent(sessionId)}/end`, { channelId, ...owner });
    if (res.status !== 200) throw new MediaNodeUnavailableError(`end session: ${res.status}`);
  }

  async players(sessionId: string): Promise<PlayerSummary[]> {
    const res = await this.#call('GET', `/sessions/${encodeURIComponent(sessionId)}/players`);
    if (res.status !== 200) throw new MediaNodeUnavailableError(`players: ${res.status}`);
    return (res.body as { players: PlayerSummary[] }).players;
  }

  /** True when the node cut it, false when the session has no such player (any more). */
  async cutPlayer(sessionId: string, playerId: string): Promise<boolean> {
    const res = await this.#call('DELETE', `/sessions/${encodeURIComponent(sessionId)}/players/${encodeURIComponent(playerId)}`);
    if (res.status === 200) return true;
    if (res.status === 404 || res.status === 400) return false;
    throw new MediaNodeUnavailableError(`cut player: ${res.status}`);
  }

  async cutAllPlayers(): Promise<number> {
    const res = await this.#call('POST', '/players/cut-all');
    if (res.status !== 200) throw new MediaNodeUnavailableError(`cut all players: ${res.status}`);
    return (res.body as { cut: number }).cut;
  }

  async claimPlayerEvents(): Promise<PlayerEventClaim> {
    const res = await this.#call('POST', '/player-events/claim');
    if (res.status !== 200) throw new MediaNodeUnavailableError(`player events: ${res.status}`);
    return res.body as PlayerEventClaim;
  }

  async load(): Promise<NodeLoadReport> {
    const res = await this.#call('GET', '/load');
    if (res.status !== 200) throw new MediaNodeUnavailableError(`load: ${res.status}`);
    return res.body as NodeLoadReport;
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.#call('GET', '/healthz', undefined, 1000)).status === 200;
    } catch {
      return false;
    }
  }

  async #call(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.options.requestTimeoutMs ?? 3000,
  ): Promise<{ status: number; code: string; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.options.controlUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.options.controlSecret}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new MediaNodeUnavailableError(`media node ${this.options.controlUrl} unreachable: ${(error as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    const code = (parsed as { error?: string } | null)?.error ?? '';
    return { status: res.status, code, body: parsed };
  }
}
