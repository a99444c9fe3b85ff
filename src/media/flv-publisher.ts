/**
 * The one path media enters a media node by: FLV tags in, node-media-server's broadcast out, fenced.
 * A publisher claims a stream path in-process (nms-guard.ts `openFencedBroadcast`): nothing else (no RTMP
 * or FLV client, no player) may publish into NMS, and only this publisher's packets reach the viewers.
 *
 * Two ways in: `feed()` takes an FLV byte stream (an HTTP-FLV source, the transcoder's `ffmpeg -f flv pipe:1`),
 * and `writeTag()` takes one tag (the RTMP relay, and the RTSP relay and demuxers through flv-mux.ts). Tags are classified by NMS's own FLV code
 * (`Flv.parserTag`), so headers, keyframes, the GOP cache and metadata behave exactly as an NMS publish.
 * No credential is involved: relays run in this process (relays.ts), and a transcoder's stdout only this node reads.
 * @see https://veovera.org/docs/legacy/video-file-format-v10-1-spec.pdf (FLV header and tags)
 * @see node_modules/node-media-server/src/protocol/flv.js, server/broadcast_server.js
 */
import { createRequire } from 'node:module';
import type { NmsSession } from 'node-media-server';
import { nmsContext, openFencedBroadcast, type FencedBroadcast, type NmsPacket } from './nms-guard.js';

const nmsRequire = createRequire(import.meta.url);
const Flv = nmsRequire('node-media-server/src/protocol/flv.js') as {
  parserTag(type: number, time: number, size: number, data: Buffer): NmsPacket;
};
const BaseSession = nmsRequire('node-media-server/src/session/base_session.js') as new () => NmsSession;

export const FLV_TAG_AUDIO = 8;
export const FLV_TAG_VIDEO = 9;
export const FLV_TAG_SCRIPT = 18;
const TAG_TYPES = new Set([FLV_TAG_AUDIO, FLV_TAG_VIDEO, FLV_TAG_SCRIPT]);
/** FLV file header (9 bytes, DataOffset 9) followed by PreviousTagSize0. */
const FLV_HEADER_BYTES = 13;
const TAG_HEADER_BYTES = 11;
const PREVIOUS_TAG_SIZE_BYTES = 4;
/** A 4K H.265 keyframe is a few MB; a larger tag is a broken stream, refused before it is buffered. */
export const MAX_FLV_TAG_BYTES = 8 * 1024 * 1024;
/** NMS's packet flags (flv.js parserTag): 3 = video keyframe. */
const NMS_FLAG_KEYFRAME = 3;

export interface FlvTag {
  /** 8 audio, 9 video, 18 script data. */
  type: number;
  /** Milliseconds, 32 bits (FLV's 24 bits + extension). */
  timestamp: number;
  data: Buffer;
  /**
   * Optional: the whole tag's room (`FlvTagSlab.alloc`), `data` being its view at offset 11. The publisher writes
   * the tag header into it and hands it to the viewers as it is, instead of copying `data` into a new tag;
   * such a tag goes to one publisher only (its header is that publisher's). A listener that keeps a tag
   * keeps `data`'s copy, not `encoded` (a view of a shared slab).
   */
  encoded?: Buffer;
}

/**
 * Tag buffers are cut from slabs: an ArrayBuffer per video frame made allocation and GC a large cost. Each
 * producer (one relay's muxer or tag reader) has slabs of its own: a view keeps its whole slab alive, and a
 * viewer's GOP cache keeps its tags for a GOP, so a slab shared by every relay let one camera with a 10 s GOP
 * keep 10 s of every other channel's tags in memory too. Per producer, a GOP keeps at most one slab more than
 * its own bytes.
 */
const TAG_SLAB_BYTES = 16 * 1024;

export class FlvTagSlab {
  #slab: Buffer | null = null;
  #offset = 0;

