/**
 * The filters of GET /audit (../shared/API.md "Audit"), shared by every AuditStore so they agree.
 */
import type { AuditEntry } from './model.js';
import type { AuditQuery } from './ports.js';

export interface AuditFilter {
  /** True when the entry passes every filter except the time and seq bounds. */
  matches(entry: AuditEntry): boolean;
  /** Normalised ISO bounds (inclusive), comparable with `entry.at` as strings. */
  from: string | undefined;
  to: string | undefined;
  /** True when only limit/beforeSeq/from/to are set: every entry in range is a hit. */
  unfiltered: boolean;
}

/** `action` may end in '*' to match a prefix ("stream.*"). Times may be any Date.parse-able string. */
export function auditFilter(q: AuditQuery): AuditFilter {
  const prefix = q.action?.endsWith('*') ? q.action.slice(0, -1) : undefined;
  const tests: Array<(e: AuditEntry) => boolean> = [];
  if (q.agencyId !== undefined) {
    const agencyId = q.agencyId;
    tests.push((e) => e.actor.agencyId === agencyId || e.details?.agencyId === agencyId);
  }
  if (q.userId !== undefined) {
    const userId = q.userId;
    tests.push((e) => e.actor.id === userId);
  }
  if (q.channelId !== undefined) {
    const channelId = q.channelId;
    tests.push((e) => e.target === channelId || e.details?.channelId === channelId);
  }
  if (q.action !== undefined) {
    const action = q.action;
    tests.push(prefix !== undefined ? (e) => e.action.startsWith(prefix) : (e) => e.action === action);
  }
  return {
    matches: (entry) => tests.every((test) => test(entry)),
    from: isoBound(q.from),
    to: isoBound(q.to),
    unfiltered: tests.length === 0,
  };
}

function isoBound(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new RangeError(`not a time: ${value}`);
  return new Date(ms).toISOString();
}
