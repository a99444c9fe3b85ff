/**
 * Embedded DocumentStore: every document lives in Maps, every change is a line in `state.jsonl` under the
 * data dir (group-committed, so durable when the promise resolves), and opening replays the journal.
 * Checks and writes happen in one synchronous step of the event loop, which is what makes `unique` and
 * `ifAbsent` atomic here (the Redis store gets the same from a Lua script).
 */
import path from 'node:path';
import { ConflictError } from '../../core/ports.js';
import type { Collection, DocumentChange, DocumentStore, PutOptions } from '../../core/ports.js';
import { Journal, type JournalOptions } from './journal.js';

export const STATE_FILE = 'state.jsonl';

/** A unique key a document holds: [index, key]. */
type UniqueKey = [string, string];

/** One journal line: a put (with the unique keys the document holds) or a delete. */
type StateRecord = { c: Collection; id: string; doc: unknown; u?: UniqueKey[] } | { c: Collection; id: string; del: 1 };

/** Rewrite at open once superseded lines outnumber live documents by this factor (and the minimum below). */
const COMPACT_RATIO = 2;
const COMPACT_MIN_SUPERSEDED = 10_000;

export interface MemoryDocumentStoreOptions extends JournalOptions {
  /** Called after an open that rewrote the journal without superseded lines. */
  onCompacted?: (info: { file: string; before: number; after: number }) => void;
}

class CollectionState {
  readonly docs = new Map<string, unknown>();
  /** index name → key → holder id */
  readonly holders = new Map<string, Map<string, string>>();
  /** holder id → its keys, so deletes and re-keying release the old ones */
  readonly keysOf = new Map<string, UniqueKey[]>();

  holder(index: string, key: string): string | undefined {
    return this.holders.get(index)?.get(key);
  }

  claim(id: string, [index, key]: UniqueKey): void {
    const keys = (this.keysOf.get(id) ?? []).filter(([i, k]) => {
      if (i !== index) return true;
      if (k !== key) this.holders.get(i)?.delete(k);
      return false;
    });
    keys.push([index, key]);
    this.keysOf.set(id, keys);
    let byKey = this.holders.get(index);
    if (!byKey) this.holders.set(index, (byKey = new Map<string, string>()));
    byKey.set(key, id);
  }

  remove(id: string): void {
    this.docs.delete(id);
    for (const [index, key] of this.keysOf.get(id) ?? []) this.holders.get(index)?.delete(key);
    this.keysOf.delete(id);
  }
}

export class MemoryDocumentStore implements DocumentStore {
  private readonly collections = new Map<Collection, CollectionState>();

  private journal!: Journal<StateRecord>;

  private constructor() {}

  /** Opens (or creates, mode 0700) the data dir and replays `state.jsonl`. */
  static async open(dataDir: string, options: MemoryDocumentStoreOptions = {}): Promise<MemoryDocumentStore> {
    const file = path.join(dataDir, STATE_FILE);
    const store = new MemoryDocumentStore();
    const { journal, records } = await Journal.open<StateRecord>(file, (record) => store.apply(record), options);
    store.journal = journal;
    const live = store.liveCount();
    if (records - live >= COMPACT_MIN_SUPERSEDED && records > COMPACT_RATIO * live) {
      await journal.compact(store.snapshot());
      options.onCompacted?.({ file, before: records, after: live });
    }
    return store;
  }

  async all<T>(collection: Collection): Promise<T[]> {
    const docs = this.collections.get(collection)?.docs;
    return docs ? (Array.from(docs.values()) as T[]) : [];
  }

  async get<T>(collection: Collection, id: string): Promise<T | undefined> {
    const doc = this.collections.get(collection)?.docs.get(id);
    return doc === undefined ? undefined : (doc as T);
  }

  put<T>(collection: Collection, id: string, doc: T, options: PutOptions = {}): Promise<void> {
    const state = this.state(collection);
    if (options.ifAbsent && state.docs.has(id)) {
      return Promise.reject(new ConflictError(`${collection}/${id} already exists`));
    }
    let u: UniqueKey[] | undefined;
    if (options.unique) {
      const { index, key } = options.unique;
      const holder = state.holder(index, key);
      if (holder !== undefined && holder !== id) {
        return Promise.reject(new ConflictError(`${collection} ${index} '${key}' is taken`));
      }
      u = [...(state.keysOf.get(id) ?? []).filter(([i]) => i !== index), [index, key]];
    }
    return this.write([u ? { c: collection, id, doc, u } : { c: collection, id, doc }]);
  }

  putMany<T>(collection: Collection, docs: ReadonlyArray<{ id: string; doc: T }>): Promise<void> {
    return this.write(docs.map(({ id, doc }) => ({ c: collection, id, doc })));
  }

  delete(collection: Collection, id: string): Promise<void> {
    return this.write([{ c: collection, id, del: 1 }]);
  }

  /** One process, one store: there are no other writers to hear from. */
  onRemoteChange(_listener: (change: DocumentChange) => void): void {}

  close(): Promise<void> {
    return this.journal.close();
  }

  private state(collection: Collection): CollectionState {
    let state = this.collections.get(collection);
    if (!state) this.collections.set(collection, (state = new CollectionState()));
    return state;
  }

  /**
   * Applies records now (same tick as the checks above: that is the atomicity) and journals them. The
   * stored document is parsed back from the journal line, so the store holds its own copy with exactly the
   * JSON semantics a replay after restart would give, at the cost of one stringify and one parse.
   */
  private write(records: StateRecord[]): Promise<void> {
    const lines = records.map((record) => JSON.stringify(record));
    for (const line of lines) this.apply(JSON.parse(line) as StateRecord);
    return this.journal.appendSerialized(lines);
  }

  private apply(record: StateRecord): void {
    const state = this.state(record.c);
    if ('del' in record) {
      state.remove(record.id);
      return;
    }
    state.docs.set(record.id, deepFreeze(record.doc));
    for (const key of record.u ?? []) state.claim(record.id, key);
  }

  private liveCount(): number {
    let count = 0;
    for (const state of this.collections.values()) count += state.docs.size;
    return count;
  }

  private *snapshot(): Iterable<StateRecord> {
    for (const [c, state] of this.collections) {
      for (const [id, doc] of state.docs) {
        const u = state.keysOf.get(id);
        yield u ? { c, id, doc, u } : { c, id, doc };
      }
    }
  }
}

/**
 * Stored documents are frozen, so reads can hand out the stored object itself: a caller cannot change
 * the store through what it got, and the 86,000 channels are held once, not once per reader.
 */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
