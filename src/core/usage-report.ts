/**
 * Monthly usage per agency, computed from the audit log alone: the log is the record of who used what
 * (谁使用,谁负责), so the report needs no counters of its own and can be recomputed for any past month.
 * @see ../shared/API.md "Reports"
 */
import type { AuditEntry } from './model.js';
import { requestsOf } from './denial-coalescer.js';
import type { AuditHead, SignedAuditHead } from './audit-head.js';

export interface AgencyUsage {
  agencyId: string;
  /** Stream sessions granted in the month. */
  sessions: number;
  /** Distinct channels among those sessions. */
  distinctChannels: number;
  /**
   * Time players were connected to the agency's sessions' URLs: the seconds of the month's `play.end`
   * entries (issue 9), to 0.1 minute. Not lease time: a session nobody played counts nothing, one with
   * two players counts both.
   */
  viewingMinutes: number;
  analyticsReservations: number;
  /** Stream and analytics requests refused (a coalesced entry counts as the denials it stands for). */
  denied: number;
}

/** Who watched most and which channels (issue 9): one row per user with a session or a player in the month. */
export interface UserUsage {
  userId: string;
  agencyId: string;
  /** Stream sessions granted to the user in the month. */
  sessions: number;
  viewingMinutes: number;
  /** Channels the user's players watched, most watched first. */
  channels: Array<{ channelId: string; viewingMinutes: number }>;
}

export interface UsageReport {
  month: string;
  agencies: AgencyUsage[];
  /** Per user, most viewing first (API.md "Reports" extended by issue 9); usageReport always fills it. */
  users?: UserUsage[];
  /**
   * The signed head at the month's end: the last entry whose `at` is in the month (null when none), so an
   * agency that files the report holds a checkpoint of the log (API.md "Audit"). Present when the caller
   * gave a signer.
   */
  auditHead?: SignedAuditHead | null;
}

export interface UsageReportOptions {
  /** Signs the month's last entry (AuditService.signHead); without it the report has no auditHead. */
  signHead?: (head: AuditHead) => SignedAuditHead;
}

export const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

interface UserTally {
  agencyId: string;
  sessions: number;
  viewingMs: number;
  channels: Map<string, number>;
}

const minutes = (ms: number) => Math.round(ms / 6000) / 10;

interface Tally {
  sessions: number;
  channels: Set<string>;
  viewingMs: number;
  analyticsReservations: number;
  denied: number;
}

/**
 * Entries are taken in log order. `at` never decreases along the chain, so the scan stops at the first
 * entry past the month. The agency is the one the entry names in its details (the session's), else the actor's.
 */
