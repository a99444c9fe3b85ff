/**
 * AuditStore over Redis: one chain shared by every broker of the city.
 *
 * Keys (hash tag {audit}: the append script touches both in one cluster slot):
 *   <prefix>:audit:{audit}:head     hash    {seq, hash, at} of the newest entry
 *   <prefix>:audit:{audit}:entries  stream  ID "<seq>-0", field e = the entry's JSON
 * A stream gives O(log n) access by seq for paging (XREVRANGE from beforeSeq) and ordered scans.
 *
 * Hashes are computed here (sha256, same code as the embedded store); Redis only checks that the head is
 * still the one we chained from and appends (audit-append.lua). When another broker got there first we
 * re-chain the batch from the head it returns and try again. Within this process appends are queued and
 * sent as batches, one script call at a time.
 */
import { chainEntryWithJson, GENESIS_HASH, nextEntryTime, type ChainHead } from '../../core/audit-chain.js';
import { auditFilter } from '../../core/audit-query.js';
import { DomainError } from '../../core/errors.js';
import type { AuditDraft, AuditEntry } from '../../core/model.js';
import type { AuditQuery, AuditStore } from '../../core/ports.js';
import { LuaScript, redisCall, type RedisClient } from './client.js';

const appendScript = LuaScript.load('audit-append');

/** Entries per script call; a longer queue is sent in several calls. */
const MAX_BATCH = 500;
/** Lost compare-and-append races before giving up (each loss means another broker made progress). */
const MAX_RACES = 100;
const PAGE = 500;

type Head = ChainHead & { at: string | undefined };

interface QueuedAppend {
  drafts: readonly AuditDraft[];
  resolve: (entries: AuditEntry[]) => void;
  reject: (error: Error) => void;
}

export interface RedisAuditStoreOptions {
  prefix: string;
}

export class RedisAuditStore implements AuditStore {
  private readonly headKey: string;
  private readonly entriesKey: string;
  private readonly queue: QueuedAppend[] = [];
  private draining = false;
  /** Last head we know of; undefined = ask Redis. Only a hint: the script has the final word. */
  private knownHead: Head | undefined;

  constructor(
    private readonly client: RedisClient,
    options: RedisAuditStoreOptions,
  ) {
    this.headKey = `${options.prefix}:audit:{audit}:head`;
    this.entriesKey = `${options.prefix}:audit:{audit}:entries`;
  }

  append(drafts: readonly AuditDraft[]): Promise<AuditEntry[]> {
    if (drafts.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ drafts, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  async query(q: AuditQuery): Promise<AuditEntry[]> {
    const filter = auditFilter(q);
    const hits: AuditEntry[] = [];
    let end = q.beforeSeq === undefined ? '+' : `${q.beforeSeq - 1}-0`;
    if (q.limit <= 0 || (q.beforeSeq !== undefined && q.beforeSeq <= 1)) return hits;
    const count = filter.unfiltered && filter.to === undefined ? q.limit : Math.max(q.limit, PAGE);
    for (;;) {
      const page = await redisCall(this.client, () => this.client.xRevRange(this.entriesKey, end, '-', { COUNT: count }));
      for (const { message } of page) {
        const entry = JSON.parse(message.e) as AuditEntry;
        // `at` never decreases along the chain, so everything further back is older still.
        if (filter.from !== undefined && entry.at < filter.from) return hits;
        if (filter.to !== undefined && entry.at > filter.to) continue;
        if (filter.matches(entry)) hits.push(entry);
        if (hits.length === q.limit) return hits;
      }
      const oldest = page.at(-1);
      if (page.length < count || !oldest) return hits;
      const oldestSeq = Number(oldest.id.split('-')[0]);
      if (oldestSeq <= 1) return hits;
      end = `${oldestSeq - 1}-0`;
    }
  }

  async *scan(): AsyncIterable<AuditEntry> {
    let start = '-';
    for (;;) {
      const page = await redisCall(this.client, () => this.client.xRange(this.entriesKey, start, '+', { COUNT: PAGE }));
      for (const { message } of page) yield JSON.parse(message.e) as AuditEntry;
      const newest = page.at(-1);
      if (page.length < PAGE || !newest) return;
      start = `${Number(newest.id.split('-')[0]) + 1}-0`;
    }
  }

  async head(): Promise<{ seq: number; hash: string; at?: string }> {
    const { seq, hash, at } = await this.readHead();
    return at === undefined ? { seq, hash } : { seq, hash, at };
  }

  private async readHead(): Promise<Head> {
    const [seq, hash, at] = await redisCall(this.client, () => this.client.hmGet(this.headKey, ['seq', 'hash', 'at']));
    return seq == null ? { seq: 0, hash: GENESIS_HASH, at: undefined } : { seq: Number(seq), hash: String(hash), at: at ?? undefined };
  }

  /** Sends queued appends, a batch at a time, until the queue is empty. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const batch: QueuedAppend[] = [];
        let size = 0;
        while (this.queue.length > 0 && (batch.length === 0 || size + this.queue[0].drafts.length <= MAX_BATCH)) {
          const next = this.queue.shift()!;
          batch.push(next);
          size += next.drafts.length;
        }
        try {
          const entries = await this.appendBatch(batch.flatMap((queued) => queued.drafts));
          let offset = 0;
          for (const queued of batch) {
            queued.resolve(entries.slice(offset, offset + queued.drafts.length));
            offset += queued.drafts.length;
          }
        } catch (error) {
          for (const queued of batch) queued.reject(error as Error);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async appendBatch(drafts: readonly AuditDraft[]): Promise<AuditEntry[]> {
    for (let race = 0; race < MAX_RACES; race++) {
      const from = this.knownHead ?? (await this.readHead());
      const entries: AuditEntry[] = [];
      const lines: string[] = [];
      let tip: Head = from;
      for (const draft of drafts) {
        const { entry, json } = chainEntryWithJson(tip, draft, nextEntryTime(tip.at));
        entries.push(entry);
        lines.push(json);
        tip = { seq: entry.seq, hash: entry.hash, at: entry.at };
      }
      let reply: unknown;
      try {
        reply = await appendScript.run(
          this.client,
          [this.headKey, this.entriesKey],
          [String(from.seq), from.hash, String(tip.seq), tip.hash, tip.at!, ...lines],
        );
      } catch (error) {
        this.knownHead = undefined;
        // A timeout does not tell whether the script ran; if the head is ours, it did.
        if (await this.headIs(tip).catch(() => false)) {
          this.knownHead = tip;
          return entries;
        }
        throw error;
      }
      const [appended, seq, hash, at] = reply as [number, string?, string?, string?];
      if (appended === 1) {
        this.knownHead = tip;
        return entries;
      }
      this.knownHead = seq === '0' ? { seq: 0, hash: GENESIS_HASH, at: undefined } : { seq: Number(seq), hash: hash!, at: at || undefined };
    }
    // Every lost race was another broker's progress: Redis is fine, this append is shed (503 + Retry-After).
    throw new DomainError('UNAVAILABLE', 503, 'the audit log is too busy, try again', { 'retry-after': '1' });
  }

  private async headIs(tip: Head): Promise<boolean> {
    const head = await this.readHead();
    return head.seq === tip.seq && head.hash === tip.hash;
  }
}
