/**
 * The channel catalog in memory, indexed so that no query reads every channel (../../../shared/DESIGN.md).
 *
 * Channels sit in id order; a channel's position is its ordinal, and every index holds ordinals: posting lists per
 * (class, network) pair, district and status, a spatial grid, a name bigram index. Because ordinals follow ids,
 * an id prefix is a contiguous ordinal range and a page "after id X" starts at a binary-searched ordinal.
 * Attributes live in typed-array columns so checking a candidate touches no object.
 *
 * New ids would shift every ordinal, so single inserts wait in a small sorted `pending` list that queries check
 * directly; the indexes are rebuilt once it fills up (and after every bulk upsert).
 */
import { decodeCursor, encodeCursor } from './cursor.js';
import { OrdinalMarks, PostingList } from './catalog-postings.js';
import { SpatialGrid } from './catalog-grid.js';
import { NameIndex, foldName } from './catalog-name-index.js';
import {
  PAIRS, STATUSES, allMatches, candidateSegments, channelMatches, compileFilter, countFromCounters, countInBox, firstMatches,
  lowerBoundById, pairOf, partOf, statusOf, upperBoundById, visiblePairs, type CatalogQuery, type CatalogView, type Filter,
} from './catalog-search.js';
import { badRequest } from './errors.js';
import { CHANNEL_STATUSES, NETWORKS, type Channel } from './model.js';
import type { ChannelChanges } from './gb-code.js';
import type { Visibility } from './ports.js';

export type { BBox } from './catalog-grid.js';
export type { CatalogQuery } from './catalog-search.js';
export type { Visibility } from './ports.js';

export interface CatalogPage {
  items: Channel[];
  total: number;
  nextCursor: string | null;
}

export interface CatalogStats {
  total: number;
  byClass: Record<string, number>;
  byDistrict: Record<string, number>;
  byNetwork: Record<string, number>;
  byStatus: Record<string, number>;
}

const MAX_LIMIT = 500;
/** Single inserts kept outside the ordinals before a rebuild (each query checks them one by one). */
const MAX_PENDING = 256;
/** Below this, a bulk upsert applies item by item instead of rebuilding the indexes. */
const SMALL_BATCH = 32;

/** The index keeps its own frozen copy: a caller mutating a returned channel would corrupt the indexes. */
function storedCopy(channel: Channel): Channel {
  // Already immutable (the embedded store hands out frozen documents): keep the one copy.
  if (Object.isFrozen(channel) && Object.isFrozen(channel.location) && (!channel.tags || Object.isFrozen(channel.tags))) return channel;
  const copy: Channel = { ...channel, location: Object.freeze({ lat: channel.location.lat, lon: channel.location.lon }) };
  if (channel.tags) copy.tags = Object.freeze([...channel.tags]) as string[];
  return Object.freeze(copy);
}


/** Distinct box/text queries whose totals are remembered (oldest forgotten first). */
const MAX_CACHED_TOTALS = 4096;

/** What decides a total: everything in the filter but the page position. */
function totalKey(filter: Filter): string {
  const districts = filter.districts ? Array.from(filter.districts).join('') : '*';
  return `${filter.pairs}|${filter.statuses}|${districts}|${filter.bbox?.join(',') ?? ''}|${filter.q ?? ''}`;
}

function lastIdOf(cursor: string): string {
  const lastId = decodeCursor(cursor);
  if (!/^[0-9]{20}$/.test(lastId) || encodeCursor(lastId) !== cursor) throw badRequest('invalid cursor');
  return lastId;
}

export class CatalogIndex {
  /** New ids not yet given an ordinal, in id order. */
  private pending: Channel[] = [];
  /** Totals of box/text queries, by filter; cleared on every change to the catalog. */
  private readonly totals = new Map<string, number>();
  private readonly view: CatalogView = {
    channels: [],
    pairColumn: new Uint8Array(0),
    statusColumn: new Uint8Array(0),
    districtColumn: new Uint16Array(0),
    latColumn: new Float64Array(0),
    lonColumn: new Float64Array(0),
    pairLists: [],
    statusLists: [],
    districtLists: [],
    grid: new SpatialGrid(),
    names: NameIndex.build([]),
    foldedNames: new Map(),
    marks: new OrdinalMarks(0),
    renamed: new Uint8Array(0),
    districtCodes: [],
    districtIndex: new Map(),
    counters: [],
    extent: { minLon: Infinity, minLat: Infinity, maxLon: -Infinity, maxLat: -Infinity },
  };

