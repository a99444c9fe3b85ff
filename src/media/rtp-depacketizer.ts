/**
 * RTP payloads → access units (H.264, H.265) and AAC frames, for the in-process RTSP relay. Video NAL units
 * of one RTP timestamp make one access unit, complete at the marker bit (or when the next timestamp starts);
 * a lost packet (sequence gap) drops the unit it broke rather than publish a damaged picture. Every
 * reassembly is bounded by MAX_FLV_TAG_BYTES, so a source that never ends a fragment cannot grow memory.
 * Parameter sets announced in the SDP (`sprop-*`) go in front of each keyframe that lacks them in-band.
 * @see https://www.rfc-editor.org/rfc/rfc6184 (H.264: 5.6 single NAL, 5.7.1 STAP-A, 5.8 FU-A)
 * @see https://www.rfc-editor.org/rfc/rfc7798 (H.265: 4.4.1 single NAL, 4.4.2 AP, 4.4.3 FU)
 * @see https://www.rfc-editor.org/rfc/rfc3640 (AAC: 3.2 AU headers, mode AAC-hbr)
 */
import { createRequire } from 'node:module';
import { FLV_TAG_AUDIO, MAX_FLV_TAG_BYTES, type FlvTag } from './flv-publisher.js';
import { isKeyframe, nalType, type AccessUnit, type VideoCodec } from './flv-mux.js';

const nmsRequire = createRequire(import.meta.url);
/** NMS's RTP header parser: bounds-checked (CSRC, extension, padding), returns null on a bad packet. */
const RtpParser = nmsRequire('node-media-server/src/protocol/rtp.js') as {
  parse(buffer: Buffer): { marker: boolean; payloadType: number; sequenceNumber: number; timestamp: number; payload: Buffer } | null;
};

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  payload: Buffer;
}

export function parseRtp(packet: Buffer): RtpPacket | null {
  return RtpParser.parse(packet);
}

const H264_STAP_A = 24;
const H264_FU_A = 28;
const H265_AP = 48;
const H265_FU = 49;
const H264_SPS = 7;
const H265_VPS = 32;
const H265_SPS = 33;
/** A camera's parameter sets are tens of bytes; an SDP announcing kilobytes of them is not believed. */
const MAX_PARAMETER_SET_BYTES = 1024;

/** Unwraps a 32-bit RTP clock into a monotonic count (backward steps are held, not followed). */
class RtpClock {
  #last: number | null = null;
  #elapsed = 0;

  ticks(timestamp: number): number {
    if (this.#last !== null) {
      const delta = (timestamp - this.#last) >>> 0;
      if (delta < 0x80000000) this.#elapsed += delta;
      else return this.#elapsed;
    }
    this.#last = timestamp;
    return this.#elapsed;
  }
}

/** The SDP's out-of-band parameter sets, base64 in `sprop-parameter-sets` (H.264) or `sprop-vps/sps/pps` (H.265). */
export function spropParameterSets(codec: VideoCodec, fmtp: Record<string, string>): Buffer[] {
  const encoded = codec === 'h264'
    ? (fmtp['sprop-parameter-sets'] ?? '').split(',')
    : [fmtp['sprop-vps'], fmtp['sprop-sps'], fmtp['sprop-pps']];
  return encoded
    .filter((value): value is string => typeof value === 'string' && value.length > 0 && value.length <= (MAX_PARAMETER_SET_BYTES * 4) / 3 + 4)
    .map((value) => Buffer.from(value, 'base64'))
    .filter((nalu) => nalu.length >= 2);
}

/** A unit's reassembly buffer starts this small (a 650 kbit/s camera's frames are a few KB) and grows on demand. */
const INITIAL_UNIT_BYTES = 16 * 1024;
/** A buffer grown past this (a 4K keyframe) is given back after its unit rather than kept per track. */
const KEPT_UNIT_BYTES = 1024 * 1024;

/**
 * One video track: RTP packets in, access units (90 kHz timestamps, decoding order = arrival order) out.
 * The unit being assembled lives in one reused buffer (NAL units back to back, FU fragments joined in place):
 * no allocation per packet or per NAL unit. `pushRtp` parses the RTP header itself (no object per packet) and
 * hands each unit to a callback as views of that buffer; `push` returns copies, for callers that keep units.
 */
export class VideoDepacketizer {
  #buffer = Buffer.allocUnsafe(INITIAL_UNIT_BYTES);
  #length = 0;
  /** Start and end (in #buffer) of each complete NAL unit of the current unit, flat: [s0, e0, s1, e1, ...]. */
  #bounds: number[] = [];
  /** Sum of the complete NAL units' sizes plus their 4-byte FLV length prefixes. */
  #bytes = 0;
  #timestamp: number | null = null;
  #broken = false;
  /** Where the open FU fragment starts in #buffer (its reconstructed NAL header first); -1 when none is open. */
  #fragment = -1;
  #lastSeq: number | null = null;
  readonly #clock = new RtpClock();
  readonly #scale: number;

