/**
 * H.264 and H.265 access units → FLV video tags, for the in-process publisher (flv-publisher.ts `writeTag()`).
 * In-process sources (the GB/T 28181 PS demuxer, RTP depayloaders) hand over NAL units with 90 kHz timestamps;
 * this module turns them into what an FLV player decodes:
 * - H.264 as classic FLV (CodecID 7): an AVCDecoderConfigurationRecord sequence header built from the stream's
 *   SPS/PPS, then frames as 4-byte length-prefixed NAL units with the composition time (PTS − DTS).
 * - H.265 as enhanced FLV (ExVideoTagHeader, FourCC `hvc1`), which node-media-server 4.4 and mpegts.js read:
 *   PacketType SequenceStart with an HEVCDecoderConfigurationRecord from VPS/SPS/PPS, then CodedFrames (with a
 *   composition time) or CodedFramesX (composition time 0).
 * Parameter sets and access unit delimiters are taken out of the frames (the sequence header carries them); a new
 * sequence header goes out whenever they change. Nothing is published before the first keyframe that has its
 * parameter sets: a player could not decode it.
 * @see https://veovera.org/docs/enhanced/enhanced-rtmp-v1.pdf (ExVideoTagHeader, FourCC, PacketTypes)
 * @see ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord), §8.3.3.1 (HEVCDecoderConfigurationRecord)
 * @see ITU-T H.264 §7.3.1 / H.265 §7.3.1.2 (NAL unit headers), H.265 §7.3.2.2 and §7.3.3 (SPS, profile_tier_level)
 */
import { encodedTag, FLV_TAG_VIDEO, FlvTagSlab, type FlvTag } from './flv-publisher.js';

export type VideoCodec = 'h264' | 'h265';

export interface AccessUnit {
  /** NAL units of one picture, without start codes or length prefixes. */
  nalus: Buffer[];
  /** Presentation and decoding time in 90 kHz ticks (the MPEG/RTP video clock), 33-bit wrap allowed. */
  pts: number;
  dts: number;
}

const H264_NAL_IDR = 5;
const H264_NAL_SPS = 7;
const H264_NAL_PPS = 8;
const H264_NAL_AUD = 9;
const H265_NAL_IRAP_FIRST = 16; // BLA_W_LP
const H265_NAL_IRAP_LAST = 21; // CRA_NUT
const H265_NAL_VPS = 32;
const H265_NAL_SPS = 33;
const H265_NAL_PPS = 34;
const H265_NAL_AUD = 35;

const FLV_CODEC_AVC = 7;
const FLV_FRAME_KEY = 1;
const FLV_FRAME_INTER = 2;
const AVC_PACKET_SEQUENCE_HEADER = 0;
const AVC_PACKET_NALU = 1;
const EX_HEADER = 0x80;
const EX_PACKET_SEQUENCE_START = 0;
const EX_PACKET_CODED_FRAMES = 1;
const EX_PACKET_CODED_FRAMES_X = 3;
const FOURCC_HVC1 = Buffer.from('hvc1', 'latin1');

/** The MPEG system clock wraps at 2^33 ticks (26.5 hours). */
const CLOCK_WRAP = 2 ** 33;
const TICKS_PER_MS = 90;
/** FLV's composition time is a signed 24-bit millisecond count. */
const MAX_COMPOSITION_MS = 0x7fffff;

export function nalType(codec: VideoCodec, nalu: Buffer): number {
  if (nalu.length === 0) return -1;
  return codec === 'h264' ? nalu[0] & 0x1f : (nalu[0] >> 1) & 0x3f;
}

/** An IDR picture (H.264) or an IRAP picture (H.265: BLA, IDR, CRA): a decoder can start here. */
export function isKeyframe(codec: VideoCodec, nalus: Buffer[]): boolean {
  return nalus.some((nalu) => {
    const type = nalType(codec, nalu);
    return codec === 'h264' ? type === H264_NAL_IDR : type >= H265_NAL_IRAP_FIRST && type <= H265_NAL_IRAP_LAST;
  });
}

