/**
 * Spatial grid of the catalog: channels bucketed into 0.02° cells (about 2 km in Guangzhou), so a map's
 * bounding box reads the channels of the cells it touches instead of the whole catalog.
 *
 * Each cell keeps, beside its ordinals, each channel's part (district, class/network pair and status in one
 * number) and location, in the same order: counting a box reads a cell's own short arrays one after the other
 * instead of jumping into the catalog-wide columns (a new map viewport counts thousands of channels).
 */
import { lowerBoundOf, type Segment } from './catalog-postings.js';

const CELL_DEGREES = 0.02;
const LAT_CELLS = Math.ceil(180 / CELL_DEGREES) + 1;
const LON_CELLS = Math.ceil(360 / CELL_DEGREES) + 1;
/** Beyond this many cells (a box wider than about 1°×1°) the box is a filter, not a worthwhile candidate source. */
const MAX_CELLS_PER_QUERY = 2500;
/** Degrees a cell's bounds are widened by when deciding that it lies wholly inside a box (far above rounding error). */
const EDGE = 1e-9;

export type BBox = readonly [minLon: number, minLat: number, maxLon: number, maxLat: number];

const latCell = (lat: number) => Math.floor(lat / CELL_DEGREES) + LAT_CELLS / 2;
const lonCell = (lon: number) => Math.floor(lon / CELL_DEGREES) + LON_CELLS / 2;

/** One cell: sorted ordinals with each one's part and location at the same index. */
class GridCell {
  ords = new Uint32Array(4);
  parts = new Uint32Array(4);
  lons = new Float64Array(4);
  lats = new Float64Array(4);
  length = 0;

  /** Bulk build: ordinals arrive in increasing order. */
  push(ord: number, part: number, lon: number, lat: number): void {
    if (this.length === this.ords.length) this.resize(this.ords.length * 2);
    this.put(this.length++, ord, part, lon, lat);
  }

  add(ord: number, part: number, lon: number, lat: number): void {
    const at = this.lowerBound(ord);
    if (at < this.length && this.ords[at] === ord) return this.put(at, ord, part, lon, lat);
    if (this.length === this.ords.length) this.resize(this.ords.length * 2);
    for (const column of [this.ords, this.parts, this.lons, this.lats]) column.copyWithin(at + 1, at, this.length);
    this.put(at, ord, part, lon, lat);
    this.length++;
  }

  remove(ord: number): void {
    const at = this.lowerBound(ord);
    if (at >= this.length || this.ords[at] !== ord) return;
    for (const column of [this.ords, this.parts, this.lons, this.lats]) column.copyWithin(at, at + 1, this.length);
    this.length--;
  }

  setPart(ord: number, part: number): void {
    const at = this.lowerBound(ord);
    if (at < this.length && this.ords[at] === ord) this.parts[at] = part;
  }

  trim(): void {
    if (this.ords.length > this.length) this.resize(this.length);
  }

  private put(at: number, ord: number, part: number, lon: number, lat: number): void {
    this.ords[at] = ord;
    this.parts[at] = part;
    this.lons[at] = lon;
    this.lats[at] = lat;
  }

  private lowerBound(ord: number): number {
    return lowerBoundOf(this.ords, this.length, ord);
  }

  private resize(capacity: number): void {
    const size = Math.max(4, capacity);
    const ords = new Uint32Array(size);
    const parts = new Uint32Array(size);
    const lons = new Float64Array(size);
    const lats = new Float64Array(size);
    ords.set(this.ords.subarray(0, this.length));
    parts.set(this.parts.subarray(0, this.length));
    lons.set(this.lons.subarray(0, this.length));
    lats.set(this.lats.subarray(0, this.length));
    Object.assign(this, { ords, parts, lons, lats });
  }
}

export class SpatialGrid {
  private readonly cells = new Map<number, GridCell>();
  /** Occupied cell range; only grows, which keeps it a safe bound for clamping query boxes. */
  private minLatCell = Infinity;
  private maxLatCell = -Infinity;
  private minLonCell = Infinity;
  private maxLonCell = -Infinity;

  /** Bulk build: ordinals must arrive in increasing order. */
  push(ord: number, lat: number, lon: number, part: number): void {
    this.cellAt(lat, lon).push(ord, part, lon, lat);
  }

  add(ord: number, lat: number, lon: number, part: number): void {
    this.cellAt(lat, lon).add(ord, part, lon, lat);
  }

