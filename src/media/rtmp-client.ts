/**
 * A lean RTMP pull client for in-process relays: simple handshake (C0/C1/C2), AMF0 connect, createStream and
 * play, then the chunk stream demultiplexed into whole messages. Audio (8), video (9, legacy or enhanced
 * RTMP alike: the payload is the FLV tag body) and data (18) messages go to `onMessage` as one Buffer each,
 * aggregate messages (22) split into theirs; the rest is protocol control this client answers or ignores.
 *
 * Why not node-media-server's RtmpClient: it parses through NMS's general RTMP session machinery (a packet
 * object, a payload buffer and a copy per message, an RTMP and an FLV re-encode downstream), and reads the
 * socket once per packet the server writes. This one reads a paced socket (paced-socket.ts), hands a message
 * that arrives whole in one read to its caller as a view of that read (no copy), and copies a message spread
 * over several chunks once, into a buffer of its declared length.
 *
 * Bounded against a hostile or broken server: a message may be at most MAX_FLV_TAG_BYTES, all messages in
 * progress at once MAX_PENDING_BYTES, a server's chunk size is MIN_CHUNK_SIZE..MAX_CHUNK_SIZE, chunk streams
 * MAX_CHUNK_STREAMS. Anything malformed ends the pull once, through `onEnd` with a reason; nothing is thrown
 * out of a socket handler.
 * @see https://rtmp.veriskope.com/docs/spec/ (Adobe RTMP 1.0: 5.3 chunking, 5.4 protocol control, 7.2 commands)
 * @see https://veovera.org/docs/enhanced/enhanced-rtmp-v2 (enhanced RTMP: FourCC video in the same tag body)
 */
import { randomBytes } from 'node:crypto';
import { decodeAmf0Values, encodeAmf0Values, type Amf0Value } from './amf0.js';
import { MAX_FLV_TAG_BYTES } from './flv-publisher.js';
import { connectPaced, type PacedSocket } from './paced-socket.js';

const RTMP_VERSION = 3;
const HANDSHAKE_BYTES = 1536;
const DEFAULT_PORT = 1935;
/** A chunk smaller than this makes a 1 MB keyframe 16,000 chunks; no real server goes below 128. */
export const MIN_CHUNK_SIZE = 64;
/** The largest chunk size RTMP can state (24-bit message lengths make larger meaningless). */
export const MAX_CHUNK_SIZE = 0xffffff;
/** A server multiplexes a handful of chunk streams (control, commands, audio, video, data). */
export const MAX_CHUNK_STREAMS = 64;
/** Messages in progress on all chunk streams at once: one largest tag plus room for the interleaved rest. */
export const MAX_PENDING_BYTES = MAX_FLV_TAG_BYTES + 1024 * 1024;
/** What this client tells the server it sends in one chunk (its commands are a few hundred bytes). */
const OUT_CHUNK_SIZE = 4096;
/** Buffer length asked for with play (user control event 3), as players do. */
const PLAY_BUFFER_MS = 3000;

const MSG_SET_CHUNK_SIZE = 1;
const MSG_ABORT = 2;
const MSG_ACK = 3;
const MSG_USER_CONTROL = 4;
const MSG_WINDOW_ACK_SIZE = 5;
const MSG_AUDIO = 8;
const MSG_VIDEO = 9;
const MSG_AMF3_COMMAND = 17;
const MSG_DATA = 18;
const MSG_COMMAND = 20;
const MSG_AGGREGATE = 22;

const CSID_CONTROL = 2;
const CSID_COMMAND = 3;
const CSID_PLAY = 8;

export class RtmpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtmpProtocolError';
  }
}

export interface RtmpPullOptions {
  url: string;
  /** One audio (8), video (9) or data (18) message: its body is an FLV tag body. The caller may keep it. */
  onMessage: (type: number, timestamp: number, payload: Buffer) => void;
  /** Once, when the pull ends for any reason other than `close()`. */
  onEnd: (reason: string) => void;
}

