/**
 * An Annex-B elementary stream, arriving in arbitrary pieces with the timestamps of the PES packets that carried
 * them, cut into access units (one picture each) for flv-mux.ts. MPEG-PS does not align PES packets to pictures
 * (ffmpeg packs the tail of one frame and the head of the next into one PES), so pictures are found in the NAL units
 * themselves: a picture ends where an AUD, parameter set or prefix SEI follows its slices, or where a slice starts a
 * new picture (first_mb_in_slice 0 / first_slice_segment_in_pic_flag 1).
 * Timestamps follow ISO/IEC 13818-1 §2.4.3.7: a PES packet's PTS belongs to the first access unit that starts in
 * it; one that starts in a PES without a PTS gets the next frame interval as its DTS (and PTS).
 * Nothing here trusts the stream: a picture larger than `maxAccessUnitBytes` is dropped, a NAL unit with its
 * forbidden bit set (PS structure swallowed into a PES by a lying length) drops the picture, and after any loss
 * nothing comes out until the next keyframe.
 * @see ITU-T H.264 §7.4.1.2.3, H.265 §7.4.2.4.4 (order of NAL units and access unit boundaries)
 */
import { isKeyframe, nalType, type AccessUnit, type VideoCodec } from './flv-mux.js';

/** A 4K H.265 keyframe is a few MB; the FLV publisher refuses tags above 8 MB. */
export const DEFAULT_MAX_ACCESS_UNIT_BYTES = 8 * 1024 * 1024;
/** The frame interval assumed before two timestamps are known: 25 fps, GB/T 28181's common rate. */
const DEFAULT_FRAME_TICKS = 3600;
const CLOCK_WRAP = 2 ** 33;

interface Timestamp {
  /** ES offset of the first payload byte of the PES that carried it. */
  offset: number;
  pts: number;
  dts: number;
}

export interface AssemblerStats {
  /** Access units dropped: too large, corrupt, or between a loss and the next keyframe. */
  droppedUnits: number;
}

/** Is this NAL unit the first of a new access unit, given the current one already has a picture? */
function startsAccessUnit(codec: VideoCodec, nalu: Buffer): boolean {
  const type = nalType(codec, nalu);
  if (codec === 'h264') {
    if (type === 1 || type === 5) return nalu.length > 1 && (nalu[1] & 0x80) !== 0; // first_mb_in_slice == 0
    return type === 6 || type === 7 || type === 8 || type === 9 || (type >= 14 && type <= 18);
  }
  if (type <= 31) return nalu.length > 2 && (nalu[2] & 0x80) !== 0; // first_slice_segment_in_pic_flag
  return (type >= 32 && type <= 35) || type === 39 || (type >= 41 && type <= 44) || (type >= 48 && type <= 55);
}

function isVcl(codec: VideoCodec, nalu: Buffer): boolean {
  const type = nalType(codec, nalu);
  return codec === 'h264' ? type >= 1 && type <= 5 : type >= 0 && type <= 31;
}

export class AccessUnitAssembler {
  readonly codec: VideoCodec;
  readonly stats: AssemblerStats = { droppedUnits: 0 };
  readonly #maxBytes: number;
  /** Bytes of the open (not yet ended) NAL unit and the complete ones of the current picture. */
  #buffer = Buffer.alloc(64 * 1024);
  #length = 0;
  /** ES offset of #buffer[0]. */
  #base = 0;
  /** Where the start-code scan resumes (buffer index). */
  #scanned = 0;
  /** Buffer index of the open NAL unit's first byte (after its start code); -1 before the first start code. */
  #openNal = -1;
  #units: Array<{ start: number; end: number }> = [];
  #hasPicture = false;
  /** ES offset where the current access unit began. */
  #unitOffset = 0;
  #timestamps: Timestamp[] = [];
  #last?: { pts: number; dts: number };
  #frameTicks = DEFAULT_FRAME_TICKS;
  #waitKeyframe = true;
  #corrupt = false;

  constructor(codec: VideoCodec, options: { maxAccessUnitBytes?: number } = {}) {
    this.codec = codec;
    this.#maxBytes = options.maxAccessUnitBytes ?? DEFAULT_MAX_ACCESS_UNIT_BYTES;
  }

