/**
 * Rules of the forwarding and analytics pools, shared by every SlotStore adapter. The memory store calls these
 * functions; the Redis store mirrors them in src/store/redis/lua/pool-*.lua (a change here must be made there too,
 * and test/store/slot-store-conformance.ts runs the same cases on both).
 *
 * @see ../../../shared/API.md "Streams", "Analytics", "Capacity"
 */
import type { Priority } from './model.js';

export const DEFAULT_FORWARDING_LIMIT = 3000;
export const DEFAULT_ANALYTICS_LIMIT = 1000;
export const DEFAULT_IDLE_CLOSE_MS = 10_000;

/** Same principal + Idempotency-Key within this window → the same session. @see API.md "Streams" */
export const IDEMPOTENCY_WINDOW_MS = 10 * 60_000;
/** Granted/dropped ticket outcomes stay readable this long, so a waiter polling late still learns them. */
export const TICKET_OUTCOME_RETENTION_MS = 60_000;

/** Bounds of the Retry-After hint given with a capacity denial. */
export const RETRY_AFTER_MIN_MS = 1_000;
export const RETRY_AFTER_MAX_MS = 30_000;

/** normal < urgent < emergency. Mirrored as RANK in the Lua scripts. */
export const PRIORITY_RANK: Readonly<Record<Priority, number>> = { normal: 0, urgent: 1, emergency: 2 };
export const TOP_RANK = 2;

/**
 * Queue order as one sortable number (the Redis queue is a ZSET): higher priority first, then arrival.
 * Each priority owns a band of QUEUE_BAND scores; ticket sequence numbers stay far below it, and every score
 * stays below 2^53 so the double is exact.
 */
export const QUEUE_BAND = 1e12;
export function queueScore(priority: Priority, seq: number): number {
  return (TOP_RANK - PRIORITY_RANK[priority]) * QUEUE_BAND + seq;
}

/**
 * Queued tickets are served before new arrivals: an arrival with no ticket may take room only when there is more
 * room than tickets of its priority or higher are waiting for. Room counts free slots plus idle lingering
 * forwards, because any new forward may reclaim an idle one (see reclaim in the stores).
 */
export function arrivalMayTakeRoom(room: number, queuedAtOrAbove: number): boolean {
  return room > queuedAtOrAbove;
}

/** A capacity denial's Retry-After: until the next lease lapse or linger end, within sane bounds. */
export function capacityRetryAfterMs(now: number, nextFreeAt: number | null): number {
  if (nextFreeAt === null) return RETRY_AFTER_MAX_MS;
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(RETRY_AFTER_MIN_MS, nextFreeAt - now));
}

/** Quota frees only when the agency itself lets go of a channel: no useful hint, so none (0). */
export const QUOTA_RETRY_AFTER_MS = 0;

/** A forward that emergency preemption may end: live (not lingering) and every session on it `normal`. */
export interface PreemptionCandidate {
  channelId: string;
  /** Fences grow with every new forward, so the highest fence is the most recently started forward. */
  fence: number;
  /** Agencies with at least one session on the forward. */
  holders: Iterable<string>;
}

/**
 * Emergency preemption's victim. Reading of API.md ("frees the most recently started slot whose sessions are all
 * normal, preferring the agency that holds the most slots"): agencies are ranked by the forwards they hold (their
 * quota count: distinct channels their sessions are on), most first; the first agency in that order that holds any
 * candidate loses its most recently started candidate. Ties between equally loaded agencies go to the one whose
 * candidate started last, so the choice is deterministic and still "most recent" where load does not decide.
 */
export function chooseVictim(
  candidates: Iterable<PreemptionCandidate>,
  forwardsHeld: (agencyId: string) => number,
): string | null {
  const newestByAgency = new Map<string, PreemptionCandidate>();
  for (const candidate of candidates) {
    for (const agencyId of candidate.holders) {
      const newest = newestByAgency.get(agencyId);
      if (!newest || candidate.fence > newest.fence) newestByAgency.set(agencyId, candidate);
    }
  }
  let victim: PreemptionCandidate | null = null;
  let victimLoad = -1;
  for (const [agencyId, candidate] of newestByAgency) {
    const load = forwardsHeld(agencyId);
    if (load > victimLoad || (load === victimLoad && victim !== null && candidate.fence > victim.fence)) {
      victim = candidate;
      victimLoad = load;
    }
  }
  return victim?.channelId ?? null;
}

/** Key of the idempotency record. Newline cannot occur in principal ids, so the pair is unambiguous. */
export function idempotencyField(principalId: string, idempotencyKey: string): string {
  return `${principalId}\n${idempotencyKey}`;
}