export interface RtmpPull {
  close(): void;
}

interface ChunkStream {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last full header of this chunk stream used an extended timestamp (so do its type-3 chunks). */
  extended: boolean;
  /** The message being assembled (spread over chunks), and how much of it has arrived. */
  message: Buffer | null;
  received: number;
}

/** rtmp://host[:port]/app/stream[?query]: the app is the first path segment, the stream the rest. */
export function parseRtmpUrl(sourceUrl: string): { host: string; port: number; app: string; tcUrl: string; streamName: string } {
  const url = new URL(sourceUrl);
  if (url.protocol !== 'rtmp:') throw new RtmpProtocolError(`not an RTMP URL: ${url.protocol}`);
  const parts = url.pathname.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  if (parts.length < 2) throw new RtmpProtocolError('an RTMP URL names an app and a stream');
  const [app, ...stream] = parts;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || DEFAULT_PORT;
  return { host, port, app: app!, tcUrl: `rtmp://${url.host}/${app}`, streamName: stream.join('/') + url.search };
}

/**
 * Connects, plays `url`'s stream and hands its messages to `onMessage` until the server closes, errs,
 * refuses or sends something malformed (`onEnd` with why) or `close()` is called.
 */
export function pullRtmp(options: RtmpPullOptions): RtmpPull {
  const target = parseRtmpUrl(options.url);
  let ended = false;
  let paced: PacedSocket | null = null;

  const end = (reason: string) => {
    if (ended) return;
    ended = true;
    paced?.socket.destroy();
    options.onEnd(reason);
  };

  // ---- output
  const write = (buffer: Buffer) => {
    if (!ended && paced && !paced.socket.destroyed) paced.socket.write(buffer);
  };
  /** One message as chunks of OUT_CHUNK_SIZE: a type-0 header, then type-3 continuations. */
  const sendMessage = (csid: number, type: number, streamId: number, payload: Buffer) => {
    const header = Buffer.alloc(12);
    header[0] = csid;
    header.writeUIntBE(0, 1, 3);
    header.writeUIntBE(payload.length, 4, 3);
    header[7] = type;
    header.writeUInt32LE(streamId, 8);
    const parts: Buffer[] = [header];
    for (let offset = 0; offset < payload.length; offset += OUT_CHUNK_SIZE) {
      if (offset > 0) parts.push(Buffer.from([0xc0 | csid]));
      parts.push(payload.subarray(offset, offset + OUT_CHUNK_SIZE));
    }
    write(Buffer.concat(parts));
  };
  const u32 = (value: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value >>> 0, 0);
    return b;
  };
  let transactions = 0;
  const pending = new Map<number, string>();
  const command = (name: string, streamId: number, ...args: Amf0Value[]) => {
    const id = ++transactions;
    pending.set(id, name);
    sendMessage(name === 'play' ? CSID_PLAY : CSID_COMMAND, MSG_COMMAND, streamId, encodeAmf0Values([name, id, ...args]));
  };

  // ---- acknowledgements
  let received = 0;
  let acknowledged = 0;
  let ackWindow = 0;
  const countReceived = (bytes: number) => {
    received += bytes;
    if (ackWindow > 0 && received - acknowledged >= ackWindow) {
      acknowledged = received;
      sendMessage(CSID_CONTROL, MSG_ACK, 0, u32(received % 0x100000000));
    }
  };

  // ---- commands and control
  let streamId = 0;
  const onCommand = (values: Amf0Value[]) => {
    const [name, id] = values;
    if (name === '_result' || name === '_error') {
      const what = typeof id === 'number' ? pending.get(id) : undefined;
      if (what === undefined) return;
      pending.delete(id as number);
      if (name === '_error') {
        const info = values[3] as { description?: unknown; code?: unknown } | undefined;
        throw new RtmpProtocolError(`the source refused ${what}: ${String(info?.description ?? info?.code ?? 'no reason')}`);
      }
      if (what === 'connect') {
        command('createStream', 0, null);
      } else if (what === 'createStream') {
        const sid = values[3];
        if (typeof sid !== 'number' || !Number.isInteger(sid) || sid < 0 || sid > 0xffffffff) {
          throw new RtmpProtocolError('createStream answered without a stream id');
        }
        streamId = sid;
        command('play', streamId, null, target.streamName, -2);
        // User control "set buffer length" for the play stream, as players send it.
        const event = Buffer.alloc(10);
        event.writeUInt16BE(3, 0);
        event.writeUInt32BE(streamId, 2);
        event.writeUInt32BE(PLAY_BUFFER_MS, 6);
        sendMessage(CSID_CONTROL, MSG_USER_CONTROL, 0, event);
      }
      return;
    }
    if (name === 'onStatus') {
      const info = values[3] as { level?: unknown; code?: unknown; description?: unknown } | undefined;
      const code = typeof info?.code === 'string' ? info.code : '';
      if (info?.level === 'error' || /Failed|BadName|NotFound|Rejected|Error/.test(code)) {
        throw new RtmpProtocolError(`the source refused the play: ${code || String(info?.description ?? 'error')}`);
      }
      if (code === 'NetStream.Play.Start') paced?.pace();
    }
    // onBWDone, |RtmpSampleAccess, onFCSubscribe and the like need no answer.
  };

  const onControl = (type: number, payload: Buffer) => {
    switch (type) {
      case MSG_SET_CHUNK_SIZE: {
        if (payload.length < 4) throw new RtmpProtocolError('short set-chunk-size message');
        const size = payload.readUInt32BE(0) & 0x7fffffff;
        if (size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE) throw new RtmpProtocolError(`RTMP chunk size ${size}`);
        inChunkSize = size;
        return;
      }
      case MSG_ABORT: {
        if (payload.length < 4) throw new RtmpProtocolError('short abort message');
        const stream = streams.get(payload.readUInt32BE(0));
        if (stream?.message) {
          pendingBytes -= stream.length;
          stream.message = null;
          stream.received = 0;
        }
        return;
      }
      case MSG_USER_CONTROL: {
        if (payload.length < 2) throw new RtmpProtocolError('short user control message');
        // Ping request: answered with the same timestamp.
        if (payload.readUInt16BE(0) === 6 && payload.length >= 6) {
          const pong = Buffer.alloc(6);
          pong.writeUInt16BE(7, 0);
          payload.copy(pong, 2, 2, 6);
          sendMessage(CSID_CONTROL, MSG_USER_CONTROL, 0, pong);
        }
        return;
      }
      case MSG_WINDOW_ACK_SIZE:
        if (payload.length < 4) throw new RtmpProtocolError('short window acknowledgement size');
        ackWindow = payload.readUInt32BE(0);
        return;
      default:
      // Acknowledgements, peer bandwidth, AMF3 data and shared objects: nothing a player acts on.
    }
  };

  /** An aggregate message: FLV tags (header, body, previous tag size) timed relative to the first. */
  const onAggregate = (timestamp: number, payload: Buffer) => {
    let offset = 0;
    let first: number | undefined;
    while (offset < payload.length) {
      if (payload.length - offset < 11) throw new RtmpProtocolError('truncated aggregate message');
      const type = payload[offset]!;
      const size = payload.readUIntBE(offset + 1, 3);
      const time = (payload.readUIntBE(offset + 4, 3) | (payload[offset + 7]! << 24)) >>> 0;
      const end = offset + 11 + size;
      if (end + 4 > payload.length) throw new RtmpProtocolError('truncated aggregate message');
      first ??= time;
      if ((type === MSG_AUDIO || type === MSG_VIDEO || type === MSG_DATA) && size > 0 && !ended) {
        options.onMessage(type, (timestamp + time - first) >>> 0, payload.subarray(offset + 11, end));
      }
      offset = end + 4;
    }
  };

  const onMessage = (stream: ChunkStream, payload: Buffer) => {
    const { type } = stream;
    if (type === MSG_AUDIO || type === MSG_VIDEO || type === MSG_DATA) {
      // An empty media message carries nothing a tag could (and NMS's tag parser reads its first byte).
      if (!ended && payload.length > 0) options.onMessage(type, stream.timestamp >>> 0, payload);
    } else if (type === MSG_COMMAND) {
      onCommand(decodeAmf0Values(payload));
    } else if (type === MSG_AMF3_COMMAND) {
      // AMF3 command messages start with a format byte, then AMF0 (what servers send).
      onCommand(decodeAmf0Values(payload.subarray(1)));
    } else if (type === MSG_AGGREGATE) {
      onAggregate(stream.timestamp, payload);
    } else {
      onControl(type, payload);
    }
  };

  // ---- chunk stream demultiplexer
  const streams = new Map<number, ChunkStream>();
  let inChunkSize = 128;
  let pendingBytes = 0;
  /** Header bytes of a chunk that the last read cut short (at most 18). */
  let carry: Buffer | null = null;
  /** The chunk whose payload is being read, and how many of its bytes are still to come. */
  let current: ChunkStream | null = null;
  let chunkLeft = 0;

  /** Parses one chunk header at `offset`; returns the offset after it, or -1 if `data` ends first. */
  const readHeader = (data: Buffer, offset: number): number => {
    let p = offset;
    if (p >= data.length) return -1;
    const fmt = data[p]! >> 6;
    let csid = data[p]! & 0x3f;
    p += 1;
    if (csid === 0) {
      if (p + 1 > data.length) return -1;
      csid = 64 + data[p]!;
      p += 1;
    } else if (csid === 1) {
      if (p + 2 > data.length) return -1;
      csid = 64 + data[p]! + data[p + 1]! * 256;
      p += 2;
    }
    const headerBytes = [11, 7, 3, 0][fmt]!;
    if (p + headerBytes > data.length) return -1;
    let stream = streams.get(csid);
    if (!stream) {
      if (fmt !== 0) throw new RtmpProtocolError(`chunk stream ${csid} starts without a full header`);
      if (streams.size >= MAX_CHUNK_STREAMS) throw new RtmpProtocolError('too many RTMP chunk streams');
    }
    const inProgress = stream !== undefined && stream.message !== null;
    if (fmt < 3 && inProgress) throw new RtmpProtocolError(`chunk stream ${csid}: a new message header inside a message`);
    let field = 0;
    if (fmt < 3) field = data.readUIntBE(p, 3);
    const extended = fmt < 3 ? field === 0xffffff : stream!.extended;
    if (extended) {
      if (p + headerBytes + 4 > data.length) return -1;
    }
    // The whole header is here: apply it.
    if (!stream) {
      stream = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, message: null, received: 0 };
      streams.set(csid, stream);
    }
    if (fmt === 0 || fmt === 1) {
      stream.length = data.readUIntBE(p + 3, 3);
      stream.type = data[p + 6]!;
      if (fmt === 0) stream.streamId = data.readUInt32LE(p + 7);
    }
    p += headerBytes;
    if (fmt < 3) {
      stream.extended = extended;
      if (extended) field = data.readUInt32BE(p);
    }
    if (extended) p += 4;
    if (fmt === 0) {
      stream.timestamp = field;
      stream.delta = 0;
    } else if (fmt < 3) {
      stream.delta = field;
      stream.timestamp = (stream.timestamp + field) >>> 0;
    } else if (!inProgress) {
      stream.timestamp = (stream.timestamp + stream.delta) >>> 0;
    }
    if (!inProgress) {
      if (stream.length > MAX_FLV_TAG_BYTES) throw new RtmpProtocolError(`RTMP message of ${stream.length} bytes`);
      stream.received = 0;
    }
    current = stream;
    chunkLeft = Math.min(inChunkSize, stream.length - stream.received);
    return p;
  };

  const complete = (stream: ChunkStream, payload: Buffer) => {
    stream.message = null;
    stream.received = 0;
    onMessage(stream, payload);
  };

  const parse = (input: Buffer) => {
    let data = input;
    if (carry) {
      data = Buffer.concat([carry, input]);
      carry = null;
    }
    let offset = 0;
    while (offset < data.length && !ended) {
      if (current === null) {
        const next = readHeader(data, offset);
        if (next < 0) {
          carry = Buffer.from(data.subarray(offset));
          return;
        }
        offset = next;
        const stream = current as ChunkStream | null;
        if (stream === null) continue;
        if (stream.length === 0) {
          current = null;
          complete(stream, Buffer.alloc(0));
          continue;
        }
        if (stream.received === 0 && chunkLeft === stream.length && data.length - offset >= chunkLeft) {
          // The whole message in this one read: handed on as a view of it.
          const payload = data.subarray(offset, offset + chunkLeft);
          offset += chunkLeft;
          current = null;
          complete(stream, payload);
          continue;
        }
        if (stream.message === null) {
          if (pendingBytes + stream.length > MAX_PENDING_BYTES) throw new RtmpProtocolError('RTMP messages in progress exceed the bound');
          stream.message = Buffer.allocUnsafe(stream.length);
          pendingBytes += stream.length;
        }
      }
      const stream = current as ChunkStream;
      const n = Math.min(chunkLeft, data.length - offset);
      data.copy(stream.message!, stream.received, offset, offset + n);
      stream.received += n;
      chunkLeft -= n;
      offset += n;
      if (chunkLeft === 0) {
        current = null;
        if (stream.received === stream.length) {
          pendingBytes -= stream.length;
          complete(stream, stream.message!);
        }
      }
    }
  };

  // ---- handshake
  const c1 = Buffer.alloc(HANDSHAKE_BYTES);
  c1.writeUInt32BE(0, 0);
  randomBytes(HANDSHAKE_BYTES - 8).copy(c1, 8);
  let handshake: Buffer | null = Buffer.alloc(0);
  let sentC2 = false;
  const onHandshake = (chunk: Buffer) => {
    handshake = Buffer.concat([handshake!, chunk]);
    if (handshake[0] !== RTMP_VERSION) throw new RtmpProtocolError(`RTMP version ${handshake[0]} from the source`);
    if (!sentC2 && handshake.length >= 1 + HANDSHAKE_BYTES) {
      write(Buffer.from(handshake.subarray(1, 1 + HANDSHAKE_BYTES)));
      sentC2 = true;
    }
    if (handshake.length < 1 + 2 * HANDSHAKE_BYTES) return;
    const rest = handshake.subarray(1 + 2 * HANDSHAKE_BYTES);
    handshake = null;
    const chunkSize = Buffer.alloc(4);
    chunkSize.writeUInt32BE(OUT_CHUNK_SIZE, 0);
    sendMessage(CSID_CONTROL, MSG_SET_CHUNK_SIZE, 0, chunkSize);
    command('connect', 0, {
      app: target.app,
      flashVer: 'LNX 9,0,124,2',
      tcUrl: target.tcUrl,
      fpad: false,
      capabilities: 15,
      audioCodecs: 4071,
      videoCodecs: 252,
      videoFunction: 1,
      objectEncoding: 0,
    });
    if (rest.length > 0) parse(rest);
  };

  const onData = (chunk: Buffer) => {
    if (ended) return;
    try {
      countReceived(chunk.length);
      if (handshake !== null) onHandshake(chunk);
      else parse(chunk);
    } catch (error) {
      end(`malformed RTMP from the source: ${(error as Error).message}`);
    }
  };

  paced = connectPaced(target.host, target.port, onData);
  paced.socket.setNoDelay(true);
  paced.socket.once('connect', () => write(Buffer.concat([Buffer.from([RTMP_VERSION]), c1])));
  paced.socket.on('error', (error) => end(error.message));
  paced.socket.on('close', () => end('the source closed the connection'));
  return {
    close() {
      if (ended) return;
      ended = true;
      paced?.socket.destroy();
    },
  };
}