  /** A new PES payload begins here; `pts`/`dts` are its header's (90 kHz), if it had them. */
  startPes(pts: number | undefined, dts: number | undefined): void {
    if (pts === undefined) return;
    this.#timestamps.push({ offset: this.#base + this.#length, pts, dts: dts ?? pts });
    // Only the entries at or after the current picture's start can still be used: keep the list short.
    if (this.#timestamps.length > 64) this.#timestamps.splice(0, this.#timestamps.length - 64);
  }

  /** Payload bytes; returns the access units they completed. */
  push(data: Buffer): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#length + data.length > this.#maxBytes) {
      // A picture (or garbage without start codes) past the limit: drop everything, resume at the next start code.
      this.stats.droppedUnits += 1;
      this.#resetPicture(true);
      this.#base += this.#length + data.length;
      this.#length = 0;
      this.#scanned = 0;
      this.#openNal = -1;
      return out;
    }
    this.#append(data);
    const buffer = this.#buffer;
    let i = Math.max(0, this.#scanned - 3);
    let end = this.#length;
    while (i + 3 < end) {
      if (buffer[i + 2] > 1) {
        i += 3;
        continue;
      }
      if (buffer[i] !== 0 || buffer[i + 1] !== 0 || buffer[i + 2] !== 1) {
        i += 1;
        continue;
      }
      // A start code at i, with the next NAL unit's first header byte at i + 3 (its second may not be here yet).
      const codeStart = i > 0 && buffer[i - 1] === 0 && i - 1 >= this.#openNal ? i - 1 : i;
      const nalStart = i + 3;
      const headerBytes = this.codec === 'h264' ? 2 : 3;
      if (end - nalStart < headerBytes) break;
      if (this.#openNal >= 0) this.#closeNal(codeStart);
      i = this.#beginNal(nalStart, out);
      end = this.#length;
    }
    this.#scanned = i;
    return out;
  }

  /** Bytes were lost upstream: the current picture is dropped, and pictures until the next keyframe. */
  discontinuity(): void {
    if (this.#units.length > 0 || this.#openNal >= 0) this.stats.droppedUnits += 1;
    this.#resetPicture(true);
    this.#base += this.#length;
    this.#length = 0;
    this.#scanned = 0;
    this.#openNal = -1;
  }

  #append(data: Buffer): void {
    if (this.#length + data.length > this.#buffer.length) {
      const grown = Buffer.alloc(Math.min(Math.max(this.#buffer.length * 2, this.#length + data.length), this.#maxBytes + 4));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    data.copy(this.#buffer, this.#length);
    this.#length += data.length;
  }

  #closeNal(end: number): void {
    let stop = end;
    while (stop > this.#openNal && this.#buffer[stop - 1] === 0) stop -= 1; // trailing_zero_8bits
    if (stop > this.#openNal) {
      this.#units.push({ start: this.#openNal, end: stop });
      if (isVcl(this.codec, this.#buffer.subarray(this.#openNal, stop))) this.#hasPicture = true;
    }
    this.#openNal = -1;
  }

  /** The NAL unit at buffer index `start` begins, and may end the current picture first; returns its index after compaction. */
  #beginNal(start: number, out: AccessUnit[]): number {
    const header = this.#buffer.subarray(start, start + 3);
    if ((header[0] & 0x80) !== 0) {
      // forbidden_zero_bit set: not video. The picture is lost; so is everything up to the next keyframe.
      this.#corrupt = true;
      this.#openNal = start;
      return start;
    }
    let at = start;
    if (this.#hasPicture && startsAccessUnit(this.codec, header)) at -= this.#emit(out, start - 3);
    if (this.#units.length === 0) this.#unitOffset = this.#base + at - 3;
    this.#openNal = at;
    return at;
  }

  /** Emits the picture whose NAL units are complete, then compacts the buffer to start at `keepFrom` (returned). */
  #emit(out: AccessUnit[], keepFrom: number): number {
    const nalus = this.#units.map(({ start, end }) => Buffer.from(this.#buffer.subarray(start, end)));
    const corrupt = this.#corrupt;
    const timestamp = this.#timestampFor(this.#unitOffset);
    this.#units = [];
    this.#hasPicture = false;
    this.#corrupt = false;
    // Compact: the next picture begins at keepFrom.
    this.#buffer.copy(this.#buffer, 0, keepFrom, this.#length);
    this.#length -= keepFrom;
    this.#base += keepFrom;
    this.#scanned -= keepFrom;
    if (corrupt) {
      this.stats.droppedUnits += 1;
      this.#waitKeyframe = true;
    } else if (this.#waitKeyframe && !isKeyframe(this.codec, nalus)) {
      this.stats.droppedUnits += 1;
    } else {
      this.#waitKeyframe = false;
      out.push({ nalus, ...timestamp });
    }
    return keepFrom;
  }

  /** The end of the stream: the last picture is complete. */
  flush(): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#openNal >= 0) this.#closeNal(this.#length);
    if (this.#hasPicture) this.#emit(out, this.#length);
    return out;
  }

  #timestampFor(offset: number): { pts: number; dts: number } {
    let found: Timestamp | undefined;
    while (this.#timestamps.length > 0 && this.#timestamps[0].offset <= offset) found = this.#timestamps.shift();
    let next: { pts: number; dts: number };
    if (found !== undefined) {
      if (this.#last !== undefined) {
        const delta = (((found.dts - this.#last.dts) % CLOCK_WRAP) + CLOCK_WRAP) % CLOCK_WRAP;
        if (delta > 0 && delta < 90_000) this.#frameTicks = delta;
      }
      next = { pts: found.pts, dts: found.dts };
    } else if (this.#last !== undefined) {
      // No PTS for this picture (legal: ffmpeg packs small pictures into one PES). Its DTS is the next frame
      // interval; its display order would take the slice header's picture order count, so PTS = DTS.
      const dts = (this.#last.dts + this.#frameTicks) % CLOCK_WRAP;
      next = { pts: dts, dts };
    } else next = { pts: 0, dts: 0 };
    this.#last = next;
    return next;
  }

  #resetPicture(waitKeyframe: boolean): void {
    this.#units = [];
    this.#hasPicture = false;
    this.#corrupt = false;
    this.#timestamps = [];
    if (waitKeyframe) this.#waitKeyframe = true;
  }
}
