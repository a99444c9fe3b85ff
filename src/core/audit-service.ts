/**
 * The audit log as the rest of the broker sees it: record what happened (谁使用,谁负责), read it back
 * scoped by role, verify the chain. The chain itself lives behind the AuditStore port.
 * @see ../shared/API.md "Audit"
 */
import type { AuditDraft, AuditEntry, Principal } from './model.js';
import type { AccessScope, AuditQuery, AuditStore } from './ports.js';
import { badRequest } from './errors.js';
import { verifyChain } from './audit-chain.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { DenialCoalescer } from './denial-coalescer.js';
import { headOf, verifyExtension, type AuditSigner, type SignedAuditHead } from './audit-head.js';

export interface AuditFilter {
  agencyId?: string;
  userId?: string;
  channelId?: string;
  action?: string;
  from?: string;
  to?: string;
  limit: number;
  cursor?: string;
}

export interface AuditServiceOptions {
  /** Repeated denials of one caller are counted into one entry per window (default: a minute). */
  coalesceWindowMs?: number;
  /** Bound of the denial coalescer's keys (BROKER_AUDIT_COALESCE_MAX_KEYS). */
  coalesceMaxKeys?: number;
  /** A summary written on the coalescer's timer failed (the store is down): there is no caller to tell. */
  onError?: (err: unknown) => void;
  now?: () => number;
  /** Signs heads (GET /audit/head, reports); without one, signedHead() throws. */
  signer?: AuditSigner;
}

export class AuditService {
  private readonly listeners = new Set<(entry: AuditEntry) => void>();
  private readonly denials: DenialCoalescer;
  private readonly signer: AuditSigner | undefined;

  constructor(
    private readonly store: AuditStore,
    options: AuditServiceOptions = {},
  ) {
    this.signer = options.signer;
    this.denials = new DenialCoalescer({
      windowMs: options.coalesceWindowMs ?? 60_000,
      maxKeys: options.coalesceMaxKeys ?? 10_000,
      now: options.now,
      write: async (draft) => {
        try {
          await this.append([draft]);
        } catch (err) {
          options.onError?.(err);
        }
      },
    });
  }

  /**
   * Durable when resolved. Callers await it before answering, so an acknowledged action is on record.
   * The exception is a repeated denial (API.md "Audit"): it is counted, and on record as part of one
   * summary entry once its window closes; it is not among the entries returned.
   */
  async record(...drafts: AuditDraft[]): Promise<AuditEntry[]> {
    const written = drafts.filter((draft) => !this.denials.absorb(draft));
    return written.length > 0 ? this.append(written) : [];
  }

  /** Writes the summaries of every open denial window now (close, tests, reports that must be complete). */
  flushDenials(): Promise<void> {
    return this.denials.flush(true);
  }

  /** Writes what is pending and stops the coalescer's timer; call before the store closes. */
  close(): Promise<void> {
    return this.denials.close();
  }

  private async append(drafts: AuditDraft[]): Promise<AuditEntry[]> {
    const entries = await this.store.append(drafts);
    for (const entry of entries) for (const listener of this.listeners) listener(entry);
    return entries;
  }

  onRecord(listener: (entry: AuditEntry) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Narrowed to what the caller's `reach` of audit:read covers (the authorizer's answer): any
   * (platform-admin) everything, own (admin) its agency, self (operator) its own actions.
   */
  async query(principal: Principal, reach: AccessScope, filter: AuditFilter): Promise<{ items: AuditEntry[]; nextCursor: string | null }> {
    for (const bound of [filter.from, filter.to]) {
      if (bound !== undefined && Number.isNaN(Date.parse(bound))) throw badRequest(`not an ISO-8601 time: ${bound}`);
    }
    const q: AuditQuery = {
      agencyId: filter.agencyId,
      userId: filter.userId,
      channelId: filter.channelId,
      action: filter.action,
      from: filter.from && new Date(filter.from).toISOString(),
      to: filter.to && new Date(filter.to).toISOString(),
      limit: filter.limit,
    };
    if (filter.cursor) {
      const beforeSeq = Number(decodeCursor(filter.cursor));
      if (!Number.isSafeInteger(beforeSeq) || beforeSeq < 1) throw badRequest('invalid cursor');
      q.beforeSeq = beforeSeq;
    }
    if (reach === 'own') q.agencyId = principal.agencyId;
    else if (reach === 'self') q.userId = principal.id;

    const items = await this.store.query({ ...q, limit: filter.limit + 1 });
    const page = items.slice(0, filter.limit);
    const last = page[page.length - 1];
    return { items: page, nextCursor: items.length > filter.limit && last ? encodeCursor(String(last.seq)) : null };
  }

  verify(): Promise<{ ok: boolean; entries: number; firstBadSeq: number | null }> {
    return verifyChain(this.store.scan());
  }

  /** verify(), and whether the log still holds entry `kept.seq` with hash `kept.hash` (a kept head). */
  async verifyExtends(kept: { seq: number; hash: string }): Promise<{ ok: boolean; entries: number; firstBadSeq: number | null; extends: boolean }> {
    const verdict = await verifyExtension(this.store.scan(), kept);
    return { ok: verdict.ok, entries: verdict.entries, firstBadSeq: verdict.firstBadSeq, extends: verdict.extends };
  }

  /** The newest entry's position, signed (API.md "Audit"). */
  async signedHead(): Promise<SignedAuditHead> {
    return this.requireSigner().sign(headOf(await this.store.head()));
  }

  /** Signs a position (the month's last entry of a report). */
  signHead(entry: { seq: number; hash: string; at: string }): SignedAuditHead {
    return this.requireSigner().sign(entry);
  }

  /** The key heads verify with. */
  publicKey(): { keyId: string; publicKeyPem: string } {
    const signer = this.requireSigner();
    return { keyId: signer.keyId, publicKeyPem: signer.publicKeyPem };
  }

  private requireSigner(): AuditSigner {
    if (!this.signer) throw new Error('audit: no signing key configured');
    return this.signer;
  }

  scan(): AsyncIterable<AuditEntry> {
    return this.store.scan();
  }
}
