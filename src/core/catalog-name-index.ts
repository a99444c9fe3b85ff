/**
 * Name search for Chinese channel names: an inverted index of character bigrams (and single characters, for
 * one-character queries). Chinese has no spaces to split words on, and any substring of two or more characters
 * contains a bigram, so the rarest bigram of the query bounds the candidates; callers verify each candidate.
 *
 * The bulk build lays all postings out in one Uint32Array (compressed sparse rows). Renames after the build go
 * to a small overlay; stale entries of the old name stay behind and are filtered out by the caller's check.
 */
import { segmentsSize, type Segment } from './catalog-postings.js';

/** Case-folded form used for indexing and matching (names are mostly Chinese; this only affects Latin letters). */
export const foldName = (text: string) => text.toLowerCase();

export class NameIndex {
  /** Gram id of each single UTF-16 unit (-1: not in any name): a table, not a map, for the commonest lookup. */
  private readonly singleIds = new Int32Array(65536).fill(-1);
  /** Bigram key (see bigramKey) → gram id. */
  private readonly bigramIds = new Map<number, number>();
  private offsets = new Uint32Array(1);
  private postings = new Uint32Array(0);
  /** Renamed channels' ordinals by single unit and by bigram key. */
  private readonly overlaySingles = new Map<number, number[]>();
  private readonly overlayBigrams = new Map<number, number[]>();
  private overlayEntries = 0;

  /** Builds the index of `names[ord]` (already folded) for every ordinal. */
  static build(names: readonly string[]): NameIndex {
    const index = new NameIndex();
    const counts: number[] = [];
    /** Last ordinal that counted each gram: dedupes a gram repeated within one name without a Set per name. */
    const lastOrd: number[] = [];
    // Gram ids of every name, flat, with each ordinal's run in gramStarts: one typed array instead of 86,000 small ones.
    let gramSeq = new Uint32Array(Math.max(64, names.length * 16));
    const gramStarts = new Uint32Array(names.length + 1);
    let total = 0;
    for (let ord = 0; ord < names.length; ord++) {
      const name = names[ord];
      for (let i = 0; i < name.length; i++) {
        for (let width = 1; width <= 2 && i + width <= name.length; width++) {
          let id: number;
          if (width === 1) {
            const unit = name.charCodeAt(i);
            id = index.singleIds[unit];
            if (id < 0) {
              id = counts.length;
              index.singleIds[unit] = id;
              counts.push(0);
              lastOrd.push(-1);
            }
          } else {
            const key = bigramKey(name, i);
            const known = index.bigramIds.get(key);
            if (known === undefined) {
              id = counts.length;
              index.bigramIds.set(key, id);
              counts.push(0);
              lastOrd.push(-1);
            } else {
              id = known;
            }
          }
          if (lastOrd[id] === ord) continue;
          lastOrd[id] = ord;
          counts[id]++;
          if (total === gramSeq.length) {
            const grown = new Uint32Array(gramSeq.length * 2);
            grown.set(gramSeq);
            gramSeq = grown;
          }
          gramSeq[total++] = id;
        }
      }
      gramStarts[ord + 1] = total;
    }
    index.offsets = new Uint32Array(counts.length + 1);
    for (let id = 0; id < counts.length; id++) index.offsets[id + 1] = index.offsets[id] + counts[id];
    index.postings = new Uint32Array(total);
    const fill = index.offsets.slice(0, counts.length);
    // Ordinals are visited in increasing order, so every gram's postings come out sorted.
    for (let ord = 0; ord < names.length; ord++) {
      for (let at = gramStarts[ord]; at < gramStarts[ord + 1]; at++) index.postings[fill[gramSeq[at]]++] = ord;
    }
    return index;
  }

