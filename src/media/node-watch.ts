/**
 * What the broker knows about one media node: the forwards it asked it to run, and the node's last
 * reported load. Polling GET /load turns the node's `failed` list into onForwardFailed calls, once each
 * (the node numbers its failures; a restarted node starts again at 1). A node that is lost takes all
 * its forwards with it. Each poll also claims the node's player events (player-events.ts) for the
 * broker's audit log.
 */
import type { Logger } from 'pino';
import type { MediaNodeClient } from './media-node-client.js';
import type { MediaPlayerEvents } from '../core/ports.js';
import type { NodeLoadReport } from './media-node.js';

export type ForwardFailedListener = (channelId: string, fence: number) => void;
export type PlayerEventsListener = (report: MediaPlayerEvents) => void;
export type TranscodeFailedListener = (channelId: string, sessionIds: string[]) => void;

export class NodeWatch {
  readonly #active = new Map<string, number>();
  #lastFailureSeq = 0;
  #lastTranscodeFailureSeq = 0;
  #lastLoad: NodeLoadReport | null = null;
  #alive = false;

  constructor(
    readonly client: MediaNodeClient,
    private readonly reportFailed: ForwardFailedListener,
    private readonly log: Logger,
    private readonly reportPlayers: PlayerEventsListener = () => undefined,
    private readonly reportTranscodeFailed: TranscodeFailedListener = () => undefined,
  ) {}

  get alive(): boolean {
    return this.#alive;
  }

  get lastLoad(): NodeLoadReport | null {
    return this.#lastLoad;
  }

  /** Forwards placed here, as the broker counts them (the node's own count may lag by a poll). */
  get forwardCount(): number {
    return this.#active.size;
  }

  forwardStarted(channelId: string, fence: number): void {
    this.#active.set(channelId, fence);
  }

  forwardStopped(channelId: string, fence: number): void {
    if (this.#active.get(channelId) === fence) this.#active.delete(channelId);
  }

  hasForward(channelId: string, fence: number): boolean {
    return this.#active.get(channelId) === fence;
  }

  async poll(): Promise<void> {
    let load: NodeLoadReport;
    try {
      load = await this.client.load();
    } catch {
      this.#alive = false;
      return;
    }
    this.#alive = true;
    this.#lastLoad = load;
    for (const failure of load.failed) {
      if (failure.seq <= this.#lastFailureSeq) continue;
      this.#lastFailureSeq = failure.seq;
      this.#fail(failure.channelId, failure.fence, failure.reason);
    }
    this.#lastTranscodeFailureSeq = reportTranscodeFailures(load, this.#lastTranscodeFailureSeq, this.reportTranscodeFailed, this.log);
    await claimPlayerEvents(this.client, load.id, this.reportPlayers, this.log);
  }

  /** The node process is gone (or replaced): every forward on it failed; a new process counts afresh. */
  nodeLost(): void {
    const id = this.#lastLoad?.id;
    if (id !== undefined) {
      try {
        this.reportPlayers({ nodeId: id, events: [], missed: 0, nodeLost: true });
      } catch (error) {
        this.log.error({ err: (error as Error).message, nodeId: id }, 'player-events listener threw');
      }
    }
    this.#alive = false;
    this.#lastLoad = null;
    this.#lastFailureSeq = 0;
    this.#lastTranscodeFailureSeq = 0;
    for (const [channelId, fence] of [...this.#active]) this.#fail(channelId, fence, 'node-lost');
  }

  #fail(channelId: string, fence: number, reason: string): void {
    if (this.#active.get(channelId) !== fence) return;
    this.#active.delete(channelId);
    this.log.warn({ channelId, fence, reason, node: this.client.controlUrl }, 'forward failed');
    this.reportFailed(channelId, fence);
  }
}

/** Claim a node's player events and hand them on (shared with the nodes adapter); a failed claim waits for the next poll. */
export async function claimPlayerEvents(client: MediaNodeClient, nodeId: string, report: PlayerEventsListener, log: Logger): Promise<void> {
  let claim;
  try {
    claim = await client.claimPlayerEvents();
  } catch (error) {
    log.warn({ err: (error as Error).message, node: client.controlUrl }, 'player events claim failed');
    return;
  }
  if (claim.events.length === 0 && claim.missed === 0) return;
  try {
    report({ nodeId, events: claim.events, missed: claim.missed });
  } catch (error) {
    log.error({ err: (error as Error).message, nodeId }, 'player-events listener threw');
  }
}

/** Hands on a node's transcode failures newer than `lastSeq` (shared with the nodes adapter); returns the new last seq. */
export function reportTranscodeFailures(load: NodeLoadReport, lastSeq: number, report: TranscodeFailedListener, log: Logger): number {
  let seq = lastSeq;
  for (const failure of load.failedTranscodes ?? []) {
    if (failure.seq <= seq) continue;
    seq = failure.seq;
    log.warn({ channelId: failure.channelId, sessions: failure.sessionIds.length, node: load.id }, 'transcode failed');
    try {
      report(failure.channelId, failure.sessionIds);
    } catch (error) {
      log.error({ err: (error as Error).message, channelId: failure.channelId }, 'transcode-failed listener threw');
    }
  }
  return seq;
}
