/**
 * DocumentStore over Redis for a city of brokers sharing one Redis.
 *
 * Keys (one hash tag per collection, so each script touches one cluster slot):
 *   <prefix>:doc:{<collection>}         hash  id -> document JSON
 *   <prefix>:doc:{<collection>}:unique  hash  "index\0key" -> holder id
 *   <prefix>:doc:{<collection>}:held    hash  id -> [[index, key], ...] the unique keys it holds
 * Every write is a Lua script that also PUBLISHes the change on <prefix>:doc-changes; other brokers hear it
 * through a duplicated subscriber connection and pass it to their onRemoteChange listeners.
 * Pub/sub is fire-and-forget: a broker disconnected from Redis misses changes made meanwhile.
 * @see https://redis.io/docs/latest/develop/interact/pubsub/#delivery-semantics
 */
import { randomUUID } from 'node:crypto';
import { ConflictError } from '../../core/ports.js';
import type { Collection, DocumentChange, DocumentStore, PutOptions } from '../../core/ports.js';
import { LuaScript, redisCall, type RedisClient } from './client.js';

const putScript = LuaScript.load('doc-put');
const putManyScript = LuaScript.load('doc-put-many');
const deleteScript = LuaScript.load('doc-delete');

/** Documents per putMany script call: keeps each script short so Redis stays responsive during an import. */
const PUT_MANY_CHUNK = 1000;
const SCAN_COUNT = 1000;

/** What goes over the change channel: who wrote, and the changes (one for put/delete, a chunk for putMany). */
interface ChangeMessage {
  from: string;
  c: Collection;
  changes: ReadonlyArray<{ id: string; doc: unknown }>;
}

export interface RedisDocumentStoreOptions {
  /** Key prefix shared by the brokers of one deployment, e.g. "sharp-eyes". */
  prefix: string;
  /** Reports a change message that could not be parsed or a listener that threw. */
  onError?: (error: Error) => void;
}

/** Re-read after a reconnect: small, and they decide who may see and do what. */
const RESYNC_COLLECTIONS: readonly Collection[] = ['agencies', 'users', 'serviceAccounts', 'policy'];
const RESYNC_ATTEMPTS = 60;
const RESYNC_RETRY_MS = 500;

export class RedisDocumentStore implements DocumentStore {
  /** Tells our own change messages apart from other brokers'. */
  readonly instanceId = randomUUID();
  private readonly listeners: Array<(change: DocumentChange) => void> = [];
  private readonly channel: string;

  private constructor(
    private readonly client: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly options: RedisDocumentStoreOptions,
  ) {
    this.channel = `${options.prefix}:doc-changes`;
  }

  /**
   * Uses `client` for commands (the caller owns it and closes it) and a duplicate of it for the
   * subscription (owned by the store, closed by close()).
   */
  static async open(client: RedisClient, options: RedisDocumentStoreOptions): Promise<RedisDocumentStore> {
    const subscriber = client.duplicate();
    subscriber.on('error', (error: Error) => options.onError?.(error));
    await subscriber.connect();
    const store = new RedisDocumentStore(client, subscriber, options);
    await subscriber.subscribe(store.channel, (message) => store.hear(message));
    // Pub/sub does not replay what was said while we were disconnected: after a reconnect, re-read
    // the collections that decide who may do what, so a user disabled meanwhile is disabled here too.
    subscriber.on('ready', () => void store.resyncUntilDone());
    return store;
  }

  async all<T>(collection: Collection): Promise<T[]> {
    // HSCAN rather than HVALS: the channel catalog is tens of megabytes and one reply would stall Redis.
    // HSCAN may return a field twice (during a rehash), hence the map.
    const docs = new Map<string, string>();
    let cursor = '0';
    do {
      const page = await redisCall(this.client, () => this.client.hScan(this.docsKey(collection), cursor, { COUNT: SCAN_COUNT }));
      for (const { field, value } of page.entries) docs.set(field, value);
      cursor = page.cursor;
    } while (cursor !== '0');
    return Array.from(docs.values(), (json) => JSON.parse(json) as T);
  }

