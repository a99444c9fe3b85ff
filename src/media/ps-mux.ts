/**
 * Access units → MPEG-2 Program Stream, the way GB/T 28181 devices send it (one pack per picture; keyframes carry a
 * system header and a program stream map; a picture larger than one PES is split over several, the first with
 * PTS/DTS). The GB/T 28181 device simulator sends this over RTP, and tests make H.265 PS with it (ffmpeg's PS muxer
 * writes no PSM and no H.265).
 * @see ISO/IEC 13818-1 §2.5.3.3 (pack header), §2.5.3.5 (system header), §2.5.4 (PSM), §2.4.3.6 (PES), Annex A (CRC)
 * @see GB/T 28181-2016 Annex C
 */
import type { AccessUnit, VideoCodec } from './flv-mux.js';

const VIDEO_STREAM_ID = 0xe0;
const AUDIO_STREAM_ID = 0xc0;
const STREAM_TYPE: Record<VideoCodec, number> = { h264: 0x1b, h265: 0x24 };
/** G.711 A-law, as GB/T 28181 Annex C numbers it. */
const STREAM_TYPE_G711A = 0x90;
/** PES_packet_length is 16 bits; 3 flag bytes and 10 PTS/DTS bytes come out of it. */
export const MAX_PES_PAYLOAD_BYTES = 65535 - 3 - 10;
/** program_mux_rate in units of 50 bytes/s: 5 Mbit/s, an upper bound for a camera stream. */
const MUX_RATE = 12_500;

class BitWriter {
  readonly #bytes: number[] = [];
  #current = 0;
  #used = 0;

  write(value: number, count: number): this {
    for (let i = count - 1; i >= 0; i -= 1) {
      this.#current = (this.#current << 1) | (Math.floor(value / 2 ** i) & 1);
      this.#used += 1;
      if (this.#used === 8) {
        this.#bytes.push(this.#current);
        this.#current = 0;
        this.#used = 0;
      }
    }
    return this;
  }

  buffer(): Buffer {
    if (this.#used !== 0) throw new Error('bit writer not byte-aligned');
    return Buffer.from(this.#bytes);
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i += 1) {
    let crc = i << 24;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
    table[i] = crc >>> 0;
  }
  return table;
})();

/** CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A). */
export function crc32Mpeg(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]) >>> 0;
  return crc >>> 0;
}

/** The 5-byte PTS/DTS field with its 4-bit prefix. */
function timestampField(prefix: number, ticks: number): Buffer {
  const t = ticks % 2 ** 33;
  return new BitWriter()
    .write(prefix, 4)
    .write(Math.floor(t / 2 ** 30) & 7, 3)
    .write(1, 1)
    .write(Math.floor(t / 2 ** 15) & 0x7fff, 15)
    .write(1, 1)
    .write(t & 0x7fff, 15)
    .write(1, 1)
    .buffer();
}

export function packHeader(scrTicks: number, stuffingBytes = 0): Buffer {
  const scr = scrTicks % 2 ** 33;
  const head = new BitWriter()
    .write(0x000001ba, 32)
    .write(1, 2)
    .write(Math.floor(scr / 2 ** 30) & 7, 3)
    .write(1, 1)
    .write(Math.floor(scr / 2 ** 15) & 0x7fff, 15)
    .write(1, 1)
    .write(scr & 0x7fff, 15)
    .write(1, 1)
    .write(0, 9) // SCR extension
    .write(1, 1)
    .write(MUX_RATE, 22)
    .write(3, 2)
    .write(0x1f, 5)
    .write(stuffingBytes & 7, 3)
    .buffer();
  return Buffer.concat([head, Buffer.alloc(stuffingBytes & 7, 0xff)]);
}

function systemHeader(withAudio: boolean): Buffer {
  const streams = withAudio ? 2 : 1;
  const bits = new BitWriter()
    .write(0x000001bb, 32)
    .write(6 + 3 * streams, 16)
    .write(1, 1)
    .write(MUX_RATE, 22) // rate_bound
    .write(1, 1)
    .write(withAudio ? 1 : 0, 6) // audio_bound
    .write(0, 1) // fixed_flag
    .write(0, 1) // CSPS_flag
    .write(1, 1) // system_audio_lock_flag
    .write(1, 1) // system_video_lock_flag
    .write(1, 1)
    .write(1, 5) // video_bound
    .write(0, 1) // packet_rate_restriction_flag
    .write(0x7f, 7)
    .write(VIDEO_STREAM_ID, 8)
    .write(3, 2)
    .write(1, 1) // P-STD_buffer_bound_scale: 1024-byte units
    .write(1024, 13);
  if (withAudio) bits.write(AUDIO_STREAM_ID, 8).write(3, 2).write(0, 1).write(32, 13);
  return bits.buffer();
}

