/**
 * MPEG-2 Program Stream (what GB/T 28181 devices send over RTP) → H.264/H.265 access units.
 * Reads pack headers (MPEG-2 with stuffing, and MPEG-1 as ffmpeg's `-f mpeg` writes), system headers, the program
 * stream map (stream types 0x1b H.264, 0x24 H.265; audio and the rest are dropped), and PES packets with PTS/DTS.
 * A PES payload streams straight into the access unit assembler, so a frame split over many PES packets and many RTP
 * packets is never buffered twice. Without a PSM (ffmpeg writes none) the codec is recognised from the first
 * parameter set in the stream.
 * Lengths are never trusted beyond their 16 bits: everything buffered is bounded, anything that is not a PS start
 * code where one must be is garbage, and the demuxer then resynchronises at the next pack header and waits for a
 * keyframe. A PES length that swallows the next packs is caught by the assembler (PS start codes are not NAL units).
 * @see ISO/IEC 13818-1 §2.5.3 (pack, system header), §2.5.4 (program stream map), §2.4.3.6 (PES packet)
 * @see ISO/IEC 11172-1 §2.4.3 (MPEG-1 pack and packet headers)
 * @see GB/T 28181-2016 Annex C (PS encapsulation of video over RTP)
 */
import { AccessUnitAssembler } from './access-unit-assembler.js';
import type { AccessUnit, VideoCodec } from './flv-mux.js';

export interface VideoAccessUnit extends AccessUnit {
  codec: VideoCodec;
}

export interface PsDemuxStats {
  /** Times garbage made the demuxer search for the next pack header. */
  resyncs: number;
  /** Bytes skipped while searching. */
  skippedBytes: number;
  /** Access units dropped (corrupt, too large, or waiting for a keyframe after a loss). */
  droppedUnits: number;
  /** PES packets of streams that are not the video being published (audio, private data, padding). */
  ignoredPackets: number;
}

const START_PACK = 0xba;
const START_SYSTEM_HEADER = 0xbb;
const START_PSM = 0xbc;
const START_END = 0xb9;
const STREAM_PADDING = 0xbe;
const STREAM_PRIVATE_2 = 0xbf;
const STREAM_ECM = 0xf0;
const STREAM_EMM = 0xf1;
const STREAM_DSMCC = 0xf2;
const STREAM_H222_E = 0xf8;
const STREAM_DIRECTORY = 0xff;
const STREAM_TYPE_H264 = 0x1b;
const STREAM_TYPE_H265 = 0x24;
/** PES packets whose payload follows the 6-byte header directly (ISO/IEC 13818-1 Table 2-22 conditions). */
const NO_PES_HEADER = new Set([START_PSM, STREAM_PADDING, STREAM_PRIVATE_2, STREAM_ECM, STREAM_EMM, STREAM_DSMCC, STREAM_H222_E, STREAM_DIRECTORY]);
/** The longest PES header: MPEG-2 9 + 255, MPEG-1 6 + 16 stuffing + 2 STD + 10 PTS/DTS. */
const MAX_PES_HEADER_BYTES = 9 + 255;

function isVideoStream(id: number): boolean {
  return id >= 0xe0 && id <= 0xef;
}

/** A 33-bit timestamp in the 5-byte PTS/DTS layout (marker bits ignored). */
function readTimestamp(bytes: Buffer, at: number): number {
  return (
    ((bytes[at] >> 1) & 0x07) * 2 ** 30 +
    bytes[at + 1] * 2 ** 22 +
    (bytes[at + 2] >> 1) * 2 ** 15 +
    bytes[at + 3] * 2 ** 7 +
    (bytes[at + 4] >> 1)
  );
}

/** The codec of the first parameter set in an Annex-B payload, if it carries one. */
function sniffCodec(payload: Buffer): VideoCodec | undefined {
  for (let i = 0; i + 4 < payload.length; i += 1) {
    if (payload[i] !== 0 || payload[i + 1] !== 0 || payload[i + 2] !== 1) continue;
    const a = payload[i + 3];
    const b = payload[i + 4];
    if ((a === 0x40 || a === 0x42) && b === 0x01) return 'h265'; // VPS / SPS, layer 0, TemporalId 0
    if ((a & 0x9f) === 0x07 && (a & 0x60) !== 0) return 'h264'; // SPS with nal_ref_idc ≠ 0
  }
  return undefined;
}

interface PesHeader {
  headerBytes: number;
  pts?: number;
  dts?: number;
}