  remove(ord: number, lat: number, lon: number): void {
    this.cells.get(cellKey(latCell(lat), lonCell(lon)))?.remove(ord);
  }

  /** The channel at (lat, lon) changed district, pair or status, not place. */
  setPart(ord: number, lat: number, lon: number, part: number): void {
    this.cells.get(cellKey(latCell(lat), lonCell(lon)))?.setPart(ord, part);
  }

  trim(): void {
    for (const cell of this.cells.values()) cell.trim();
  }

  /** Candidate segments of the cells the box touches, or null when the box spans too many cells to be useful. */
  segments(bbox: BBox): Segment[] | null {
    const range = this.range(bbox);
    if (range === null) return null;
    const found: Segment[] = [];
    for (let la = range.latFrom; la <= range.latTo; la++) {
      for (let lo = range.lonFrom; lo <= range.lonTo; lo++) {
        const cell = this.cells.get(cellKey(la, lo));
        if (cell && cell.length > 0) found.push({ ords: cell.ords, start: 0, end: cell.length, sorted: true, exact: false });
      }
    }
    return found;
  }

  /**
   * How many channels in the box have an accepted part (`accept[part] === 1`): a cell wholly inside the box
   * is counted without comparing a location, an edge cell channel by channel. Cells are disjoint, so nothing
   * is counted twice. Null when the box spans too many cells.
   */
  count(bbox: BBox, accept: Uint8Array): number | null {
    const range = this.range(bbox);
    if (range === null) return null;
    const [minLon, minLat, maxLon, maxLat] = bbox;
    let total = 0;
    for (let la = range.latFrom; la <= range.latTo; la++) {
      // A cell holds the channels whose floor(lat / CELL_DEGREES) is its index, [k, k + 1) cells wide,
      // widened by a hair so that rounding in that division never counts a channel outside the box.
      const cellMinLat = (la - LAT_CELLS / 2) * CELL_DEGREES - EDGE;
      const latInside = cellMinLat >= minLat && cellMinLat + CELL_DEGREES + 2 * EDGE <= maxLat;
      for (let lo = range.lonFrom; lo <= range.lonTo; lo++) {
        const cell = this.cells.get(cellKey(la, lo));
        if (!cell) continue;
        const cellMinLon = (lo - LON_CELLS / 2) * CELL_DEGREES - EDGE;
        const { parts, lons, lats, length } = cell;
        if (latInside && cellMinLon >= minLon && cellMinLon + CELL_DEGREES + 2 * EDGE <= maxLon) {
          for (let i = 0; i < length; i++) total += accept[parts[i]];
          continue;
        }
        for (let i = 0; i < length; i++) {
          if (accept[parts[i]] === 0) continue;
          const lon = lons[i];
          const lat = lats[i];
          if (lon >= minLon && lon <= maxLon && lat >= minLat && lat <= maxLat) total++;
        }
      }
    }
    return total;
  }

  /** The occupied cells a box touches; null beyond MAX_CELLS_PER_QUERY, an empty range when it misses them all. */
  private range(bbox: BBox): { latFrom: number; latTo: number; lonFrom: number; lonTo: number } | null {
    const [minLon, minLat, maxLon, maxLat] = bbox;
    const latFrom = Math.max(latCell(minLat), this.minLatCell);
    const latTo = Math.min(latCell(maxLat), this.maxLatCell);
    const lonFrom = Math.max(lonCell(minLon), this.minLonCell);
    const lonTo = Math.min(lonCell(maxLon), this.maxLonCell);
    if (latFrom <= latTo && lonFrom <= lonTo && (latTo - latFrom + 1) * (lonTo - lonFrom + 1) > MAX_CELLS_PER_QUERY) return null;
    return { latFrom, latTo, lonFrom, lonTo };
  }

  private cellAt(lat: number, lon: number): GridCell {
    const la = latCell(lat);
    const lo = lonCell(lon);
    const key = cellKey(la, lo);
    let cell = this.cells.get(key);
    if (!cell) {
      cell = new GridCell();
      this.cells.set(key, cell);
      this.minLatCell = Math.min(this.minLatCell, la);
      this.maxLatCell = Math.max(this.maxLatCell, la);
      this.minLonCell = Math.min(this.minLonCell, lo);
      this.maxLonCell = Math.max(this.maxLonCell, lo);
    }
    return cell;
  }
}

const cellKey = (latIndex: number, lonIndex: number) => latIndex * LON_CELLS + lonIndex;
