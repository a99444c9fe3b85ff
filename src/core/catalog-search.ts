/**
 * Query evaluation over the catalog's ordinal indexes (see catalog-index.ts for the layout): a query becomes bit
 * masks and lookups (a Filter), the smallest candidate source is picked, and each candidate is checked against the
 * typed-array columns. Totals of category-only queries come from counters without reading any channel.
 */
import { listSegment, rangeSegment, segmentsSize, type OrdinalMarks, type PostingList, type Segment } from './catalog-postings.js';
import type { BBox, SpatialGrid } from './catalog-grid.js';
import { foldName, type NameIndex } from './catalog-name-index.js';
import { badRequest } from './errors.js';
import { CHANNEL_STATUSES, NETWORKS, type Channel, type Network } from './model.js';
import type { Visibility } from './ports.js';

export const PAIRS = 12; // 3 classes × 4 networks
export const STATUSES = CHANNEL_STATUSES.length;
const ALL_PAIRS = (1 << PAIRS) - 1;
const ALL_STATUSES = (1 << STATUSES) - 1;

export const pairOf = (channel: Channel) => (channel.class - 1) * 4 + NETWORKS.indexOf(channel.network);
export const statusOf = (channel: Channel) => CHANNEL_STATUSES.indexOf(channel.status);

export interface CatalogQuery {
  classes?: readonly number[];
  districts?: readonly string[];
  networks?: readonly string[];
  statuses?: readonly string[];
  /** Name substring (case-insensitive) or id prefix. */
  q?: string;
  bbox?: BBox;
  visible: Visibility;
  limit: number;
  cursor?: string;
}

/** A query turned into bit masks and lookups, checked against columns (ordinals) or channel objects (pending). */
export interface Filter {
  pairs: number;
  statuses: number;
  /** districtSelected[districtIndex] = 1, or null for any district. */
  districts: Uint8Array | null;
  /** Box bounds; hasBox false means no box (kept as plain numbers: this is the innermost loop). */
  hasBox: boolean;
  minLon: number;
  minLat: number;
  maxLon: number;
  maxLat: number;
  bbox: BBox | null;
  /** Folded query text, or null. */
  q: string | null;
  /** Ordinals whose id starts with q: a contiguous range, since ordinals follow ids. */
  qFrom: number;
  qTo: number;
}

/** The indexes a query reads; CatalogIndex owns and maintains them. Index i of every column is ordinal i. */
export interface CatalogView {
  /** Indexed channels in id order. */
  channels: Channel[];
  pairColumn: Uint8Array;
  statusColumn: Uint8Array;
  districtColumn: Uint16Array;
  latColumn: Float64Array;
  lonColumn: Float64Array;
  pairLists: PostingList[];
  statusLists: PostingList[];
  districtLists: PostingList[];
  grid: SpatialGrid;
  names: NameIndex;
  /** Folded names of the few channels whose name changes under folding (Latin capitals). */
  foldedNames: Map<number, string>;
  marks: OrdinalMarks;
  /** 1 for ordinals renamed since the last build: their old bigrams still point at them. */
  renamed: Uint8Array;
  districtCodes: string[];
  districtIndex: Map<string, number>;
  /** counters[district][pair * STATUSES + status], pending channels included. */
  counters: Int32Array[];
  /** Bounds of every location ever indexed (only grows): a box holding it filters nothing. */
  extent: { minLon: number; minLat: number; maxLon: number; maxLat: number };
}