/** The PES header after the 6-byte prefix; undefined when malformed. `bytes` holds at least what it needs. */
function parsePesHeader(bytes: Buffer, packetBytes: number): PesHeader | 'short' | undefined {
  if (bytes.length < 7) return 'short';
  if ((bytes[6] & 0xc0) === 0x80) {
    if (bytes.length < 9) return 'short';
    const headerBytes = 9 + bytes[8];
    if (headerBytes > packetBytes) return undefined;
    if (bytes.length < headerBytes) return 'short';
    const flags = bytes[7] >> 6;
    if (flags === 1) return undefined;
    if (flags >= 2 && headerBytes < 14) return undefined;
    if (flags === 3 && headerBytes < 19) return undefined;
    const pts = flags >= 2 ? readTimestamp(bytes, 9) : undefined;
    const dts = flags === 3 ? readTimestamp(bytes, 14) : pts;
    return { headerBytes, pts, dts };
  }
  // MPEG-1: stuffing, optional STD buffer, then PTS / PTS+DTS / 0x0F.
  let at = 6;
  for (let stuffing = 0; at < bytes.length && bytes[at] === 0xff; stuffing += 1, at += 1) if (stuffing >= 16) return undefined;
  if (at >= bytes.length) return at >= packetBytes ? undefined : 'short';
  if ((bytes[at] & 0xc0) === 0x40) at += 2;
  if (at >= bytes.length) return at >= packetBytes ? undefined : 'short';
  const marker = bytes[at] & 0xf0;
  const need = marker === 0x20 ? 5 : marker === 0x30 ? 10 : 1;
  if (marker !== 0x20 && marker !== 0x30 && bytes[at] !== 0x0f) return undefined;
  if (at + need > packetBytes) return undefined;
  if (at + need > bytes.length) return 'short';
  const pts = marker === 0x20 || marker === 0x30 ? readTimestamp(bytes, at) : undefined;
  const dts = marker === 0x30 ? readTimestamp(bytes, at + 5) : pts;
  return { headerBytes: at + need, pts, dts };
}

/** The elementary stream id → codec entries of a program stream map. */
function parsePsm(packet: Buffer): Map<number, VideoCodec | 'other'> {
  const streams = new Map<number, VideoCodec | 'other'>();
  if (packet.length < 16) return streams;
  const infoLength = packet.readUInt16BE(8);
  let at = 10 + infoLength;
  if (at + 2 > packet.length) return streams;
  const mapLength = packet.readUInt16BE(at);
  at += 2;
  const end = Math.min(at + mapLength, packet.length - 4); // CRC_32 last
  while (at + 4 <= end) {
    const type = packet[at];
    const id = packet[at + 1];
    streams.set(id, type === STREAM_TYPE_H264 ? 'h264' : type === STREAM_TYPE_H265 ? 'h265' : 'other');
    at += 4 + packet.readUInt16BE(at + 2);
  }
  return streams;
}

type State =
  | { kind: 'unit' }
  /** Inside a PES payload: `remaining` bytes go to the video assembler or are skipped. */
  | { kind: 'payload'; remaining: number; video: boolean };

export class PsDemuxer {
  readonly stats: PsDemuxStats = { resyncs: 0, skippedBytes: 0, droppedUnits: 0, ignoredPackets: 0 };
  readonly #maxAccessUnitBytes: number | undefined;
  /** Bytes of a unit header not complete yet (never more than a PSM/system header: 6 + 65535). */
  #pending: Buffer = Buffer.alloc(0);
  #state: State = { kind: 'unit' };
  #synced = false;
  #streamMap = new Map<number, VideoCodec | 'other'>();
  /** The video stream being published: the first one seen. */
  #videoId?: number;
  #assembler?: AccessUnitAssembler;

  constructor(options: { maxAccessUnitBytes?: number } = {}) {
    this.#maxAccessUnitBytes = options.maxAccessUnitBytes;
  }

  get codec(): VideoCodec | undefined {
    return this.#assembler?.codec;
  }

