/**
 * Spatial grid of the catalog: channels bucketed into 0.02° cells (about 2 km in Guangzhou), so a map's
 * bounding box reads the channels of the cells it touches instead of the whole catalog.
 */
import { PostingList, listSegment, type Segment } from './catalog-postings.js';

const CELL_DEGREES = 0.02;
const LAT_CELLS = Math.ceil(180 / CELL_DEGREES) + 1;
const LON_CELLS = Math.ceil(360 / CELL_DEGREES) + 1;
/** Beyond this many cells (a box wider than about 1°×1°) the box is a filter, not a worthwhile candidate source. */
const MAX_CELLS_PER_QUERY = 2500;

export type BBox = readonly [minLon: number, minLat: number, maxLon: number, maxLat: number];

const latCell = (lat: number) => Math.floor(lat / CELL_DEGREES) + LAT_CELLS / 2;
const lonCell = (lon: number) => Math.floor(lon / CELL_DEGREES) + LON_CELLS / 2;

export class SpatialGrid {
  private readonly cells = new Map<number, PostingList>();
  /** Occupied cell range; only grows, which keeps it a safe bound for clamping query boxes. */
  private minLatCell = Infinity;
  private maxLatCell = -Infinity;
  private minLonCell = Infinity;
  private maxLonCell = -Infinity;

  /** Bulk build: ordinals must arrive in increasing order. */
  push(ord: number, lat: number, lon: number): void {
    this.cellAt(lat, lon).push(ord);
  }

  add(ord: number, lat: number, lon: number): void {
    this.cellAt(lat, lon).add(ord);
  }

  remove(ord: number, lat: number, lon: number): void {
    this.cells.get(cellKey(latCell(lat), lonCell(lon)))?.remove(ord);
  }

  trim(): void {
    for (const cell of this.cells.values()) cell.trim();
  }

  /** Candidate segments of the cells the box touches, or null when the box spans too many cells to be useful. */
  segments(bbox: BBox): Segment[] | null {
    const [minLon, minLat, maxLon, maxLat] = bbox;
    const latFrom = Math.max(latCell(minLat), this.minLatCell);
    const latTo = Math.min(latCell(maxLat), this.maxLatCell);
    const lonFrom = Math.max(lonCell(minLon), this.minLonCell);
    const lonTo = Math.min(lonCell(maxLon), this.maxLonCell);
    if (latFrom > latTo || lonFrom > lonTo) return [];
    if ((latTo - latFrom + 1) * (lonTo - lonFrom + 1) > MAX_CELLS_PER_QUERY) return null;
    const found: Segment[] = [];
    for (let la = latFrom; la <= latTo; la++) {
      for (let lo = lonFrom; lo <= lonTo; lo++) {
        const cell = this.cells.get(cellKey(la, lo));
        if (cell && cell.length > 0) found.push(listSegment(cell));
      }
    }
    return found;
  }

  private cellAt(lat: number, lon: number): PostingList {
    const la = latCell(lat);
    const lo = lonCell(lon);
    const key = cellKey(la, lo);
    let cell = this.cells.get(key);
    if (!cell) {
      cell = new PostingList();
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
