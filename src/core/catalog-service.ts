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
import { generateDemoCatalog } from './demo-catalog.js';

/**
 * A catalog generated from a few numbers (the demo's 86,000 channels from its seed), stored as those numbers
 * in `meta/catalog-base` instead of as 86,000 documents: opening regenerates it, and every channel stored in
 * the `channels` collection (patched, imported, the simulated cameras) overrides the generated one of its id.
 */
export interface CatalogBase {
  kind: 'demo';
  seed: number;
  total: number;
}
export const CATALOG_BASE_DOC = 'catalog-base';

/** Frozen where it is made: the index keeps these objects as they are instead of copying 86,000 of them. */
function generateBase(base: CatalogBase): Channel[] {
  const channels = generateDemoCatalog({ seed: base.seed, total: base.total });
  for (const channel of channels) {
    Object.freeze(channel.location);
    if (channel.tags) Object.freeze(channel.tags);
    Object.freeze(channel);
  }
  return channels;
}

/** `base` (sorted by id) with the stored channels in place of the generated ones of their ids. */
function overlay(base: Channel[], stored: readonly Channel[]): Channel[] {
  if (stored.length === 0) return base;
  const byId = new Map(stored.map((c) => [c.id, c]));
  const merged = base.map((c) => {
    const over = byId.get(c.id);
    if (over) byId.delete(c.id);
    return over ?? c;
  });
  if (byId.size === 0) return merged;
  return [...merged, ...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
}

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

/** Pages remembered for repeated queries (paging back, a console refreshing); the oldest is forgotten first. */
const MAX_CACHED_PAGES = 256;

export interface ChannelPage {
  items: readonly Channel[];
  total: number;
  nextCursor: string | null;
  withSource: boolean;
}

/** Rejections listed in one import answer; beyond it only the count grows (the answer stays small). */
const MAX_REJECTIONS_LISTED = 1000;
/** Channels written to the store per call. */
const STORE_BATCH = 5000;

/** A channel's class changed (here or on another broker): who may see it changed with it. */
export type ClassChangeListener = (channelId: string) => void;

/** Everything of a query that decides its page, in a fixed order; `q`, the one free text, last (no ambiguity). */
const pageKey = (q: ChannelQuery): string =>
  `${q.classes?.join(',')}|${q.districts?.join(',')}|${q.networks?.join(',')}|${q.statuses?.join(',')}|${q.bbox?.join(',')}|${q.limit}|${q.cursor}|${q.q === undefined ? '' : `=${q.q}`}`;

/** Visibilities are kept per agency (the authorizer hands out the same object until grants change). */
const visibilityKeys = new WeakMap<Exclude<Visibility, 'all'>, string>();
function visibilityKey(visible: Visibility): string {
  if (visible === 'all') return '*';
  let key = visibilityKeys.get(visible);
  if (key === undefined) {
    key = `${visible.classes.join(',')}/${visible.networks.join(',')}`;
    visibilityKeys.set(visible, key);
  }
  return key;
}

function withoutSource(channel: Channel): Channel {
  if (channel.sourceUrl === undefined) return channel;
  const { sourceUrl: _hidden, ...rest } = channel;
  return rest;
}

export class CatalogService {
  private readonly classChangeListeners: ClassChangeListener[] = [];
  /** Query results by what decides them (what the caller sees, the query); valid for one catalog version. */
  private readonly pages = new Map<string, ChannelPage>();
  private pagesVersion = -1;
  /** Channel ids by the GB/T 28181 device whose catalog holds them. */
  private readonly byDevice = new Map<string, Set<string>>();

  constructor(
    private readonly index: CatalogIndex,
    private readonly store: DocumentStore,
    private readonly access: AccessControl,
    private readonly audit: AuditService,
  ) {
    // Another broker imported or patched channels (Redis mode).
    store.onRemoteChange(({ collection, id, doc }) => {
      if (collection === 'meta' && id === CATALOG_BASE_DOC && doc) {
        // Another broker seeded the demo: its channels follow as documents of their own.
        const channels = generateBase(doc as CatalogBase);
        const changed = this.classChanged(channels);
        index.upsertMany(channels);
        this.tellClassChanged(changed);
        return;
      }
      if (collection !== 'channels' || !doc) return;
      const changed = this.classChanged([doc as Channel]);
      this.trackDevices([doc as Channel]);
      index.upsert(doc as Channel);
      this.tellClassChanged(changed);
    });
  }

  static async open(store: DocumentStore, access: AccessControl, audit: AuditService): Promise<CatalogService> {
    const index = new CatalogIndex();
    const [base, stored] = await Promise.all([store.get<CatalogBase>('meta', CATALOG_BASE_DOC), store.all<Channel>('channels')]);
    const channels = base ? overlay(generateBase(base), stored) : stored;
    index.upsertMany(channels);
    const service = new CatalogService(index, store, access, audit);
    service.trackDevices(stored);
    return service;
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
    const { items, withSource, ...rest } = this.page(principal, query);
    return { ...rest, items: withSource ? [...items] : items.map(withoutSource) };
  }

  /**
   * list() as the stored channels themselves (frozen: one object per version of a channel) and whether the
   * caller may see their sources, so the HTTP layer can serialise each channel once and reuse the JSON.
   */
  page(principal: Principal, query: ChannelQuery): ChannelPage {
    this.access.assert(principal, 'channel:read', { agencyId: principal.agencyId });
    if (query.bbox) {
      const [minLon, minLat, maxLon, maxLat] = query.bbox;
      if (minLon > maxLon || minLat > maxLat) throw badRequest('bbox must be minLon,minLat,maxLon,maxLat');
    }
    const visible = this.visibility(principal);
    const withSource = this.access.can(principal, 'channel:read-source', {});
    if (this.pagesVersion !== this.index.version) {
      this.pages.clear();
      this.pagesVersion = this.index.version;
    }
    const key = `${withSource ? 1 : 0}|${visibilityKey(visible)}|${pageKey(query)}`;
    const known = this.pages.get(key);
    if (known) return known;
    const result = this.index.query({ ...query, visible });
    const page: ChannelPage = Object.freeze({ ...result, items: Object.freeze(result.items), withSource });
    if (this.pages.size >= MAX_CACHED_PAGES) this.pages.delete(this.pages.keys().next().value!);
    this.pages.set(key, page);
    return page;
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

  /**
   * Seeds a generated catalog (demo mode) as its numbers plus the channels that differ from it (`overridesOf`
   * picks them from the generated catalog),
   * without an audit entry per channel: the same catalog as seed(overlay), a few bytes in the store instead of
   * 27 MB. A channel stored before keeps no precedence over the generated one of its id (as seed() would
   * overwrite it): it is dropped from the store.
   */
  async seedBase(base: CatalogBase, overridesOf: (generated: readonly Channel[]) => Channel[]): Promise<Channel[]> {
    const plain = generateBase(base);
    const overrides = overridesOf(plain);
    const generated = overlay(plain, overrides);
    if (this.index.size > 0) {
      const kept = new Set(overrides.map((c) => c.id));
      for (const channel of generated) {
        if (!kept.has(channel.id) && this.index.get(channel.id)) await this.store.delete('channels', channel.id);
      }
    }
    await this.store.put('meta', CATALOG_BASE_DOC, base);
    await this.write(generated, overrides);
    return overrides;
  }

  /** Channels from a GB/T 28181 device's catalog (sync, NOTIFY, device offline): no audit entry per channel. */
  upsertFromDevice(channels: Channel[]): Promise<void> {
    return this.write(channels);
  }

  /** The channels a GB/T 28181 device's catalog brought. */
  channelsOfDevice(deviceId: string): Channel[] {
    return [...(this.byDevice.get(deviceId) ?? [])].flatMap((id) => this.index.get(id) ?? []);
  }

  private trackDevices(channels: readonly Channel[]): void {
    for (const channel of channels) {
      if (channel.deviceId === undefined) continue;
      let ids = this.byDevice.get(channel.deviceId);
      if (!ids) this.byDevice.set(channel.deviceId, (ids = new Set()));
      ids.add(channel.id);
    }
  }

  /** Stores in batches (bounded write size), then indexes once: each index build covers the whole catalog. */
  private async write(channels: Channel[], stored: readonly Channel[] = channels): Promise<void> {
    for (let i = 0; i < stored.length; i += STORE_BATCH) {
      await this.store.putMany('channels', stored.slice(i, i + STORE_BATCH).map((doc) => ({ id: doc.id, doc })));
    }
    if (channels.length === 0) return;
    const changed = this.classChanged(channels);
    this.trackDevices(channels);
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
    const shown = channel.source === undefined ? { ...channel, source: 'url' as const } : channel;
    if (shown.sourceUrl === undefined || this.access.can(principal, 'channel:read-source', {})) return shown;
    const { sourceUrl: _hidden, ...rest } = shown;
    return rest;
  }

  /** The media plane saw the channel's camera send `codec` (no audit entry: an observation, not an edit). */
  async recordCodec(id: string, codec: NonNullable<Channel['codec']>): Promise<void> {
    const current = this.index.get(id);
    if (!current || current.codec === codec) return;
    const updated: Channel = { ...current, codec };
    await this.store.put('channels', id, updated);
    this.index.upsert(updated);
  }

  /** Internal: the channel with its source, for the media plane. */
  channel(id: string): Channel | undefined {
    return this.index.get(id);
  }
}