/** Null when the query can match nothing (no visible pair, unknown district, box off the map). */
export function compileFilter(view: CatalogView, query: CatalogQuery): Filter | null {
  const pairs = visiblePairs(query.visible, query.classes, query.networks);
  let statuses = ALL_STATUSES;
  if (query.statuses && query.statuses.length > 0) {
    statuses = 0;
    for (const status of query.statuses) {
      const s = (CHANNEL_STATUSES as readonly string[]).indexOf(status);
      if (s < 0) throw badRequest(`unknown status ${JSON.stringify(status)}`);
      statuses |= 1 << s;
    }
  }
  let districts: Uint8Array | null = null;
  if (query.districts && query.districts.length > 0) {
    districts = new Uint8Array(view.districtCodes.length);
    let known = 0;
    for (const code of query.districts) {
      const d = view.districtIndex.get(code);
      if (d !== undefined) {
        districts[d] = 1;
        known++;
      }
    }
    if (known === 0) return null;
  }
  let bbox: BBox | null = null;
  if (query.bbox) {
    const [minLon, minLat, maxLon, maxLat] = query.bbox;
    if (![minLon, minLat, maxLon, maxLat].every(Number.isFinite) || minLon > maxLon || minLat > maxLat) {
      throw badRequest('bbox is minLon,minLat,maxLon,maxLat with min <= max');
    }
    const e = view.extent;
    const coversAll = minLon <= e.minLon && minLat <= e.minLat && maxLon >= e.maxLon && maxLat >= e.maxLat;
    bbox = coversAll ? null : query.bbox;
  }
  const q = query.q ? foldName(query.q) : null;
  const qFrom = q === null ? 0 : lowerBoundById(view.channels, q);
  const qTo = q === null ? 0 : lowerBoundById(view.channels, q + '\uffff');
  if (pairs === 0 || statuses === 0) return null;
  const [minLon, minLat, maxLon, maxLat] = bbox ?? [0, 0, 0, 0];
  return { pairs, statuses, districts, hasBox: bbox !== null, minLon, minLat, maxLon, maxLat, bbox, q, qFrom, qTo };
}

export function visiblePairs(visible: Visibility, classes?: readonly number[], networks?: readonly string[]): number {
  let pairs = 0;
  for (let pair = 0; pair < PAIRS; pair++) {
    const channelClass = (pair >> 2) + 1;
    const network: Network = NETWORKS[pair & 3];
    if (classes && classes.length > 0 && !classes.includes(channelClass)) continue;
    if (networks && networks.length > 0 && !networks.includes(network)) continue;
    if (visible !== 'all' && !(visible.classes.includes(channelClass) && visible.networks.includes(network))) continue;
    pairs |= 1 << pair;
  }
  for (const n of networks ?? []) {
    if (!(NETWORKS as readonly string[]).includes(n)) throw badRequest(`unknown network ${JSON.stringify(n)}`);
  }
  for (const c of classes ?? []) if (c !== 1 && c !== 2 && c !== 3) throw badRequest(`unknown class ${c}`);
  return pairs;
}

/** The smallest of the candidate sources the filter offers; every candidate is still checked. */
export function candidateSegments(view: CatalogView, filter: Filter): Segment[] {
  const sources: Segment[][] = [];
  if (filter.pairs === ALL_PAIRS) sources.push([rangeSegment(0, view.channels.length)]);
  else sources.push(view.pairLists.filter((_, pair) => filter.pairs & (1 << pair)).map(listSegment));
  if (filter.statuses !== ALL_STATUSES) {
    sources.push(view.statusLists.filter((_, s) => filter.statuses & (1 << s)).map(listSegment));
  }
  if (filter.districts) {
    const selected = filter.districts;
    sources.push(view.districtLists.filter((_, d) => selected[d] === 1).map(listSegment));
  }
  if (filter.bbox) {
    const cells = view.grid.segments(filter.bbox);
    if (cells) sources.push(cells);
  }
  if (filter.q !== null) {
    sources.push([...view.names.candidates(filter.q), rangeSegment(filter.qFrom, filter.qTo, true)]);
  }
  let best = sources[0];
  let bestSize = segmentsSize(best);
  for (const source of sources) {
    const size = segmentsSize(source);
    if (size < bestSize) {
      best = source;
      bestSize = size;
    }
  }
  return best;
}