export function programStreamMap(codec: VideoCodec, withAudio: boolean): Buffer {
  const entries = [[STREAM_TYPE[codec], VIDEO_STREAM_ID]];
  if (withAudio) entries.push([STREAM_TYPE_G711A, AUDIO_STREAM_ID]);
  const body = new BitWriter()
    .write(0x000001bc, 32)
    .write(6 + 4 * entries.length + 4, 16)
    .write(1, 1) // current_next_indicator
    .write(3, 2)
    .write(0, 5) // program_stream_map_version
    .write(0x7f, 7)
    .write(1, 1)
    .write(0, 16) // program_stream_info_length
    .write(4 * entries.length, 16);
  for (const [type, id] of entries) body.write(type, 8).write(id, 8).write(0, 16);
  const withoutCrc = body.buffer();
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32Mpeg(withoutCrc));
  return Buffer.concat([withoutCrc, crc]);
}

function pes(streamId: number, payload: Buffer, timestamps?: { pts: number; dts: number }): Buffer {
  const fields: Buffer[] = [];
  let flags = 0;
  if (timestamps !== undefined) {
    const withDts = timestamps.dts !== timestamps.pts;
    flags = withDts ? 3 : 2;
    fields.push(timestampField(withDts ? 3 : 2, timestamps.pts));
    if (withDts) fields.push(timestampField(1, timestamps.dts));
  }
  const optional = Buffer.concat(fields);
  const head = Buffer.alloc(9);
  head.writeUInt32BE(0x00000100 | streamId);
  head.writeUInt16BE(3 + optional.length + payload.length, 4);
  head[6] = 0x80 | (timestamps !== undefined ? 0x04 : 0); // '10', data_alignment_indicator on a picture's first PES
  head[7] = flags << 6;
  head[8] = optional.length;
  return Buffer.concat([head, optional, payload]);
}

export interface PsMuxOptions {
  /** Largest PES payload; a picture above it spans several PES packets (default: as large as PES allows). */
  maxPesPayloadBytes?: number;
  /** Pack stuffing bytes (0-7), as some devices write. */
  packStuffingBytes?: number;
  /** Declare a G.711 audio stream in the PSM (its packets come from `audio()`). */
  withAudio?: boolean;
}

export class PsMuxer {
  readonly codec: VideoCodec;
  readonly #maxPayload: number;
  readonly #stuffing: number;
  readonly #withAudio: boolean;

  constructor(codec: VideoCodec, options: PsMuxOptions = {}) {
    this.codec = codec;
    this.#maxPayload = Math.max(1, Math.min(options.maxPesPayloadBytes ?? MAX_PES_PAYLOAD_BYTES, MAX_PES_PAYLOAD_BYTES));
    this.#stuffing = options.packStuffingBytes ?? 0;
    this.#withAudio = options.withAudio ?? false;
  }

  /** One pack holding one picture (Annex-B inside the PES payloads); keyframes get the system header and PSM. */
  picture(unit: AccessUnit, keyframe: boolean): Buffer {
    const es = Buffer.concat(unit.nalus.flatMap((nalu) => [Buffer.from([0, 0, 0, 1]), nalu]));
    const parts = [packHeader(unit.dts, this.#stuffing)];
    if (keyframe) parts.push(systemHeader(this.#withAudio), programStreamMap(this.codec, this.#withAudio));
    for (let at = 0; at < es.length; at += this.#maxPayload) {
      parts.push(pes(VIDEO_STREAM_ID, es.subarray(at, at + this.#maxPayload), at === 0 ? unit : undefined));
    }
    return Buffer.concat(parts);
  }

  /** One pack of audio (which the broker drops; devices send it, so tests do too). */
  audio(payload: Buffer, pts: number): Buffer {
    return Buffer.concat([packHeader(pts, this.#stuffing), pes(AUDIO_STREAM_ID, payload, { pts, dts: pts })]);
  }
}