  /**
   * Room for one whole FLV tag with a body of `dataBytes` (header at 0, body at 11, PreviousTagSize last), its
   * bytes not initialised: the caller fills the body, the publisher the rest. A view of this producer's slab for
   * small tags, its own allocation for large ones.
   */
  alloc(dataBytes: number): Buffer {
    const total = TAG_HEADER_BYTES + dataBytes + PREVIOUS_TAG_SIZE_BYTES;
    if (total > TAG_SLAB_BYTES / 4) return Buffer.allocUnsafeSlow(total);
    if (this.#slab === null || this.#offset + total > TAG_SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(TAG_SLAB_BYTES);
      this.#offset = 0;
    }
    const tag = this.#slab.subarray(this.#offset, this.#offset + total);
    this.#offset += (total + 7) & ~7;
    return tag;
  }
}

/** A tag whose body is `encoded[11..]`, for a producer that wrote the body into `FlvTagSlab.alloc` room. */
export function encodedTag(type: number, timestamp: number, encoded: Buffer): FlvTag {
  return { type, timestamp, data: encoded.subarray(TAG_HEADER_BYTES, encoded.length - PREVIOUS_TAG_SIZE_BYTES), encoded };
}

/** Is `tag.encoded` room around `tag.data` exactly (so writing its header cannot touch anything else)? */
function encodedRoom(tag: FlvTag): Buffer | undefined {
  const { encoded, data } = tag;
  if (encoded === undefined) return undefined;
  return encoded.buffer === data.buffer &&
    encoded.byteOffset + TAG_HEADER_BYTES === data.byteOffset &&
    encoded.length === data.length + TAG_HEADER_BYTES + PREVIOUS_TAG_SIZE_BYTES
    ? encoded
    : undefined;
}

export class FlvStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlvStreamError';
  }
}

/** Splits an FLV byte stream into tags, whatever the chunking; throws FlvStreamError on a broken stream. */
export class FlvTagReader {
  #pending: Buffer = Buffer.alloc(0);
  readonly #slab = new FlvTagSlab();
  #headerRead = false;

