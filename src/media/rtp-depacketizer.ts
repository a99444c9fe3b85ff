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

/** One video track: RTP packets in, access units (90 kHz timestamps, decoding order = arrival order) out. */
export class VideoDepacketizer {
  #nalus: Buffer[] = [];
  #bytes = 0;
  #timestamp: number | null = null;
  #broken = false;
  #fragment: Buffer[] | null = null;
  #fragmentBytes = 0;
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

  push(packet: RtpPacket): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#lastSeq !== null && ((packet.sequenceNumber - this.#lastSeq) & 0xffff) !== 1) {
      // A gap: the unit being assembled (and any fragment) is damaged.
      this.#broken = true;
      this.#fragment = null;
    }
    this.#lastSeq = packet.sequenceNumber;
    if (this.#timestamp !== null && packet.timestamp !== this.#timestamp) this.#finish(out);
    this.#timestamp = packet.timestamp;
    this.#payload(packet.payload);
    if (packet.marker) this.#finish(out);
    return out;
  }

  #add(nalu: Buffer): void {
    if (nalu.length === 0) return;
    this.#bytes += nalu.length + 4;
    if (this.#bytes > MAX_FLV_TAG_BYTES) {
      this.#broken = true;
      return;
    }
    this.#nalus.push(nalu);
  }

  #payload(payload: Buffer): void {
    const h264 = this.codec === 'h264';
    const headerBytes = h264 ? 1 : 2;
    if (payload.length < headerBytes + 1) return;
    const type = h264 ? payload[0] & 0x1f : (payload[0] >> 1) & 0x3f;
    if ((h264 && type === H264_STAP_A) || (!h264 && type === H265_AP)) {
      for (let offset = headerBytes; offset + 2 <= payload.length; ) {
        const size = payload.readUInt16BE(offset);
        offset += 2;
        if (size === 0 || offset + size > payload.length) break;
        this.#add(Buffer.from(payload.subarray(offset, offset + size)));
        offset += size;
      }
      return;
    }
    if ((h264 && type === H264_FU_A) || (!h264 && type === H265_FU)) {
      const fuHeader = payload[headerBytes];
      const start = (fuHeader & 0x80) !== 0;
      const end = (fuHeader & 0x40) !== 0;
      const body = payload.subarray(headerBytes + 1);
      if (start) {
        const header = h264
          ? Buffer.from([(payload[0] & 0xe0) | (fuHeader & 0x1f)])
          : Buffer.from([(payload[0] & 0x81) | ((fuHeader & 0x3f) << 1), payload[1]]);
        this.#fragment = [header];
        this.#fragmentBytes = header.length;
      }
      if (!this.#fragment) return; // a fragment whose start was lost
      this.#fragmentBytes += body.length;
      if (this.#fragmentBytes > MAX_FLV_TAG_BYTES) {
        this.#fragment = null;
        this.#broken = true;
        return;
      }
      // A view: the packet's buffer is the caller's to give (a relay's read), and the concat below copies once.
      this.#fragment.push(body);
      if (end) {
        this.#add(Buffer.concat(this.#fragment));
        this.#fragment = null;
      }
      return;
    }
    if ((h264 && type >= 1 && type <= 23) || (!h264 && type < H265_AP)) this.#add(Buffer.from(payload));
  }

  #finish(out: AccessUnit[]): void {
    const nalus = this.#nalus;
    const broken = this.#broken || this.#fragment !== null;
    this.#nalus = [];
    this.#bytes = 0;
    this.#broken = false;
    this.#fragment = null;
    if (broken || nalus.length === 0 || this.#timestamp === null) return;
    const ticks = Math.round(this.#clock.ticks(this.#timestamp) * this.#scale) % 2 ** 33;
    const withSets = isKeyframe(this.codec, nalus) && !this.#hasSps(nalus) ? [...this.parameterSets, ...nalus] : nalus;
    out.push({ nalus: withSets, pts: ticks, dts: ticks });
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
