/**
 * What a media node tells the broker about its players (issue 9): each admitted play's start and end,
 * and each play refused although its token was good (the session's player limit, an ended session, a
 * stale fence). The node has no audit store; it keeps the events the broker has not claimed yet in a
 * bounded queue, and a broker claims them (POST /player-events/claim) each poll and writes them to the
 * audit log. A claim hands an event out once, so several brokers polling one node (BROKER_MEDIA=nodes)
 * do not write it twice.
 *
 * Bounded: when the broker does not claim for long (down, cut off) and more than PLAYER_EVENTS_KEPT
 * events pile up, the oldest are dropped and counted; the next claim returns that count as `missed`,
 * and the broker audits the gap (`play.events-missed`) instead of silently lacking entries. An event
 * claimed by a broker that dies before it is written is lost the same way (at-most-once); a node that
 * crashes loses the events it had not handed out, and its players' ends (they were cut with it): the
 * embedded adapter audits that as a `play.events-missed` of unknown count. A planned stop of the
 * embedded node cuts its players and claims their ends first (media-control-embedded.ts close).
 * Every event carries a `seq` increasing per node process (`instance`), so a reader can see the order.
 */
import { randomBytes } from 'node:crypto';
import type { MediaPlayerEvent } from '../core/ports.js';

/** Unclaimed events a node keeps; at a claim per second this is minutes of a busy node's players. */
export const PLAYER_EVENTS_KEPT = 5000;
/** Most events one claim returns; the rest wait for the next. */
export const PLAYER_EVENTS_PER_CLAIM = 1000;

export type PlayerProtocol = MediaPlayerEvent['protocol'];
export type PlayerEvent = MediaPlayerEvent;

export interface PlayerEventClaim {
  instance: string;
  events: PlayerEvent[];
  /** Events dropped unclaimed since the previous claim (the queue was full). */
  missed: number;
}

export type PlayerEventDraft = Omit<PlayerEvent, 'seq' | 'at'>;

/**
 * Refusals one session may queue per REFUSAL_WINDOW_MS; more are counted and the count rides on the
 * session's next queued refusal (`suppressed`). A URL retried in a loop (pasted in a group chat, a
 * player that reconnects forever) must not push other sessions' starts and ends out of the queue.
 */
export const REFUSALS_PER_SESSION_PER_WINDOW = 5;
export const REFUSAL_WINDOW_MS = 60_000;
/** Sessions whose refusal window is tracked at once; the oldest go first. */
const REFUSAL_WINDOWS_KEPT = 10_000;

export class PlayerEventLog {
  readonly instance = randomBytes(8).toString('hex');
  readonly #pending: PlayerEvent[] = [];
  #seq = 0;
  #missed = 0;

  constructor(
    private readonly kept = PLAYER_EVENTS_KEPT,
    private readonly now: () => number = Date.now,
  ) {}

  readonly #refusals = new Map<string, { since: number; queued: number; suppressed: number }>();

  /** Queue a refusal, unless its session already queued its share of this window (then count it). */
  pushRefusal(draft: PlayerEventDraft): void {
    const now = this.now();
    let window = this.#refusals.get(draft.sessionId);
    if (!window || now - window.since >= REFUSAL_WINDOW_MS) {
      this.#refusals.delete(draft.sessionId);
      window = { since: now, queued: 0, suppressed: window?.suppressed ?? 0 };
      this.#refusals.set(draft.sessionId, window);
      if (this.#refusals.size > REFUSAL_WINDOWS_KEPT) this.#refusals.delete(this.#refusals.keys().next().value as string);
    }
    if (window.queued >= REFUSALS_PER_SESSION_PER_WINDOW) {
      window.suppressed += 1;
      return;
    }
    window.queued += 1;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    this.push(suppressed > 0 ? { ...draft, suppressed } : draft);
  }

  push(draft: PlayerEventDraft): void {
    this.#seq += 1;
    this.#pending.push({ seq: this.#seq, at: this.now(), ...draft });
    if (this.#pending.length > this.kept) {
      this.#pending.shift();
      this.#missed += 1;
    }
  }

  claim(max = PLAYER_EVENTS_PER_CLAIM): PlayerEventClaim {
    const events = this.#pending.splice(0, max);
    const missed = this.#missed;
    this.#missed = 0;
    return { instance: this.instance, events, missed };
  }

  get pending(): number {
    return this.#pending.length;
  }
}
