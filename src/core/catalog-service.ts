/**
 * The channel catalog as callers see it: every read is narrowed to what the caller's agency may
 * see (Casbin grants), every write is a platform-admin's and lands in the store and the audit log.
 * @see ../shared/API.md "Channels"
 */
import type { Channel, ChannelClass, ChannelStatus, GeoPoint, Network, Principal } from './model.js';
import type { AccessControl, DocumentStore, Visibility } from './ports.js';
import type { AuditService } from './audit-service.js';
import { CatalogIndex } from './catalog-index.js';
import { badRequest, notFound } from './errors.js';
import { validateChannel } from './gb-code.js';
import type { ImportRecord } from './channel-import.js';

export interface ChannelQuery {
  classes?: ChannelClass[];
  districts?: string[];
  networks?: Network[];
  statuses?: ChannelStatus[];
  q?: string;
  bbox?: [number, number, number, number];
  limit: number;
  cursor?: string;
}

export interface ChannelPatch {
  name?: string;
  class?: ChannelClass;
  status?: ChannelStatus;
  sourceUrl?: string;
  location?: GeoPoint;
  tags?: string[];
}

export interface ImportSummary {
  created: number;
  updated: number;
  rejected: Array<{ line: number; code: string; message: string }>;
}

/** Rejections listed in one import answer; beyond it only the count grows (the answer stays small). */
const MAX_REJECTIONS_LISTED = 1000;
/** Channels written to the store per call. */
const STORE_BATCH = 5000;

/** A channel's class changed (here or on another broker): who may see it changed with it. */
export type ClassChangeListener = (channelId: string) => void;

export class CatalogService {
  private readonly classChangeListeners: ClassChangeListener[] = [];

  constructor(
    private readonly index: CatalogIndex,
    private readonly store: DocumentStore,
    private readonly access: AccessControl,
    private readonly audit: AuditService,
  ) {
    // Another broker imported or patched channels (Redis mode).
    store.onRemoteChange(({ collection, doc }) => {
      if (collection !== 'channels' || !doc) return;
      const changed = this.classChanged([doc as Channel]);
      index.upsert(doc as Channel);
      this.tellClassChanged(changed);
    });
  }

  static async open(store: DocumentStore, access: AccessControl, audit: AuditService): Promise<CatalogService> {
    const index = new CatalogIndex();
    index.upsertMany(await store.all<Channel>('channels'));
    return new CatalogService(index, store, access, audit);
  }

  onClassChange(listener: ClassChangeListener): void {
    this.classChangeListeners.push(listener);
  }

  get size(): number {
    return this.index.size;
  }

  visibility(principal: Principal): Visibility {
    return this.seesEveryChannel(principal) ? 'all' : this.access.visibility(principal.agencyId);
  }

  list(principal: Principal, query: ChannelQuery): { items: Channel[]; total: number; nextCursor: string | null } {
    this.access.assert(principal, 'channel:read', { agencyId: principal.agencyId });
    if (query.bbox) {
      const [minLon, minLat, maxLon, maxLat] = query.bbox;
      if (minLon > maxLon || minLat > maxLat) throw badRequest('bbox must be minLon,minLat,maxLon,maxLat');
    }
    const result = this.index.query({ ...query, visible: this.visibility(principal) });
    return { ...result, items: result.items.map((c) => this.present(principal, c)) };
  }

  stats(principal: Principal) {
    this.access.assert(principal, 'channel:read', { agencyId: principal.agencyId });
    return this.index.stats(this.visibility(principal));
  }

  /** A channel the caller may see, else 404 (exactly like one that does not exist). */
  visibleChannel(principal: Principal, id: string): Channel {
    const channel = this.index.get(id);
    if (!channel) throw notFound('channel');
    if (!this.seesEveryChannel(principal) && !this.access.canSee(principal.agencyId, channel)) throw notFound('channel');
    return channel;
  }

