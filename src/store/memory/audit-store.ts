/**
 * Embedded AuditStore: `audit.jsonl` in the data dir is the chain itself, one AuditEntry per line, so
 * `audit:verify` reads the file directly. Entries are chained synchronously when `append` is called (chain
 * order = call order) and group-committed; they become visible to query/scan/head once durable.
 */
import path from 'node:path';
import { chainEntryWithJson, GENESIS_HEAD, nextEntryTime, type ChainHead } from '../../core/audit-chain.js';
import { auditFilter } from '../../core/audit-query.js';
import type { AuditDraft, AuditEntry } from '../../core/model.js';
import type { AuditQuery, AuditStore } from '../../core/ports.js';
import { Journal, type JournalOptions } from './journal.js';

export const AUDIT_FILE = 'audit.jsonl';

export class MemoryAuditStore implements AuditStore {
  /** Durable entries, oldest first; entries[i].seq === i + 1 in an intact log. */
  private readonly entries: AuditEntry[] = [];
  private journal!: Journal<AuditEntry>;
  /** Where the next entry chains from: ahead of `entries` while a write is in flight. */
  private tip: ChainHead & { at?: string } = GENESIS_HEAD;

  private constructor() {}

  static async open(dataDir: string, options: JournalOptions = {}): Promise<MemoryAuditStore> {
    const store = new MemoryAuditStore();
    const { journal } = await Journal.open<AuditEntry>(
      path.join(dataDir, AUDIT_FILE),
      (entry) => store.entries.push(frozen(entry)),
      options,
    );
    store.journal = journal;
    const last = store.entries.at(-1);
    if (last) store.tip = { seq: last.seq, hash: last.hash, at: last.at };
    return store;
  }

  async append(drafts: readonly AuditDraft[]): Promise<AuditEntry[]> {
    const chained: AuditEntry[] = [];
    const lines: string[] = [];
    for (const draft of drafts) {
      const { entry: made, json } = chainEntryWithJson(this.tip, draft, nextEntryTime(this.tip.at));
      const entry = frozen(made);
      chained.push(entry);
      lines.push(json);
      this.tip = { seq: entry.seq, hash: entry.hash, at: entry.at };
    }
    if (chained.length === 0) return chained;
    await this.journal.appendSerialized(lines);
    // Batches become durable in the order they were chained, so pushing here keeps `entries` in seq order.
    this.entries.push(...chained);
    return chained;
  }

  async query(q: AuditQuery): Promise<AuditEntry[]> {
    const filter = auditFilter(q);
    const hits: AuditEntry[] = [];
    if (q.limit <= 0) return hits;
    // In an intact log seq n sits at index n-1, so beforeSeq jumps straight to its place.
    let i = q.beforeSeq === undefined ? this.entries.length - 1 : Math.min(this.entries.length, q.beforeSeq - 1) - 1;
    if (filter.to !== undefined) i = Math.min(i, this.lastIndexAtOrBefore(filter.to));
    for (; i >= 0 && hits.length < q.limit; i--) {
      const entry = this.entries[i];
      if (filter.from !== undefined && entry.at < filter.from) break;
      if (q.beforeSeq !== undefined && entry.seq >= q.beforeSeq) continue;
      if (filter.matches(entry)) hits.push(entry);
    }
    return hits;
  }

  async *scan(): AsyncIterable<AuditEntry> {
    // Durable entries only grow at the end, so walking by index is safe while appends continue.
    for (let i = 0; i < this.entries.length; i++) yield this.entries[i];
  }

  async head(): Promise<{ seq: number; hash: string; at?: string }> {
    const last = this.entries.at(-1);
    return last ? { seq: last.seq, hash: last.hash, at: last.at } : { seq: GENESIS_HEAD.seq, hash: GENESIS_HEAD.hash };
  }

  close(): Promise<void> {
    return this.journal.close();
  }

  /** Binary search: `at` never decreases along the chain (nextEntryTime). */
  private lastIndexAtOrBefore(to: string): number {
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.entries[mid].at <= to) low = mid + 1;
      else high = mid;
    }
    return low - 1;
  }
}

/** Entries are evidence: handed out as they are, so nobody holding one can alter the stored copy. */
function frozen(entry: AuditEntry): AuditEntry {
  Object.freeze(entry.actor);
  if (entry.details) Object.freeze(entry.details);
  return Object.freeze(entry);
}