/** The first `want` matching ordinals >= from, reading each segment only as far as it has to. */
export function firstMatches(view: CatalogView, segments: Segment[], filter: Filter, from: number, want: number): number[] {
  // Nothing of the selected districts lies below the first ordinal of their lists: a box that reaches into a
  // district of lower ids (ids begin with the district code) need not be read through it.
  from = Math.max(from, lowestOrdinal(view, filter));
  if (segments.length > 1 && segments.every((s) => s.sorted)) return firstMatchesMerged(view, segments, filter, from, want);
  const found: number[] = [];
  const single = segments.length === 1;
  for (const segment of segments) {
    let taken = 0;
    // An unsorted segment can hold its earliest match last: read it to the end.
    const cap = segment.sorted ? want : Infinity;
    const { ords } = segment;
    if (ords === null) {
      for (let ord = Math.max(from, segment.start); ord < segment.end && taken < cap; ord++) {
        if (ordMatches(view, ord, filter)) {
          taken++;
          if (single) found.push(ord);
          else view.marks.mark(ord);
        }
      }
      continue;
    }
    for (let at = startOf(segment, from); at < segment.end && taken < cap; at++) {
      const ord = ords[at];
      if (ord >= from && ordMatches(view, ord, filter)) {
        taken++;
        if (single) found.push(ord);
        else view.marks.mark(ord);
      }
    }
  }
  return single ? found : view.marks.drain(from, want).ords;
}

/** The lowest ordinal a match can have: 0, or with districts selected the first ordinal of their lists. */
function lowestOrdinal(view: CatalogView, filter: Filter): number {
  if (!filter.districts) return 0;
  let lowest = view.channels.length;
  for (let d = 0; d < filter.districts.length; d++) {
    const list = view.districtLists[d];
    if (filter.districts[d] === 1 && list && list.length > 0) lowest = Math.min(lowest, list.ords[0]!);
  }
  return lowest;
}

/**
 * firstMatches over several sorted segments (a box's grid cells): merged in ordinal order through a heap of
 * the segments' next ordinals, so it reads only the candidates below the page's last match, a few per match,
 * instead of up to `want` matches of every segment. An ordinal in two segments is checked once.
 */
function firstMatchesMerged(view: CatalogView, segments: readonly Segment[], filter: Filter, from: number, want: number): number[] {
  const pos = new Int32Array(segments.length);
  const next = (i: number) => {
    const s = segments[i]!;
    return s.ords === null ? pos[i]! : s.ords[pos[i]!]!;
  };
  const heap: number[] = [];
  const less = (a: number, b: number) => next(heap[a]!) < next(heap[b]!);
  const swap = (a: number, b: number) => {
    const x = heap[a]!;
    heap[a] = heap[b]!;
    heap[b] = x;
  };
  const down = (at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      const r = l + 1;
      let min = at;
      if (l < heap.length && less(l, min)) min = l;
      if (r < heap.length && less(r, min)) min = r;
      if (min === at) return;
      swap(at, min);
      at = min;
    }
  };
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    pos[i] = s.ords === null ? Math.max(from, s.start) : startOf(s, from);
    if (pos[i]! >= s.end) continue;
    heap.push(i);
    for (let at = heap.length - 1; at > 0 && less(at, (at - 1) >> 1); at = (at - 1) >> 1) swap(at, (at - 1) >> 1);
  }
  const found: number[] = [];
  let last = -1;
  while (heap.length > 0 && found.length < want) {
    const i = heap[0]!;
    const ord = next(i);
    const exact = segments[i]!.exact;
    pos[i]!++;
    if (pos[i]! >= segments[i]!.end) {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    down(0);
    if (ord === last) continue;
    last = ord;
    if (ordMatches(view, ord, filter, exact)) found.push(ord);
  }
  return found;
}

/** Every match (for the total) plus the first `want` ordinals >= from. */
export function allMatches(view: CatalogView, segments: Segment[], filter: Filter, from: number, want: number): { total: number; ords: number[] } {
  if (segments.length === 1 && segments[0].sorted) {
    const segment = segments[0];
    const ords: number[] = [];
    let total = 0;
    for (let at = segment.start; at < segment.end; at++) {
      const ord = segment.ords === null ? at : segment.ords[at];
      if (!ordMatches(view, ord, filter, segment.exact)) continue;
      total++;
      if (ord >= from && ords.length < want) ords.push(ord);
    }
    return { total, ords };
  }
  // Several lists (or lists that may repeat an ordinal): marking dedupes and restores id order.
  for (const segment of segments) {
    for (let at = segment.start; at < segment.end; at++) {
      const ord = segment.ords === null ? at : segment.ords[at];
      if (ordMatches(view, ord, filter, segment.exact)) view.marks.mark(ord);
    }
  }
  const { marked, ords } = view.marks.drain(from, want);
  return { total: marked, ords };
}