  /** PS bytes in any chunking; returns the access units they completed. */
  push(chunk: Buffer): VideoAccessUnit[] {
    const out: VideoAccessUnit[] = [];
    let data = chunk;
    while (data.length > 0) {
      if (this.#state.kind === 'payload') {
        const take = Math.min(this.#state.remaining, data.length);
        if (this.#state.video) this.#video(data.subarray(0, take), out);
        this.#state.remaining -= take;
        if (this.#state.remaining === 0) this.#state = { kind: 'unit' };
        data = data.subarray(take);
        continue;
      }
      this.#pending = this.#pending.length === 0 ? data : Buffer.concat([this.#pending, data]);
      data = this.#units();
      this.#pending = Buffer.alloc(0);
      if (this.#state.kind === 'unit') {
        this.#pending = Buffer.from(data); // an incomplete unit header; the caller's chunk may be reused
        break;
      }
    }
    return out;
  }

  /** Bytes were lost before the next chunk (an RTP gap): resynchronise at a pack header, wait for a keyframe. */
  discontinuity(): void {
    this.#pending = Buffer.alloc(0);
    this.#state = { kind: 'unit' };
    this.#synced = false;
    this.#assembler?.discontinuity();
  }

  /** The end of the stream: the last access unit is complete. */
  flush(): VideoAccessUnit[] {
    const assembler = this.#assembler;
    return assembler ? assembler.flush().map((unit) => ({ codec: assembler.codec, ...unit })) : [];
  }

  /**
   * Parses whole units from #pending; returns the bytes after the last one: the start of an incomplete unit
   * (state 'unit') or payload bytes (state 'payload').
   */
  #units(): Buffer {
    let buffer = this.#pending;
    for (;;) {
      if (buffer.length < 4) return buffer;
      if (!this.#synced || buffer[0] !== 0 || buffer[1] !== 0 || buffer[2] !== 1 || buffer[3] < START_END) {
        // Garbage where a unit must start (or not started yet): on to the next pack header.
        buffer = this.#resync(buffer);
        continue;
      }
      const id = buffer[3];
      let headerBytes: number;
      let packetBytes: number;
      let video = false;
      if (id === START_END) {
        headerBytes = packetBytes = 4;
      } else if (id === START_PACK) {
        if (buffer.length < 14) return buffer;
        if ((buffer[4] & 0xc0) === 0x40) packetBytes = 14 + (buffer[13] & 0x07);
        else if ((buffer[4] & 0xf0) === 0x20) packetBytes = 12;
        else {
          buffer = this.#resync(buffer.subarray(4));
          continue;
        }
        if (buffer.length < packetBytes) return buffer;
        headerBytes = packetBytes;
      } else {
        if (buffer.length < 6) return buffer;
        packetBytes = 6 + buffer.readUInt16BE(4);
        if (id === START_PSM) {
          if (buffer.length < packetBytes) return buffer;
          for (const [stream, codec] of parsePsm(buffer.subarray(0, packetBytes))) this.#streamMap.set(stream, codec);
          headerBytes = packetBytes;
        } else if (id === START_SYSTEM_HEADER) {
          headerBytes = 6;
        } else if (NO_PES_HEADER.has(id)) {
          this.stats.ignoredPackets += 1;
          headerBytes = 6;
        } else {
          const header = parsePesHeader(buffer.subarray(0, Math.min(packetBytes, 6 + MAX_PES_HEADER_BYTES)), packetBytes);
          if (header === 'short') return buffer;
          if (header === undefined) {
            buffer = this.#resync(buffer.subarray(4)); // a malformed header: its payload is lost
            continue;
          }
          headerBytes = header.headerBytes;
          video = isVideoStream(id) && this.#selectVideo(id, buffer.subarray(headerBytes, packetBytes));
          if (video) this.#assembler?.startPes(header.pts, header.dts);
          else this.stats.ignoredPackets += 1;
        }
      }
      buffer = buffer.subarray(headerBytes);
      if (packetBytes > headerBytes) {
        this.#state = { kind: 'payload', remaining: packetBytes - headerBytes, video };
        return buffer;
      }
    }
  }

  /** Is stream `id` the video published (the first video stream whose codec is known)? */
  #selectVideo(id: number, payloadStart: Buffer): boolean {
    if (this.#videoId !== undefined) return id === this.#videoId;
    const mapped = this.#streamMap.get(id);
    const codec = mapped === undefined ? sniffCodec(payloadStart) : mapped === 'other' ? undefined : mapped;
    if (codec === undefined) return false;
    this.#videoId = id;
    this.#assembler = new AccessUnitAssembler(codec, { maxAccessUnitBytes: this.#maxAccessUnitBytes });
    return true;
  }

  #video(payload: Buffer, out: VideoAccessUnit[]): void {
    const assembler = this.#assembler;
    if (assembler === undefined) return;
    for (const unit of assembler.push(payload)) out.push({ codec: assembler.codec, ...unit });
    this.stats.droppedUnits = assembler.stats.droppedUnits;
  }

  /** Skips to the next pack header (keeping a partial start code at the end); the video waits for a keyframe. */
  #resync(buffer: Buffer): Buffer {
    if (this.#synced) {
      this.stats.resyncs += 1;
      this.#assembler?.discontinuity();
    }
    this.#synced = false;
    const at = buffer.indexOf(PACK_START_CODE);
    if (at >= 0) {
      this.stats.skippedBytes += at;
      this.#synced = true;
      return buffer.subarray(at);
    }
    const keep = Math.min(3, buffer.length);
    this.stats.skippedBytes += buffer.length - keep;
    return buffer.subarray(buffer.length - keep);
  }
}

const PACK_START_CODE = Buffer.from([0, 0, 1, START_PACK]);