  async get<T>(collection: Collection, id: string): Promise<T | undefined> {
    const json = await redisCall(this.client, () => this.client.hGet(this.docsKey(collection), id));
    return json == null ? undefined : (JSON.parse(json) as T);
  }

  async put<T>(collection: Collection, id: string, doc: T, options: PutOptions = {}): Promise<void> {
    const json = JSON.stringify(doc);
    const result = await putScript.run(this.client, this.keys(collection), [
      id,
      json,
      options.ifAbsent ? '1' : '0',
      options.unique?.index ?? '',
      options.unique?.key ?? '',
      this.channel,
      this.message(collection, [{ id, doc }]),
    ]);
    if (result === 'EXISTS') throw new ConflictError(`${collection}/${id} already exists`);
    if (result === 'TAKEN') throw new ConflictError(`${collection} ${options.unique?.index} '${options.unique?.key}' is taken`);
  }

  async putMany<T>(collection: Collection, docs: ReadonlyArray<{ id: string; doc: T }>): Promise<void> {
    for (let start = 0; start < docs.length; start += PUT_MANY_CHUNK) {
      const chunk = docs.slice(start, start + PUT_MANY_CHUNK);
      const args = [this.channel, this.message(collection, chunk)];
      for (const { id, doc } of chunk) args.push(id, JSON.stringify(doc));
      await putManyScript.run(this.client, [this.docsKey(collection)], args);
    }
  }

  async delete(collection: Collection, id: string): Promise<void> {
    await deleteScript.run(this.client, this.keys(collection), [id, this.channel, this.message(collection, [{ id, doc: null }])]);
  }

  /**
   * The subscriber can be back before the command connection (or before Redis has loaded its data):
   * keep trying for a while rather than give up on the first refusal.
   */
  private async resyncUntilDone(): Promise<void> {
    for (let attempt = 0; attempt < RESYNC_ATTEMPTS; attempt++) {
      try {
        await this.resync();
        return;
      } catch (error) {
        if (attempt === RESYNC_ATTEMPTS - 1) this.options.onError?.(error as Error);
        await new Promise((resolve) => setTimeout(resolve, RESYNC_RETRY_MS));
      }
    }
  }

  /** Tells the listeners every document of the access-relevant collections, as if just changed. */
  async resync(): Promise<void> {
    for (const collection of RESYNC_COLLECTIONS) {
      let cursor = '0';
      do {
        const page = await redisCall(this.client, () => this.client.hScan(this.docsKey(collection), cursor, { COUNT: SCAN_COUNT }));
        for (const { field, value } of page.entries) {
          const change: DocumentChange = { collection, id: field, doc: JSON.parse(value) };
          for (const listener of this.listeners) listener(change);
        }
        cursor = page.cursor;
      } while (cursor !== '0');
    }
  }

  onRemoteChange(listener: (change: DocumentChange) => void): void {
    this.listeners.push(listener);
  }

  /** Stops listening. The command client belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.listeners.length = 0;
    if (this.subscriber.isOpen) await this.subscriber.close();
  }

  private hear(raw: string): void {
    let message: ChangeMessage;
    try {
      message = JSON.parse(raw) as ChangeMessage;
    } catch (error) {
      this.options.onError?.(error as Error);
      return;
    }
    if (message.from === this.instanceId) return;
    for (const { id, doc } of message.changes) {
      for (const listener of this.listeners) {
        try {
          listener({ collection: message.c, id, doc });
        } catch (error) {
          this.options.onError?.(error as Error);
        }
      }
    }
  }

  private message(collection: Collection, changes: ReadonlyArray<{ id: string; doc: unknown }>): string {
    return JSON.stringify({ from: this.instanceId, c: collection, changes } satisfies ChangeMessage);
  }

  private docsKey(collection: Collection): string {
    return `${this.options.prefix}:doc:{${collection}}`;
  }

  private keys(collection: Collection): string[] {
    const docs = this.docsKey(collection);
    return [docs, `${docs}:unique`, `${docs}:held`];
  }
}