  /** The complete tags in `chunk` (plus what earlier chunks left over). */
  push(chunk: Buffer): FlvTag[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const tags: FlvTag[] = [];
    if (!this.#headerRead) {
      if (this.#pending.length < FLV_HEADER_BYTES) return tags;
      if (this.#pending.toString('latin1', 0, 3) !== 'FLV') throw new FlvStreamError('not an FLV stream');
      const dataOffset = this.#pending.readUInt32BE(5);
      if (dataOffset !== 9) throw new FlvStreamError(`unexpected FLV header size ${dataOffset}`);
      this.#pending = this.#pending.subarray(FLV_HEADER_BYTES);
      this.#headerRead = true;
    }
    let offset = 0;
    const buffer = this.#pending;
    while (buffer.length - offset >= TAG_HEADER_BYTES) {
      const type = buffer[offset] & 0x1f;
      if ((buffer[offset] & 0x20) !== 0) throw new FlvStreamError('encrypted FLV tags are not relayed');
      if (!TAG_TYPES.has(type)) throw new FlvStreamError(`unknown FLV tag type ${type}`);
      const size = buffer.readUIntBE(offset + 1, 3);
      if (size > MAX_FLV_TAG_BYTES) throw new FlvStreamError(`FLV tag of ${size} bytes`);
      const total = TAG_HEADER_BYTES + size + PREVIOUS_TAG_SIZE_BYTES;
      if (buffer.length - offset < total) break;
      const timestamp = (buffer.readUIntBE(offset + 4, 3) | (buffer[offset + 7] << 24)) >>> 0;
      const previous = buffer.readUInt32BE(offset + TAG_HEADER_BYTES + size);
      if (previous !== TAG_HEADER_BYTES + size) throw new FlvStreamError('FLV PreviousTagSize does not match');
      // A copy (of the whole tag, which then goes to the viewers as it is): NMS keeps packet data in its GOP
      // cache, and `chunk` belongs to the caller.
      const encoded = this.#slab.alloc(size);
      buffer.copy(encoded, 0, offset, offset + total);
      tags.push(encodedTag(type, timestamp, encoded));
      offset += total;
    }
    this.#pending = buffer.subarray(offset);
    return tags;
  }
}

/** What a channel's camera sends, as API.md's Channel `codec` names it. */
export type SourceCodec = 'h264' | 'h265';

/** FLV CodecID 7 is AVC, 12 the pre-standard HEVC id some servers use; enhanced FLV names `hvc1` by FourCC. */
const FLV_CODEC_AVC = 7;
const FLV_CODEC_HEVC_LEGACY = 12;
const FOURCC_HVC1 = Buffer.from('hvc1', 'latin1').readUInt32BE(0);

export function codecOfPacket(packet: NmsPacket): SourceCodec | undefined {
  if (packet.codec_type !== FLV_TAG_VIDEO) return undefined;
  if (packet.codec_id === FLV_CODEC_AVC) return 'h264';
  if (packet.codec_id === FOURCC_HVC1 || packet.codec_id === FLV_CODEC_HEVC_LEGACY) return 'h265';
  return undefined;
}

export interface FlvPublisher {
  readonly streamPath: string;
  /** The video codec seen so far (undefined before the first video tag, or for a codec we do not name). */
  readonly codec: SourceCodec | undefined;
  /** Video keyframes published so far (a forward is live once this passes 0). */
  readonly keyframes: number;
  /** Bytes of an FLV stream (header first). Throws FlvStreamError on a broken stream. */
  feed(chunk: Buffer): void;
  /** One tag, for in-process sources that produce tags rather than an FLV byte stream. */
  writeTag(tag: FlvTag): void;
  /** Every tag published from now on also goes to `listener` (in-process readers: a transcoder). */
  subscribe(listener: (tag: FlvTag) => void): void;
  /** Ends the publish; NMS keeps the path resumable by the next publisher for its grace window. */
  close(): void;
}

/** Claims `/<app>/<name>` and returns its publisher; throws if the path already has a live publisher. */
export function openFlvPublisher(app: string, name: string): FlvPublisher {
  const streamPath = `/${app}/${name}`;
  const session = new BaseSession();
  // An empty ip marks an NMS-internal session (no play/publish counting as a client); see broadcast_server.js.
  session.protocol = 'flv';
  session.streamApp = app;
  session.streamName = name;
  session.streamPath = streamPath;
  session.isPublisher = true;
  const fenced: FencedBroadcast = openFencedBroadcast(streamPath, session);
  const reader = new FlvTagReader();
  let keyframes = 0;
  let codec: SourceCodec | undefined;
  let closed = false;
  const listeners: Array<(tag: FlvTag) => void> = [];

  const writeTag = (tag: FlvTag) => {
    if (closed) return;
    if (!TAG_TYPES.has(tag.type)) throw new FlvStreamError(`unknown FLV tag type ${tag.type}`);
    if (tag.data.length > MAX_FLV_TAG_BYTES) throw new FlvStreamError(`FLV tag of ${tag.data.length} bytes`);
    const packet = Flv.parserTag(tag.type, tag.timestamp, tag.data.length, tag.data);
    fenced.deliver(packet, encodedRoom(tag));
    if (packet.codec_type === FLV_TAG_VIDEO && packet.flags === NMS_FLAG_KEYFRAME) keyframes += 1;
    codec = codecOfPacket(packet) ?? codec;
    for (const listener of listeners) listener(tag);
  };

  return {
    streamPath,
    get keyframes() {
      return keyframes;
    },
    get codec() {
      return codec;
    },
    feed(chunk) {
      if (closed) return;
      session.inBytes += chunk.length;
      nmsContext.networkStats.inBytes += chunk.length;
      for (const tag of reader.push(chunk)) writeTag(tag);
    },
    writeTag,
    subscribe(listener) {
      listeners.push(listener);
    },
    close() {
      if (closed) return;
      closed = true;
      fenced.release();
    },
  };
}
