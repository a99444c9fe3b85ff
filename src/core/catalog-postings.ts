/**
 * Building blocks of the catalog index: sorted posting lists of channel ordinals and a reusable bitset that puts
 * candidates from several lists back into ordinal (= id) order without sorting.
 */

/** First position of the sorted `ords[0..length)` whose ordinal is >= ord. */
export function lowerBoundOf(ords: Uint32Array, length: number, ord: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ords[mid]! < ord) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A sorted, duplicate-free list of ordinals in a growable Uint32Array (4 bytes per entry, no per-entry object). */
export class PostingList {
  ords: Uint32Array;
  length = 0;

  constructor(capacity = 4) {
    this.ords = new Uint32Array(capacity);
  }

  /** Appends during a bulk build, where ordinals arrive in increasing order. */
  push(ord: number): void {
    if (this.length === this.ords.length) this.grow();
    this.ords[this.length++] = ord;
  }

  add(ord: number): void {
    const at = this.lowerBound(ord);
    if (at < this.length && this.ords[at] === ord) return;
    if (this.length === this.ords.length) this.grow();
    this.ords.copyWithin(at + 1, at, this.length);
    this.ords[at] = ord;
    this.length++;
  }

  remove(ord: number): void {
    const at = this.lowerBound(ord);
    if (at >= this.length || this.ords[at] !== ord) return;
    this.ords.copyWithin(at, at + 1, this.length);
    this.length--;
  }

  /** First position whose ordinal is >= ord. */
  lowerBound(ord: number): number {
    return lowerBoundOf(this.ords, this.length, ord);
  }

  /** Drops spare capacity once a bulk build is done (the catalog is mostly read). */
  trim(): void {
    if (this.ords.length > this.length) this.ords = this.ords.slice(0, this.length);
  }

  private grow(): void {
    const next = new Uint32Array(Math.max(4, this.ords.length * 2));
    next.set(this.ords);
    this.ords = next;
  }
}

/**
 * One bit per ordinal, reused by every query: marking candidates from many lists and reading the set bits back
 * from a start ordinal yields them in id order in O(marked + words between). Only the touched words are cleared.
 */
export class OrdinalMarks {
  private words: Uint32Array;
  private lowWord = Number.MAX_SAFE_INTEGER;
  private highWord = -1;

  constructor(size: number) {
    this.words = new Uint32Array((size >>> 5) + 1);
  }

  mark(ord: number): void {
    const word = ord >>> 5;
    this.words[word] |= 1 << (ord & 31);
    if (word < this.lowWord) this.lowWord = word;
    if (word > this.highWord) this.highWord = word;
  }

  /** How many ordinals are marked, and the first `max` of them >= from in increasing order; then clears every mark. */
  drain(from: number, max: number): { marked: number; ords: number[] } {
    const ords: number[] = [];
    let marked = 0;
    for (let word = this.lowWord; word <= this.highWord; word++) {
      let bits = this.words[word];
      if (bits === 0) continue;
      marked += popcount(bits);
      if (ords.length >= max || (word << 5) + 31 < from) continue;
      while (bits !== 0 && ords.length < max) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const ord = (word << 5) | bit;
        if (ord >= from) ords.push(ord);
      }
    }
    if (this.highWord >= 0) this.words.fill(0, this.lowWord, this.highWord + 1);
    this.lowWord = Number.MAX_SAFE_INTEGER;
    this.highWord = -1;
    return { marked, ords };
  }
}

function popcount(bits: number): number {
  let v = bits - ((bits >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * A run of candidate ordinals: `ords[start..end)` of a sorted list, or when `ords` is null the ordinals
 * start..end-1 themselves (an id-prefix range). `sorted` is false for small unsorted overlays. `exact` says the
 * run is known to satisfy the text query (so only its renamed members need a string check).
 */
export interface Segment {
  ords: Uint32Array | null;
  start: number;
  end: number;
  sorted: boolean;
  exact: boolean;
}

export const listSegment = (list: PostingList): Segment => ({ ords: list.ords, start: 0, end: list.length, sorted: true, exact: false });
export const rangeSegment = (start: number, end: number, exact = false): Segment => ({ ords: null, start, end, sorted: true, exact });

export const segmentsSize = (segments: readonly Segment[]): number => {
  let size = 0;
  for (const s of segments) size += s.end - s.start;
  return size;
};