  get(principal: Principal, id: string): Channel {
    this.access.assert(principal, 'channel:read', { agencyId: principal.agencyId });
    return this.present(principal, this.visibleChannel(principal, id));
  }

  async patch(principal: Principal, id: string, patch: ChannelPatch): Promise<Channel> {
    this.access.assert(principal, 'channel:write', {});
    const current = this.index.get(id);
    if (!current) throw notFound('channel');
    const checked = validateChannel({ ...current, ...patch });
    if (!checked.ok) throw badRequest(checked.message, checked.code);
    await this.store.put('channels', id, checked.channel);
    const changed = this.classChanged([checked.channel]);
    this.index.upsert(checked.channel);
    this.tellClassChanged(changed);
    await this.audit.record({
      actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
      action: 'channel.update',
      target: `channel:${id}`,
      outcome: 'ok',
      details: { channelId: id, fields: Object.keys(patch).join(',') },
    });
    return checked.channel;
  }

  /**
   * Parses the streamed body line by line; bad lines are reported one by one, good ones land — but
   * only once the whole body parsed, so a body over the line limit (413) changes nothing.
   */
  async import(principal: Principal, records: AsyncIterable<ImportRecord>, format: string): Promise<ImportSummary> {
    this.access.assert(principal, 'channel:write', {});
    const summary: ImportSummary = { created: 0, updated: 0, rejected: [] };
    let rejectedCount = 0;
    const accepted = new Map<string, Channel>();
    for await (const record of records) {
      if (record.error) {
        rejectedCount++;
        if (summary.rejected.length < MAX_REJECTIONS_LISTED) summary.rejected.push({ line: record.line, ...record.error });
      } else if (record.channel) {
        accepted.set(record.channel.id, record.channel);
      }
    }
    const channels = [...accepted.values()];
    for (const channel of channels) {
      if (this.index.get(channel.id)) summary.updated++;
      else summary.created++;
    }
    await this.write(channels);
    await this.audit.record({
      actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
      action: 'channel.import',
      target: 'catalog',
      outcome: 'ok',
      details: { format, created: summary.created, updated: summary.updated, rejected: rejectedCount },
    });
    return summary;
  }

  /** Seeds the catalog (demo mode) without an audit entry per channel. */
  seed(channels: Channel[]): Promise<void> {
    return this.write(channels);
  }

  /** Stores in batches (bounded write size), then indexes once: each index build covers the whole catalog. */
  private async write(channels: Channel[]): Promise<void> {
    for (let i = 0; i < channels.length; i += STORE_BATCH) {
      await this.store.putMany('channels', channels.slice(i, i + STORE_BATCH).map((doc) => ({ id: doc.id, doc })));
    }
    if (channels.length === 0) return;
    const changed = this.classChanged(channels);
    this.index.upsertMany(channels);
    this.tellClassChanged(changed);
  }

  /** Ids of the channels whose class differs from the one indexed now (checked before upserting). */
  private classChanged(channels: readonly Channel[]): string[] {
    if (this.classChangeListeners.length === 0) return [];
    return channels.filter((c) => {
      const current = this.index.get(c.id);
      return current !== undefined && current.class !== c.class;
    }).map((c) => c.id);
  }

  private tellClassChanged(channelIds: readonly string[]): void {
    for (const id of channelIds) for (const listener of this.classChangeListeners) listener(id);
  }

  /** Reading channels platform-wide (`any`) sees past the agency grants: every channel of the catalog. */
  private seesEveryChannel(principal: Principal): boolean {
    return this.access.can(principal, 'channel:read', {});
  }

  /** sourceUrl is for platform-admins only. */
  private present(principal: Principal, channel: Channel): Channel {
    if (channel.sourceUrl === undefined || this.access.can(principal, 'channel:read-source', {})) return channel;
    const { sourceUrl: _hidden, ...rest } = channel;
    return rest;
  }

  /** Internal: the channel with its source, for the media plane. */
  channel(id: string): Channel | undefined {
    return this.index.get(id);
  }
}