/** The NAL units of an Annex-B byte stream (3- or 4-byte start codes); bytes before the first start code are dropped. */
export function splitAnnexB(data: Buffer): Buffer[] {
  const starts: Array<[number, number]> = []; // [start code position, payload position]
  for (let i = 0; i + 2 < data.length; ) {
    if (data[i + 2] > 1) i += 3;
    else if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      starts.push([i > 0 && data[i - 1] === 0 ? i - 1 : i, i + 3]);
      i += 3;
    } else i += 1;
  }
  const nalus: Buffer[] = [];
  for (let k = 0; k < starts.length; k += 1) {
    let end = k + 1 < starts.length ? starts[k + 1][0] : data.length;
    // trailing_zero_8bits belong to no NAL unit (H.264 §B.1.1)
    while (end > starts[k][1] && data[end - 1] === 0) end -= 1;
    if (end > starts[k][1]) nalus.push(data.subarray(starts[k][1], end));
  }
  return nalus;
}

/** The RBSP of a NAL unit: emulation prevention bytes (00 00 03) removed. */
function unescapeRbsp(nalu: Buffer): Buffer {
  const out = Buffer.alloc(nalu.length);
  let length = 0;
  let zeros = 0;
  for (const byte of nalu) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    zeros = byte === 0 ? zeros + 1 : 0;
    out[length++] = byte;
  }
  return out.subarray(0, length);
}

class BitReader {
  #bit = 0;
  constructor(private readonly bytes: Buffer) {}

