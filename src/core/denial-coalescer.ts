/**
 * API.md "Audit": a flood of requests on unknown ids does not flood the log — repeated denials of one
 * caller are counted into one entry per minute. The first denial of a (caller, action, reason) key in
 * a window is written at once, as it is; later ones in the window are only counted, and written as one
 * entry (`details.count`: how many denials it stands for) when the window closes, on a timer or on
 * close. Only `outcome: "denied"` is ever held back: grants, releases and errors are written one by one.
 *
 * Memory is bounded: at most `maxKeys` keys are tracked; denials of callers beyond that are merged
 * into one overflow entry per window (`audit.denials-merged`), so a flood of fresh callers cannot
 * grow the map or the log.
 * @see ../shared/API.md "Audit"
 */
import type { AuditDraft } from './model.js';

/** How many requests an audit entry stands for: a summary of repeated denials counts what it counted. */
export function requestsOf(entry: Pick<AuditDraft, 'outcome' | 'details'>): number {
  const count = entry.details?.count;
  return entry.outcome === 'denied' && typeof count === 'number' && Number.isSafeInteger(count) && count > 0 ? count : 1;
}

export interface DenialCoalescerOptions {
  /** One entry per key per window (API.md: a minute). */
  windowMs: number;
  /** Keys tracked at once (BROKER_AUDIT_COALESCE_MAX_KEYS). */
  maxKeys: number;
  /** Writes a summary entry; it reports its own failures (a flush on the timer has no caller to tell). */
  write(draft: AuditDraft): Promise<void>;
  now?: () => number;
}

interface Window {
  openedAt: number;
  /** Denials counted after the one written at once. */
  count: number;
  firstAt: number;
  lastAt: number;
  /** The latest counted denial: the summary names its target and details. */
  last?: AuditDraft;
}

const OVERFLOW_ACTOR = { id: 'system', role: 'system' as const, agencyId: 'platform' };

export class DenialCoalescer {
  private readonly windows = new Map<string, Window>();
  private overflow: { openedAt: number; count: number; callers: Set<string>; firstAt: number; lastAt: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: DenialCoalescerOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * True when the draft was counted into an open window (nothing to write now); false when it must
   * be written at once (not a denial, or the first of its key in the window).
   */
  absorb(draft: AuditDraft): boolean {
    if (draft.outcome !== 'denied') return false;
    const now = this.now();
    const key = `${draft.actor.id}\u0000${draft.action}\u0000${draft.reason ?? ''}`;
    const open = this.windows.get(key);
    if (open) {
      open.count++;
      open.last = draft;
      open.lastAt = now;
      return true;
    }
    if (this.windows.size >= this.o.maxKeys) {
      this.overflow ??= { openedAt: now, count: 0, callers: new Set(), firstAt: now, lastAt: now };
      this.overflow.count++;
      this.overflow.lastAt = now;
      // Distinct callers are only counted up to the key cap as well.
      if (this.overflow.callers.size < this.o.maxKeys) this.overflow.callers.add(draft.actor.id);
      this.arm();
      return true;
    }
    this.windows.set(key, { openedAt: now, count: 0, firstAt: now, lastAt: now });
    this.arm();
    return false;
  }

  /** Writes the summaries of windows that have closed (all of them when `all`). */
  async flush(all = false): Promise<void> {
    const now = this.now();
    const due: AuditDraft[] = [];
    for (const [key, window] of this.windows) {
      if (!all && now - window.openedAt < this.o.windowMs) continue;
      this.windows.delete(key);
      if (window.count > 0 && window.last) due.push(summary(window.last, window));
    }
    if (this.overflow && (all || now - this.overflow.openedAt >= this.o.windowMs)) {
      const o = this.overflow;
      this.overflow = undefined;
      due.push({
        actor: OVERFLOW_ACTOR,
        action: 'audit.denials-merged',
        target: 'callers',
        outcome: 'denied',
        reason: 'coalesce-overflow',
        details: { count: o.count, callers: o.callers.size, firstAt: new Date(o.firstAt).toISOString(), lastAt: new Date(o.lastAt).toISOString() },
      });
    }
    if (this.windows.size === 0 && !this.overflow) this.disarm();
    for (const draft of due) await this.o.write(draft);
  }

  /** Writes every pending summary now and stops the timer. */
  async close(): Promise<void> {
    this.disarm();
    await this.flush(true);
    this.disarm();
  }

  private arm(): void {
    if (this.timer) return;
    // Windows close at most this late after their minute; the timer never keeps the process alive.
    this.timer = setInterval(() => {
      this.flush().catch(() => undefined);
    }, Math.min(1000, this.o.windowMs));
    this.timer.unref();
  }

  private disarm(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

function summary(last: AuditDraft, window: Window): AuditDraft {
  return {
    ...last,
    details: {
      ...last.details,
      count: window.count,
      firstAt: new Date(window.firstAt).toISOString(),
      lastAt: new Date(window.lastAt).toISOString(),
    },
  };
}