  /** Bumped by every change to the catalog: what was read at one count is current while it holds. */
  private changes = 0;

  get version(): number {
    return this.changes;
  }

  get size(): number {
    return this.view.channels.length + this.pending.length;
  }

  get(id: string): Channel | undefined {
    const ord = this.ordinalOf(id);
    if (ord >= 0) return this.view.channels[ord];
    const at = lowerBoundById(this.pending, id);
    return this.pending[at]?.id === id ? this.pending[at] : undefined;
  }

  /** Adds or replaces one channel (already validated). */
  upsert(channel: Channel): 'created' | 'updated' {
    this.totals.clear();
    this.changes++;
    const stored = storedCopy(channel);
    const ord = this.ordinalOf(stored.id);
    if (ord >= 0) {
      this.replaceAt(ord, stored);
      return 'updated';
    }
    const at = lowerBoundById(this.pending, stored.id);
    const previous = this.pending[at]?.id === stored.id ? this.pending[at] : undefined;
    if (previous) this.count(previous, -1);
    this.count(stored, +1);
    this.pending.splice(at, previous ? 1 : 0, stored);
    if (this.pending.length > MAX_PENDING) this.rebuild();
    return previous ? 'updated' : 'created';
  }

  /** Adds or replaces many channels (an import); a later duplicate id wins. Rebuilds the indexes once. */
  upsertMany(channels: readonly Channel[]): { created: number; updated: number } {
    let created = 0;
    let updated = 0;
    if (channels.length <= SMALL_BATCH) {
      for (const channel of channels) {
        if (this.upsert(channel) === 'created') created++;
        else updated++;
      }
      return { created, updated };
    }
    this.totals.clear();
    this.changes++;
    if (this.size === 0 && isSortedById(channels)) {
      // The catalog loaded at open: distinct ids in order, nothing to merge with.
      this.pending = channels.map(storedCopy);
      this.rebuild();
      return { created: channels.length, updated: 0 };
    }
    const fresh = new Map<string, Channel>();
    for (const channel of channels) {
      const stored = storedCopy(channel);
      const ord = this.ordinalOf(stored.id);
      if (ord >= 0) {
        this.view.channels[ord] = stored;
        updated++;
      } else {
        if (!fresh.has(stored.id) && this.get(stored.id) === undefined) created++;
        else updated++;
        fresh.set(stored.id, stored);
      }
    }
    const pendingKept = this.pending.filter((p) => !fresh.has(p.id));
    this.pending = [...pendingKept, ...fresh.values()];
    if (!isSortedById(this.pending)) this.pending.sort((a, b) => (a.id < b.id ? -1 : 1));
    this.rebuild();
    return { created, updated };
  }

  /** Applies validated changes to one channel; undefined when the id is unknown. */
  patch(id: string, changes: ChannelChanges): Channel | undefined {
    const current = this.get(id);
    if (!current) return undefined;
    const next: Channel = { ...current, ...changes };
    this.upsert(next);
    return this.get(id);
  }

  query(query: CatalogQuery): CatalogPage {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_LIMIT) {
      throw badRequest(`limit is 1 to ${MAX_LIMIT}`);
    }
    const lastId = query.cursor === undefined ? null : lastIdOf(query.cursor);
    const filter = compileFilter(this.view, query);
    if (!filter) return { items: [], total: 0, nextCursor: null };
    const from = lastId === null ? 0 : upperBoundById(this.view.channels, lastId);
    const want = query.limit + 1;

    const segments = candidateSegments(this.view, filter);
    let total: number;
    let ords: number[];
    if (filter.bbox === null && filter.q === null) {
      // Categories alone: the counters know the total, so only the page itself is read.
      total = countFromCounters(this.view, filter);
      ords = firstMatches(this.view, segments, filter, from, want);
    } else {
      // Paging through a result set asks for the same total on every page: remember it until the
      // catalog changes, and then read only the page.
      const key = totalKey(filter);
      const known = this.totals.get(key);
      if (known !== undefined) {
        total = known;
        ords = firstMatches(this.view, segments, filter, from, want);
      } else {
        const counted = countInBox(this.view, filter);
        if (counted !== null) {
          // A box without text: the grid counts it (whole cells by their parts), and only the page is read.
          total = counted;
          ords = firstMatches(this.view, segments, filter, from, want);
        } else {
          ({ total, ords } = allMatches(this.view, segments, filter, from, want));
        }
        for (const channel of this.pending) if (channelMatches(this.view, channel, filter)) total++;
        if (this.totals.size >= MAX_CACHED_TOTALS) this.totals.delete(this.totals.keys().next().value!);
        this.totals.set(key, total);
      }
    }