  bits(count: number): number {
    let value = 0;
    for (let i = 0; i < count; i += 1) {
      const byte = this.#bit >> 3;
      if (byte >= this.bytes.length) throw new RangeError('parameter set ends early');
      value = value * 2 + ((this.bytes[byte] >> (7 - (this.#bit & 7))) & 1);
      this.#bit += 1;
    }
    return value;
  }

  skip(count: number): void {
    this.bits(count);
  }

  /** Exp-Golomb ue(v), bounded at 31 leading zeros. */
  ue(): number {
    let zeros = 0;
    while (this.bits(1) === 0) {
      zeros += 1;
      if (zeros > 31) throw new RangeError('Exp-Golomb code too long');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }
}

/** @see ISO/IEC 14496-15 §5.3.3.1 */
export function avcDecoderConfigurationRecord(sps: Buffer, pps: Buffer): Buffer {
  if (sps.length < 4) throw new RangeError('H.264 SPS too short');
  const head = Buffer.from([1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1]);
  const spsLength = Buffer.alloc(2);
  spsLength.writeUInt16BE(sps.length);
  const ppsHead = Buffer.alloc(3);
  ppsHead[0] = 1;
  ppsHead.writeUInt16BE(pps.length, 1);
  return Buffer.concat([head, spsLength, sps, ppsHead, pps]);
}

export interface HevcSpsInfo {
  maxSubLayers: number;
  temporalIdNested: boolean;
  /** The 12 bytes of general_profile_tier_level: space/tier/idc, 32 compatibility flags, 48 constraint bits, level. */
  generalProfileTierLevel: Buffer;
  chromaFormatIdc: number;
  width: number;
  height: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
}

/** The fields of an H.265 SPS that the decoder configuration record repeats. @see H.265 §7.3.2.2.1, §7.3.3 */
export function parseHevcSps(sps: Buffer): HevcSpsInfo {
  const rbsp = unescapeRbsp(sps);
  const bits = new BitReader(rbsp.subarray(2)); // after the 2-byte NAL unit header
  bits.skip(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = bits.bits(3);
  const temporalIdNested = bits.bits(1) === 1;
  if (rbsp.length < 2 + 1 + 12) throw new RangeError('H.265 SPS too short');
  const generalProfileTierLevel = Buffer.from(rbsp.subarray(3, 15));
  bits.skip(96);
  const subLayerProfile: boolean[] = [];
  const subLayerLevel: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i += 1) {
    subLayerProfile.push(bits.bits(1) === 1);
    subLayerLevel.push(bits.bits(1) === 1);
  }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i += 1) bits.skip(2);
  for (let i = 0; i < maxSubLayersMinus1; i += 1) {
    if (subLayerProfile[i]) bits.skip(88);
    if (subLayerLevel[i]) bits.skip(8);
  }
  bits.ue(); // sps_seq_parameter_set_id
  const chromaFormatIdc = bits.ue();
  if (chromaFormatIdc === 3) bits.skip(1); // separate_colour_plane_flag
  const width = bits.ue();
  const height = bits.ue();
  if (bits.bits(1) === 1) for (let i = 0; i < 4; i += 1) bits.ue(); // conformance window
  const bitDepthLuma = bits.ue() + 8;
  const bitDepthChroma = bits.ue() + 8;
  return {
    maxSubLayers: maxSubLayersMinus1 + 1,
    temporalIdNested,
    generalProfileTierLevel,
    chromaFormatIdc,
    width,
    height,
    bitDepthLuma,
    bitDepthChroma,
  };
}

/** @see ISO/IEC 14496-15 §8.3.3.1 */
export function hevcDecoderConfigurationRecord(vps: Buffer, sps: Buffer, pps: Buffer): Buffer {
  const info = parseHevcSps(sps);
  const head = Buffer.alloc(23);
  head[0] = 1; // configurationVersion
  info.generalProfileTierLevel.copy(head, 1); // profile space/tier/idc, compatibility flags, constraints, level
  head.writeUInt16BE(0xf000, 13); // reserved '1111', min_spatial_segmentation_idc 0
  head[15] = 0xfc; // reserved '111111', parallelismType 0 (unknown)
  head[16] = 0xfc | (info.chromaFormatIdc & 3);
  head[17] = 0xf8 | ((info.bitDepthLuma - 8) & 7);
  head[18] = 0xf8 | ((info.bitDepthChroma - 8) & 7);
  head.writeUInt16BE(0, 19); // avgFrameRate: unspecified
  // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3
  head[21] = ((info.maxSubLayers & 7) << 3) | (info.temporalIdNested ? 4 : 0) | 3;
  head[22] = 3; // numOfArrays
  const arrays = [
    [H265_NAL_VPS, vps],
    [H265_NAL_SPS, sps],
    [H265_NAL_PPS, pps],
  ] as const;
  const parts: Buffer[] = [head];
  for (const [type, nalu] of arrays) {
    const array = Buffer.alloc(5);
    array[0] = 0x80 | type; // array_completeness 1: every parameter set is here, none in-band
    array.writeUInt16BE(1, 1);
    array.writeUInt16BE(nalu.length, 3);
    parts.push(array, nalu);
  }
  return Buffer.concat(parts);
}

/**
 * A whole video tag's room (from `slab`) whose body is a `headBytes` video tag header (left for the caller)
 * then each NAL unit with its 4-byte length: the frame is copied once, into what the viewers get.
 */
function withLengthPrefixes(slab: FlvTagSlab, headBytes: number, nalus: Buffer[]): Buffer {
  let total = headBytes;
  for (const nalu of nalus) total += 4 + nalu.length;
  const tag = slab.alloc(total);
  let offset = BODY + headBytes;
  for (const nalu of nalus) {
    tag.writeUInt32BE(nalu.length, offset);
    nalu.copy(tag, offset + 4);
    offset += 4 + nalu.length;
  }
  return tag;
}

/** Where a tag's body starts in `FlvTagSlab.alloc` room (after the 11-byte tag header). */
const BODY = 11;

function writeSi24(target: Buffer, offset: number, value: number): void {
  target.writeIntBE(Math.max(-MAX_COMPOSITION_MS - 1, Math.min(MAX_COMPOSITION_MS, value)), offset, 3);
}

/** (a − b) on the 33-bit clock, as the shortest signed distance. */
function clockDelta(a: number, b: number): number {
  const delta = (((a - b) % CLOCK_WRAP) + CLOCK_WRAP) % CLOCK_WRAP;
  return delta >= CLOCK_WRAP / 2 ? delta - CLOCK_WRAP : delta;
}

/** One video stream's muxer: push access units in decoding order, get the FLV tags to publish. */
export class FlvVideoMuxer {
  readonly codec: VideoCodec;
  #vps?: Buffer;
  #sps?: Buffer;
  #pps?: Buffer;
  /** The parameter sets the last sequence header carried (hex), so a change sends a new one. */
  #published?: string;
  #lastDts?: number;
  /** 90 kHz ticks since the first access unit, never decreasing (FLV players expect monotonic DTS). */
  #elapsedTicks = 0;
  /** This muxer's own tag slabs (see FlvTagSlab: a shared one let one long GOP keep every channel's tags). */
  readonly #slab = new FlvTagSlab();

  constructor(codec: VideoCodec) {
    this.codec = codec;
  }

  /** The tags for one access unit: a sequence header first when the parameter sets are new, then the frame. */
  push(unit: AccessUnit): FlvTag[] {
    const frame: Buffer[] = [];
    for (const nalu of unit.nalus) {
      if (nalu.length === 0) continue;
      const type = nalType(this.codec, nalu);
      if (this.codec === 'h264') {
        if (type === H264_NAL_SPS) this.#sps = Buffer.from(nalu);
        else if (type === H264_NAL_PPS) this.#pps = Buffer.from(nalu);
        else if (type !== H264_NAL_AUD) frame.push(nalu);
      } else if (type === H265_NAL_VPS) this.#vps = Buffer.from(nalu);
      else if (type === H265_NAL_SPS) this.#sps = Buffer.from(nalu);
      else if (type === H265_NAL_PPS) this.#pps = Buffer.from(nalu);
      else if (type !== H265_NAL_AUD) frame.push(nalu);
    }
    const timestamp = this.#timestamp(unit.dts);
    if (frame.length === 0) return [];
    const keyframe = isKeyframe(this.codec, frame);
    const tags: FlvTag[] = [];
    // Parameter sets matter at keyframes only (their key is a few hex strings: not built for every frame).
    const parameterSets = keyframe ? this.#parameterSetsKey() : undefined;
    if (keyframe && parameterSets !== undefined && parameterSets !== this.#published) {
      const header = this.#sequenceHeader();
      if (header === undefined) return [];
      tags.push({ type: FLV_TAG_VIDEO, timestamp, data: header });
      this.#published = parameterSets;
    }
    if (this.#published === undefined) return tags;
    const composition = Math.round(clockDelta(unit.pts, unit.dts) / TICKS_PER_MS);
    tags.push(encodedTag(FLV_TAG_VIDEO, timestamp, this.#frameTag(frame, keyframe, composition)));
    return tags;
  }

  #timestamp(dts: number): number {
    if (this.#lastDts !== undefined) this.#elapsedTicks += Math.max(0, clockDelta(dts, this.#lastDts));
    this.#lastDts = dts;
    return Math.round(this.#elapsedTicks / TICKS_PER_MS) >>> 0;
  }

  #parameterSetsKey(): string | undefined {
    if (this.#sps === undefined || this.#pps === undefined) return undefined;
    if (this.codec === 'h265' && this.#vps === undefined) return undefined;
    return [this.#vps?.toString('hex') ?? '', this.#sps.toString('hex'), this.#pps.toString('hex')].join('/');
  }

  /** undefined when the SPS cannot be read (a broken stream waits for a better one). */
  #sequenceHeader(): Buffer | undefined {
    const sps = this.#sps as Buffer;
    const pps = this.#pps as Buffer;
    try {
      if (this.codec === 'h264') {
        const record = avcDecoderConfigurationRecord(sps, pps);
        return Buffer.concat([Buffer.from([(FLV_FRAME_KEY << 4) | FLV_CODEC_AVC, AVC_PACKET_SEQUENCE_HEADER, 0, 0, 0]), record]);
      }
      const record = hevcDecoderConfigurationRecord(this.#vps as Buffer, sps, pps);
      return Buffer.concat([Buffer.from([EX_HEADER | (FLV_FRAME_KEY << 4) | EX_PACKET_SEQUENCE_START]), FOURCC_HVC1, record]);
    } catch (error) {
      if (error instanceof RangeError) return undefined;
      throw error;
    }
  }

  /** The whole tag's room (from this muxer's slab), its body (video tag header, NAL units) written. */
  #frameTag(nalus: Buffer[], keyframe: boolean, compositionMs: number): Buffer {
    const frameType = keyframe ? FLV_FRAME_KEY : FLV_FRAME_INTER;
    if (this.codec === 'h264') {
      const tag = withLengthPrefixes(this.#slab, 5, nalus);
      tag[BODY] = (frameType << 4) | FLV_CODEC_AVC;
      tag[BODY + 1] = AVC_PACKET_NALU;
      writeSi24(tag, BODY + 2, compositionMs);
      return tag;
    }
    const tag = withLengthPrefixes(this.#slab, compositionMs === 0 ? 5 : 8, nalus);
    tag[BODY] = EX_HEADER | (frameType << 4) | (compositionMs === 0 ? EX_PACKET_CODED_FRAMES_X : EX_PACKET_CODED_FRAMES);
    FOURCC_HVC1.copy(tag, BODY + 1);
    if (compositionMs !== 0) writeSi24(tag, BODY + 5, compositionMs);
    return tag;
  }
}