export async function usageReport(entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>, month: string, options: UsageReportOptions = {}): Promise<UsageReport> {
  if (!MONTH.test(month)) throw new RangeError(`not a month (YYYY-MM): ${month}`);
  const tallies = new Map<string, Tally>();
  const tally = (agencyId: string) => {
    let t = tallies.get(agencyId);
    if (!t) tallies.set(agencyId, (t = { sessions: 0, channels: new Set(), viewingMs: 0, analyticsReservations: 0, denied: 0 }));
    return t;
  };

  const users = new Map<string, UserTally>();
  const user = (userId: string, agencyId: string) => {
    let u = users.get(userId);
    if (!u) users.set(userId, (u = { agencyId, sessions: 0, viewingMs: 0, channels: new Map() }));
    return u;
  };

  let monthEnd: AuditEntry | undefined;
  for await (const entry of entries) {
    const entryMonth = entry.at.slice(0, 7);
    if (entryMonth < month) continue;
    if (entryMonth > month) break;
    monthEnd = entry;
    const detailAgency = entry.details?.agencyId;
    const agencyId = typeof detailAgency === 'string' ? detailAgency : entry.actor.agencyId;
    if (entry.action === 'stream.grant' && entry.outcome === 'ok') {
      const t = tally(agencyId);
      t.sessions++;
      if (typeof entry.details?.channelId === 'string') t.channels.add(entry.details.channelId);
      user(entry.actor.id, agencyId).sessions++;
    } else if (entry.action === 'play.end' && entry.details?.kind !== 'analytics') {
      // The player's end names the session's agency and user (player-audit.ts); an analytics relay's is no viewing.
      const seconds = entry.details?.seconds;
      if (typeof seconds !== 'number' || !(seconds > 0)) continue;
      const ms = seconds * 1000;
      tally(agencyId).viewingMs += ms;
      const userId = entry.details?.userId;
      if (typeof userId === 'string') {
        const u = user(userId, agencyId);
        u.viewingMs += ms;
        const channelId = typeof entry.details?.channelId === 'string' ? entry.details.channelId : '';
        u.channels.set(channelId, (u.channels.get(channelId) ?? 0) + ms);
      }
    } else if (entry.action === 'analytics.grant' && entry.outcome === 'ok') {
      tally(agencyId).analyticsReservations++;
    } else if (entry.action === 'stream.deny' || entry.action === 'analytics.deny') {
      // A summary of repeated denials (denial-coalescer.ts) stands for `count` of them.
      tally(agencyId).denied += requestsOf(entry);
    }
  }

  const agencies = [...tallies.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([agencyId, t]) => ({
      agencyId,
      sessions: t.sessions,
      distinctChannels: t.channels.size,
      viewingMinutes: minutes(t.viewingMs),
      analyticsReservations: t.analyticsReservations,
      denied: t.denied,
    }));
  const userRows = [...users.entries()]
    .map(([userId, u]) => ({ userId, u }))
    .sort((a, b) => b.u.viewingMs - a.u.viewingMs || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0))
    .map(({ userId, u }) => ({
      userId,
      agencyId: u.agencyId,
      sessions: u.sessions,
      viewingMinutes: minutes(u.viewingMs),
      channels: [...u.channels.entries()].sort((a, b) => b[1] - a[1]).map(([channelId, ms]) => ({ channelId, viewingMinutes: minutes(ms) })),
    }));
  if (!options.signHead) return { month, agencies, users: userRows };
  return { month, agencies, users: userRows, auditHead: monthEnd ? options.signHead({ seq: monthEnd.seq, hash: monthEnd.hash, at: monthEnd.at }) : null };
}

export const USAGE_CSV_HEADER = ['month', 'agencyId', 'sessions', 'distinctChannels', 'viewingMinutes', 'analyticsReservations', 'denied'] as const;
/**
 * Columns of the per-user table `npm run report` prints after the agency table. The CSV keeps the one
 * agency table (spreadsheets and scripts read it by position); per-user rows are in the JSON.
 */
export const USAGE_CSV_USER_HEADER = ['month', 'userId', 'agencyId', 'sessions', 'viewingMinutes', 'channels'] as const;

/** A text cell a spreadsheet would read as a formula (OWASP "CSV Injection"): =, +, -, @, tab, CR first. */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One RFC 4180 field: quoted when it holds a comma, a double quote, CR or LF, with inner quotes doubled.
 * A text cell that starts like a formula is prefixed with `'` and quoted, so a spreadsheet shows it as
 * text (API.md "Reports"); numbers are written as numbers.
 * @see https://www.rfc-editor.org/rfc/rfc4180#section-2
 * @see https://owasp.org/www-community/attacks/CSV_Injection
 */
export function csvField(value: string | number): string {
  const text = String(value);
  if (typeof value === 'string' && FORMULA_START.test(text)) return `"'${text.replace(/"/g, '""')}"`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 text: header row, one row per agency, CRLF line ends (including the last). */
export function usageReportCsv(report: UsageReport): string {
  const rows = [
    USAGE_CSV_HEADER as readonly (string | number)[],
    ...report.agencies.map((a) => [report.month, a.agencyId, a.sessions, a.distinctChannels, a.viewingMinutes, a.analyticsReservations, a.denied]),
  ];
  return rows.map((row) => row.map(csvField).join(',') + '\r\n').join('') + auditHeadCsvFooter(report);
}

/**
 * The CSV's last line when the report carries a head: `auditHead,seq=…,hash=…,at=…,keyId=…,signature=…`
 * (`auditHead,none` for a month without entries). Each cell starts with its name, so no cell is read as a
 * formula and no value needs quoting: the base64 signature is exactly as signed after `signature=`.
 */
export function auditHeadCsvFooter(report: UsageReport): string {
  if (report.auditHead === undefined) return '';
  const head = report.auditHead;
  const cells = head === null ? ['auditHead', 'none'] : ['auditHead', `seq=${head.seq}`, `hash=${head.hash}`, `at=${head.at}`, `keyId=${head.keyId}`, `signature=${head.signature}`];
  return cells.map(csvField).join(',') + '\r\n';
}