/** `textKnown`: the candidate came from an exact text source, so only a rename since the build needs a check. */
export function ordMatches(view: CatalogView, ord: number, filter: Filter, textKnown = false): boolean {
  if (!(filter.pairs & (1 << view.pairColumn[ord]))) return false;
  if (!(filter.statuses & (1 << view.statusColumn[ord]))) return false;
  if (filter.districts && filter.districts[view.districtColumn[ord]] !== 1) return false;
  if (filter.hasBox) {
    const lon = view.lonColumn[ord];
    const lat = view.latColumn[ord];
    if (lon < filter.minLon || lon > filter.maxLon || lat < filter.minLat || lat > filter.maxLat) return false;
  }
  if (filter.q !== null && !(textKnown && view.renamed[ord] === 0) && (ord < filter.qFrom || ord >= filter.qTo)) {
    const name = view.foldedNames.size === 0 ? view.channels[ord].name : (view.foldedNames.get(ord) ?? view.channels[ord].name);
    if (!name.includes(filter.q)) return false;
  }
  return true;
}

export function channelMatches(view: CatalogView, channel: Channel, filter: Filter): boolean {
  if (!(filter.pairs & (1 << pairOf(channel)))) return false;
  if (!(filter.statuses & (1 << statusOf(channel)))) return false;
  if (filter.districts && filter.districts[view.districtIndex.get(channel.district)!] !== 1) return false;
  if (filter.hasBox) {
    const { lon, lat } = channel.location;
    if (lon < filter.minLon || lon > filter.maxLon || lat < filter.minLat || lat > filter.maxLat) return false;
  }
  if (filter.q !== null && !foldName(channel.name).includes(filter.q) && !channel.id.startsWith(filter.q)) return false;
  return true;
}

/** District, class/network pair and status as one number (the index of a query's accept table). */
export const partOf = (district: number, pair: number, status: number) => (district * PAIRS + pair) * STATUSES + status;

/** accept[part] = 1 for every part (district, pair, status) the filter selects. */
export function acceptTable(view: CatalogView, filter: Filter): Uint8Array {
  const accept = new Uint8Array(view.districtCodes.length * PAIRS * STATUSES);
  for (let d = 0; d < view.districtCodes.length; d++) {
    if (filter.districts && filter.districts[d] !== 1) continue;
    for (let pair = 0; pair < PAIRS; pair++) {
      if (!(filter.pairs & (1 << pair))) continue;
      for (let s = 0; s < STATUSES; s++) if (filter.statuses & (1 << s)) accept[partOf(d, pair, s)] = 1;
    }
  }
  return accept;
}

/** The total of a box query without text, from the grid (indexed channels only), or null when the box is too wide. */
export function countInBox(view: CatalogView, filter: Filter): number | null {
  if (filter.bbox === null || filter.q !== null) return null;
  return view.grid.count(filter.bbox, acceptTable(view, filter));
}

export function countFromCounters(view: CatalogView, filter: Filter): number {
  let total = 0;
  for (let d = 0; d < view.counters.length; d++) {
    if (filter.districts && filter.districts[d] !== 1) continue;
    const counts = view.counters[d];
    for (let pair = 0; pair < PAIRS; pair++) {
      if (!(filter.pairs & (1 << pair))) continue;
      for (let s = 0; s < STATUSES; s++) if (filter.statuses & (1 << s)) total += counts[pair * STATUSES + s];
    }
  }
  return total;
}

/** First position in an id-sorted array whose id is >= id. */
export function lowerBoundById(channels: readonly Channel[], id: string): number {
  let lo = 0;
  let hi = channels.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (channels[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First position whose id is > id. */
export function upperBoundById(channels: readonly Channel[], id: string): number {
  let lo = 0;
  let hi = channels.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (channels[mid].id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First position of a sorted segment whose ordinal is >= from. */
function startOf(segment: Segment, from: number): number {
  const ords = segment.ords!;
  if (!segment.sorted) return segment.start;
  let lo = segment.start;
  let hi = segment.end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ords[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