    const items = mergeById(
      ords.map((ord) => this.view.channels[ord]),
      this.pendingMatches(filter, lastId, want),
      want,
    );
    const nextCursor = items.length > query.limit ? encodeCursor(items[query.limit - 1].id) : null;
    return { items: items.slice(0, query.limit), total, nextCursor };
  }

  stats(visible: Visibility): CatalogStats {
    const pairs = visiblePairs(visible, undefined, undefined);
    const byClass: Record<string, number> = { '1': 0, '2': 0, '3': 0 };
    const byNetwork: Record<string, number> = Object.fromEntries(NETWORKS.map((n) => [n, 0]));
    const byStatus: Record<string, number> = Object.fromEntries(CHANNEL_STATUSES.map((s) => [s, 0]));
    const byDistrict: Record<string, number> = {};
    let total = 0;
    for (let d = 0; d < this.view.counters.length; d++) {
      const counts = this.view.counters[d];
      let inDistrict = 0;
      for (let pair = 0; pair < PAIRS; pair++) {
        if (!(pairs & (1 << pair))) continue;
        for (let s = 0; s < STATUSES; s++) {
          const n = counts[pair * STATUSES + s];
          if (n === 0) continue;
          byClass[String((pair >> 2) + 1)] += n;
          byNetwork[NETWORKS[pair & 3]] += n;
          byStatus[CHANNEL_STATUSES[s]] += n;
          inDistrict += n;
        }
      }
      if (inDistrict > 0) byDistrict[this.view.districtCodes[d]] = inDistrict;
      total += inDistrict;
    }
    return { total, byClass, byDistrict, byNetwork, byStatus };
  }

  // -------------------------------------------------------------------------------------------
  // Query planning and evaluation.
  // -------------------------------------------------------------------------------------------

  private pendingMatches(filter: Filter, lastId: string | null, want: number): Channel[] {
    const found: Channel[] = [];
    const start = lastId === null ? 0 : upperBoundById(this.pending, lastId);
    for (let at = start; at < this.pending.length && found.length < want; at++) {
      if (channelMatches(this.view, this.pending[at], filter)) found.push(this.pending[at]);
    }
    return found;
  }

  // -------------------------------------------------------------------------------------------
  // Maintenance.
  // -------------------------------------------------------------------------------------------

  private ordinalOf(id: string): number {
    const at = lowerBoundById(this.view.channels, id);
    return this.view.channels[at]?.id === id ? at : -1;
  }

  private districtOf(code: string): number {
    let d = this.view.districtIndex.get(code);
    if (d === undefined) {
      d = this.view.districtCodes.length;
      this.view.districtCodes.push(code);
      this.view.districtIndex.set(code, d);
      this.view.counters.push(new Int32Array(PAIRS * STATUSES));
      this.view.districtLists.push(new PostingList());
    }
    return d;
  }

  private count(channel: Channel, delta: 1 | -1): void {
    this.view.counters[this.districtOf(channel.district)][pairOf(channel) * STATUSES + statusOf(channel)] += delta;
    if (delta > 0) {
      const { lon, lat } = channel.location;
      const e = this.view.extent;
      e.minLon = Math.min(e.minLon, lon);
      e.minLat = Math.min(e.minLat, lat);
      e.maxLon = Math.max(e.maxLon, lon);
      e.maxLat = Math.max(e.maxLat, lat);
    }
  }

  /** Replaces the channel at an ordinal, moving it between lists where an indexed attribute changed. */
  private replaceAt(ord: number, next: Channel): void {
    const previous = this.view.channels[ord];
    this.count(previous, -1);
    this.count(next, +1);
    const wasPart = partOf(this.view.districtColumn[ord], this.view.pairColumn[ord], this.view.statusColumn[ord]);
    const pair = pairOf(next);
    if (pair !== this.view.pairColumn[ord]) {
      this.view.pairLists[this.view.pairColumn[ord]].remove(ord);
      this.view.pairLists[pair].add(ord);
      this.view.pairColumn[ord] = pair;
    }
    const status = statusOf(next);
    if (status !== this.view.statusColumn[ord]) {
      this.view.statusLists[this.view.statusColumn[ord]].remove(ord);
      this.view.statusLists[status].add(ord);
      this.view.statusColumn[ord] = status;
    }
    if (next.name !== previous.name) {
      const folded = foldName(next.name);
      if (folded !== next.name) this.view.foldedNames.set(ord, folded);
      else this.view.foldedNames.delete(ord);
      this.view.names.add(ord, folded);
      this.view.renamed[ord] = 1;
    }
    const district = this.districtOf(next.district);
    if (district !== this.view.districtColumn[ord]) {
      // A district is part of a channel's id, so it does not change under one ordinal; kept right if it did.
      this.view.districtLists[this.view.districtColumn[ord]].remove(ord);
      this.view.districtLists[district].add(ord);
      this.view.districtColumn[ord] = district;
    }
    const part = partOf(district, pair, status);
    const { lat, lon } = next.location;
    if (lat !== this.view.latColumn[ord] || lon !== this.view.lonColumn[ord]) {
      this.view.grid.remove(ord, this.view.latColumn[ord], this.view.lonColumn[ord]);
      this.view.grid.add(ord, lat, lon, part);
      this.view.latColumn[ord] = lat;
      this.view.lonColumn[ord] = lon;
    } else if (part !== wasPart) {
      this.view.grid.setPart(ord, lat, lon, part);
    }
    this.view.channels[ord] = next;
    if (this.view.names.overlaySize > 4096) this.rebuild();
  }

  /** Gives every channel (pending ones included) its ordinal and builds all indexes from scratch. */
  private rebuild(): void {
    const all = mergeById(this.view.channels, this.pending, Infinity);
    this.view.channels = all;
    this.pending = [];
    const n = all.length;
    this.view.pairColumn = new Uint8Array(n);
    this.view.statusColumn = new Uint8Array(n);
    this.view.districtColumn = new Uint16Array(n);
    this.view.latColumn = new Float64Array(n);
    this.view.lonColumn = new Float64Array(n);
    this.view.pairLists = Array.from({ length: PAIRS }, () => new PostingList());
    this.view.statusLists = Array.from({ length: STATUSES }, () => new PostingList());
    this.view.grid = new SpatialGrid();
    this.view.foldedNames = new Map();
    for (const counts of this.view.counters) counts.fill(0);
    for (let d = 0; d < this.view.districtLists.length; d++) this.view.districtLists[d] = new PostingList();
    const foldedAll = new Array<string>(n);
    for (let ord = 0; ord < n; ord++) {
      const channel = all[ord];
      const pair = pairOf(channel);
      const status = statusOf(channel);
      const district = this.districtOf(channel.district);
      this.count(channel, +1);
      this.view.pairColumn[ord] = pair;
      this.view.statusColumn[ord] = status;
      this.view.districtColumn[ord] = district;
      this.view.latColumn[ord] = channel.location.lat;
      this.view.lonColumn[ord] = channel.location.lon;
      this.view.pairLists[pair].push(ord);
      this.view.statusLists[status].push(ord);
      this.view.districtLists[district].push(ord);
      this.view.grid.push(ord, channel.location.lat, channel.location.lon, partOf(district, pair, status));
      const folded = foldName(channel.name);
      if (folded !== channel.name) this.view.foldedNames.set(ord, folded);
      foldedAll[ord] = folded;
    }
    for (const list of [...this.view.pairLists, ...this.view.statusLists, ...this.view.districtLists]) list.trim();
    this.view.grid.trim();
    this.view.names = NameIndex.build(foldedAll);
    this.view.marks = new OrdinalMarks(n);
    this.view.renamed = new Uint8Array(n);
  }
}

function isSortedById(channels: readonly Channel[]): boolean {
  for (let i = 1; i < channels.length; i++) if (channels[i - 1].id >= channels[i].id) return false;
  return true;
}

/** Merges two id-sorted lists of distinct ids, keeping at most `max`. */
function mergeById(a: readonly Channel[], b: readonly Channel[], max: number): Channel[] {
  if (b.length === 0) return a.length <= max ? [...a] : a.slice(0, max);
  const merged: Channel[] = [];
  let i = 0;
  let j = 0;
  while ((i < a.length || j < b.length) && merged.length < max) {
    if (j >= b.length || (i < a.length && a[i].id < b[j].id)) merged.push(a[i++]);
    else merged.push(b[j++]);
  }
  return merged;
}