  constructor(
    readonly codec: VideoCodec,
    clockRate: number,
    private readonly parameterSets: Buffer[] = [],
  ) {
    this.#scale = 90_000 / clockRate;
  }

  /** The access units this packet completed, each NAL unit its own copy (kept by the caller as long as it likes). */
  push(packet: RtpPacket): AccessUnit[] {
    const out: AccessUnit[] = [];
    this.#packet(packet.sequenceNumber, packet.timestamp, packet.marker, packet.payload, 0, packet.payload.length, (unit) => {
      out.push({ nalus: unit.nalus.map((nalu) => Buffer.from(nalu)), pts: unit.pts, dts: unit.dts });
    });
    return out;
  }

  /**
   * A raw RTP packet (RFC 3550 §5.1, checked as NMS's rtp.js does: version, CSRCs, extension, padding); one of
   * another payload type is ignored. `onUnit` gets each unit it completes, synchronously: its NAL units are
   * views of a buffer reused for the next unit, valid during the call only (flv-mux.ts copies them into the tag).
   */
  pushRtp(raw: Buffer, payloadType: number, onUnit: (unit: AccessUnit) => void): void {
    const length = raw.length;
    if (length < 12) return;
    const first = raw[0];
    if (first >> 6 !== 2 || (raw[1] & 0x7f) !== payloadType) return;
    let start = 12 + (first & 0x0f) * 4;
    if (length < start) return;
    if ((first & 0x10) !== 0) {
      if (length < start + 4) return;
      start += 4 + raw.readUInt16BE(start + 2) * 4;
      if (length < start) return;
    }
    let end = length;
    if ((first & 0x20) !== 0) {
      const padding = raw[length - 1];
      if (padding > 0 && padding <= length - start) end = length - padding;
    }
    this.#packet(raw.readUInt16BE(2), raw.readUInt32BE(4), (raw[1] & 0x80) !== 0, raw, start, end, onUnit);
  }

  #packet(sequence: number, timestamp: number, marker: boolean, data: Buffer, start: number, end: number, onUnit: (unit: AccessUnit) => void): void {
    if (this.#lastSeq !== null && ((sequence - this.#lastSeq) & 0xffff) !== 1) {
      // A gap: the unit being assembled (and any fragment) is damaged.
      this.#broken = true;
      this.#dropFragment();
    }
    this.#lastSeq = sequence;
    if (this.#timestamp !== null && timestamp !== this.#timestamp) this.#finish(onUnit);
    this.#timestamp = timestamp;
    // A broken unit is dropped at its end whatever else it gets: its bytes are not even gathered.
    if (!this.#broken) this.#payload(data, start, end);
    if (marker) this.#finish(onUnit);
  }

  #dropFragment(): void {
    if (this.#fragment < 0) return;
    this.#length = this.#fragment;
    this.#fragment = -1;
  }

  /** Room for `bytes` more in #buffer; false (the unit broken) past MAX_FLV_TAG_BYTES. */
  #reserve(bytes: number): boolean {
    const needed = this.#length + bytes;
    if (needed > MAX_FLV_TAG_BYTES) {
      this.#broken = true;
      this.#dropFragment();
      return false;
    }
    if (needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(this.#buffer.length * 2, needed), MAX_FLV_TAG_BYTES));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    return true;
  }

  /** A complete NAL unit, `data[start..end)`, copied into the unit. */
  #add(data: Buffer, start: number, end: number): void {
    const size = end - start;
    if (size === 0) return;
    this.#bytes += size + 4;
    if (this.#bytes > MAX_FLV_TAG_BYTES) {
      this.#broken = true;
      return;
    }
    if (!this.#reserve(size)) return;
    data.copy(this.#buffer, this.#length, start, end);
    this.#bounds.push(this.#length, this.#length + size);
    this.#length += size;
  }

  #payload(data: Buffer, start: number, end: number): void {
    const h264 = this.codec === 'h264';
    const headerBytes = h264 ? 1 : 2;
    if (end - start < headerBytes + 1) return;
    const type = h264 ? data[start] & 0x1f : (data[start] >> 1) & 0x3f;
    if ((h264 && type === H264_STAP_A) || (!h264 && type === H265_AP)) {
      for (let offset = start + headerBytes; offset + 2 <= end; ) {
        const size = data.readUInt16BE(offset);
        offset += 2;
        if (size === 0 || offset + size > end) break;
        this.#add(data, offset, offset + size);
        offset += size;
      }
      return;
    }
    if ((h264 && type === H264_FU_A) || (!h264 && type === H265_FU)) {
      const fuHeader = data[start + headerBytes];
      const bodyStart = start + headerBytes + 1;
      if ((fuHeader & 0x80) !== 0) {
        this.#dropFragment(); // a start while one is open: the open one lost its end
        if (!this.#reserve(headerBytes)) return;
        this.#fragment = this.#length;
        if (h264) this.#buffer[this.#length] = (data[start] & 0xe0) | (fuHeader & 0x1f);
        else {
          this.#buffer[this.#length] = (data[start] & 0x81) | ((fuHeader & 0x3f) << 1);
          this.#buffer[this.#length + 1] = data[start + 1];
        }
        this.#length += headerBytes;
      }
      if (this.#fragment < 0) return; // a fragment whose start was lost
      const size = end - bodyStart;
      if (this.#length - this.#fragment + size > MAX_FLV_TAG_BYTES || !this.#reserve(size)) {
        this.#broken = true;
        this.#dropFragment();
        return;
      }
      data.copy(this.#buffer, this.#length, bodyStart, end);
      this.#length += size;
      if ((fuHeader & 0x40) !== 0) {
        const fragment = this.#fragment;
        this.#fragment = -1;
        const nalBytes = this.#length - fragment;
        this.#bytes += nalBytes + 4;
        if (this.#bytes > MAX_FLV_TAG_BYTES) {
          this.#broken = true;
          this.#length = fragment;
          return;
        }
        this.#bounds.push(fragment, this.#length);
      }
      return;
    }
    if ((h264 && type >= 1 && type <= 23) || (!h264 && type < H265_AP)) this.#add(data, start, end);
  }

  #finish(onUnit: (unit: AccessUnit) => void): void {
    const bounds = this.#bounds;
    const broken = this.#broken || this.#fragment >= 0;
    this.#bytes = 0;
    this.#broken = false;
    this.#fragment = -1;
    if (!broken && bounds.length > 0 && this.#timestamp !== null) {
      const nalus: Buffer[] = [];
      for (let i = 0; i < bounds.length; i += 2) nalus.push(this.#buffer.subarray(bounds[i], bounds[i + 1]));
      const ticks = Math.round(this.#clock.ticks(this.#timestamp) * this.#scale) % 2 ** 33;
      const withSets = isKeyframe(this.codec, nalus) && !this.#hasSps(nalus) ? [...this.parameterSets, ...nalus] : nalus;
      try {
        onUnit({ nalus: withSets, pts: ticks, dts: ticks });
      } finally {
        this.#reset();
      }
      return;
    }
    this.#reset();
  }

  #reset(): void {
    this.#bounds.length = 0;
    this.#length = 0;
    if (this.#buffer.length > KEPT_UNIT_BYTES) this.#buffer = Buffer.allocUnsafe(INITIAL_UNIT_BYTES);
  }

  #hasSps(nalus: Buffer[]): boolean {
    return nalus.some((nalu) => {
      const type = nalType(this.codec, nalu);
      return this.codec === 'h264' ? type === H264_SPS : type === H265_SPS || type === H265_VPS;
    });
  }
}

/**
 * One AAC track (RFC 3640 AAC-hbr: 13-bit sizes, 3-bit indices) → FLV audio tags, the first one the
 * AudioSpecificConfig from the SDP's `config`. Timestamps in ms on the track's own clock from zero.
 */
export class AacDepacketizer {
  readonly #clock = new RtpClock();
  #headerSent = false;
  readonly #config: Buffer | null;

  constructor(
    private readonly clockRate: number,
    fmtp: Record<string, string>,
  ) {
    const hex = fmtp.config ?? '';
    this.#config = /^[0-9a-f]{4,64}$/i.test(hex) && Number(fmtp.sizelength ?? 13) === 13 ? Buffer.from(hex, 'hex') : null;
  }

  push(packet: RtpPacket): FlvTag[] {
    if (!this.#config) return [];
    const payload = packet.payload;
    if (payload.length < 2) return [];
    const headerBits = payload.readUInt16BE(0);
    const headers = headerBits >> 4; // 16 bits per AU header
    const headerBytes = Math.ceil(headerBits / 8);
    if (headers === 0 || 2 + headerBytes > payload.length) return [];
    const ticks = this.#clock.ticks(packet.timestamp);
    const tags: FlvTag[] = [];
    if (!this.#headerSent) {
      tags.push({ type: FLV_TAG_AUDIO, timestamp: 0, data: Buffer.concat([Buffer.from([0xaf, 0]), this.#config]) });
      this.#headerSent = true;
    }
    let offset = 2 + headerBytes;
    for (let i = 0; i < headers; i += 1) {
      const size = payload.readUInt16BE(2 + i * 2) >> 3;
      if (size === 0 || offset + size > payload.length) break;
      const timestamp = Math.round(((ticks + i * 1024) * 1000) / this.clockRate) >>> 0;
      tags.push({ type: FLV_TAG_AUDIO, timestamp, data: Buffer.concat([Buffer.from([0xaf, 1]), payload.subarray(offset, offset + size)]) });
      offset += size;
    }
    return tags;
  }
}