  /** Makes a renamed channel findable under its new (folded) name. */
  add(ord: number, foldedName: string): void {
    const singles = new Set<number>();
    const bigrams = new Set<number>();
    for (let i = 0; i < foldedName.length; i++) {
      singles.add(foldedName.charCodeAt(i));
      if (i + 1 < foldedName.length) bigrams.add(bigramKey(foldedName, i));
    }
    for (const [overlay, keys] of [[this.overlaySingles, singles], [this.overlayBigrams, bigrams]] as const) {
      for (const key of keys) {
        const list = overlay.get(key);
        if (list) list.push(ord);
        else overlay.set(key, [ord]);
        this.overlayEntries++;
      }
    }
  }

  /** Overlay entries since the build; the owner rebuilds when renames pile up. */
  get overlaySize(): number {
    return this.overlayEntries;
  }

  /**
   * Candidate segments for a folded, non-empty query: the postings of a single character or bigram (exact, apart
   * from channels renamed since the build), or for longer queries the intersection of the two rarest bigrams
   * (a superset). Overlay entries of renamed channels come as a separate, unsorted segment.
   */
  candidates(foldedQuery: string): Segment[] {
    if (foldedQuery.length === 1) return this.segmentsOf(false, foldedQuery.charCodeAt(0), true);
    if (foldedQuery.length === 2) return this.segmentsOf(true, bigramKey(foldedQuery, 0), true);
    const bySize: Array<{ key: number; size: number }> = [];
    for (let i = 0; i + 1 < foldedQuery.length; i++) {
      const key = bigramKey(foldedQuery, i);
      const size = segmentsSize(this.segmentsOf(true, key, false));
      if (size === 0) return [];
      bySize.push({ key, size });
    }
    bySize.sort((a, b) => a.size - b.size);
    const rarest = this.segmentsOf(true, bySize[0].key, false);
    const next = this.segmentsOf(true, bySize[1].key, false);
    const main = rarest.find((segment) => segment.sorted);
    const added = rarest.filter((segment) => !segment.sorted);
    const otherMain = next.find((segment) => segment.sorted);
    // Only built postings are intersected; overlay entries pass through for the caller to check.
    const both = main && otherMain ? intersect(main, otherMain) : main;
    return both ? [both, ...added] : added;
  }

  /** The postings of one gram: a bigram (its bigramKey) or a single unit (its code). */
  private segmentsOf(bigram: boolean, key: number, exact: boolean): Segment[] {
    const segments: Segment[] = [];
    const id = bigram ? this.bigramIds.get(key) : this.singleIds[key];
    if (id !== undefined && id >= 0) {
      segments.push({ ords: this.postings, start: this.offsets[id], end: this.offsets[id + 1], sorted: true, exact });
    }
    const added = (bigram ? this.overlayBigrams : this.overlaySingles).get(key);
    if (added) segments.push({ ords: Uint32Array.from(added), start: 0, end: added.length, sorted: false, exact: false });
    return segments;
  }
}

/**
 * Two UTF-16 units as one int32 (no string is built per gram). It stays a small integer: a key above 2^31, as
 * `65536 + a * 65536 + b` was for every CJK character past U+7FFF, is a heap number in V8, allocated at each
 * of the 2 million lookups of a catalog build.
 */
const bigramKey = (text: string, at: number) => (text.charCodeAt(at) << 16) | text.charCodeAt(at + 1);

/** Sorted intersection of two sorted segments, walking the smaller and galloping through the larger. */
function intersect(small: Segment, large: Segment): Segment {
  const a = small.ords!;
  const b = large.ords!;
  const out = new Uint32Array(Math.min(small.end - small.start, large.end - large.start));
  let n = 0;
  let j = large.start;
  for (let i = small.start; i < small.end && j < large.end; i++) {
    const ord = a[i];
    let step = 1;
    while (j + step < large.end && b[j + step] < ord) step *= 2;
    let lo = j;
    let hi = Math.min(j + step, large.end - 1);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[mid] < ord) lo = mid + 1;
      else hi = mid;
    }
    j = lo;
    if (b[j] === ord) out[n++] = ord;
  }
  return { ords: out, start: 0, end: n, sorted: true, exact: false };
}
