/**
 * Hostile clients for the media node's ports: raw HTTP requests, a hand-rolled RTMP client that can send
 * anything (commands, media, garbage) in one TCP write, an FLV tag reader for a viewer, and the command
 * lines of a process's children. Real sockets only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';

const amf = createRequire(import.meta.url)('node-media-server/src/protocol/amf.js') as {
  encodeAmf0Cmd(opt: Record<string, unknown>): Buffer;
  encodeAmf0Data(opt: Record<string, unknown>): Buffer;
};

export interface RawReply {
  /** The status line's code, 0 when the connection closed without a status line. */
  status: number;
  text: string;
}

/** Writes `head` (and `body`) as-is on a fresh TCP connection; resolves with what came back once it closes. */
export function rawHttp(port: number, head: Buffer | string, body?: Buffer, timeoutMs = 10_000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms for ${String(head).slice(0, 80)}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // A complete status line is all the caller needs: do not wait for keep-alive.
      const text = Buffer.concat(chunks).toString('latin1');
      if (/\r\n\r\n/.test(text)) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : 0, text });
    });
    socket.write(head);
    if (body) socket.write(body);
  });
}

/** GET through node:http, for paths node:http will send. */
export function httpGet(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      // Never read an FLV stream to its end: a refusal is short, a stream is not.
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (Buffer.concat(chunks).length > 4096) req.destroy();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------- RTMP ----------

const RTMP_HANDSHAKE_SIZE = 1536;
const CHANNEL_PROTOCOL = 2;
const CHANNEL_INVOKE = 3;
const CHANNEL_AUDIO = 4;
const CHANNEL_VIDEO = 5;
const CHANNEL_DATA = 6;

/** C0 + C1 + C2 of a simple handshake (zero version field), sent without waiting for S0-S2. */
export function rtmpHandshake(): Buffer {
  return Buffer.concat([Buffer.from([3]), Buffer.alloc(RTMP_HANDSHAKE_SIZE), Buffer.alloc(RTMP_HANDSHAKE_SIZE)]);
}

/** One RTMP message in a single chunk (the chunk size is raised first, see rtmpSetChunkSize). */
export function rtmpMessage(cid: number, type: number, streamId: number, payload: Buffer, timestamp = 0): Buffer {
  const header = Buffer.alloc(12);
  header[0] = cid & 0x3f;
  header.writeUIntBE(Math.min(timestamp, 0xfffffe), 1, 3);
  header.writeUIntBE(payload.length, 4, 3);
  header[7] = type;
  header.writeUInt32LE(streamId, 8);
  return Buffer.concat([header, payload]);
}

export function rtmpSetChunkSize(size: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(size);
  return rtmpMessage(CHANNEL_PROTOCOL, 1, 0, payload);
}

export function rtmpInvoke(opt: Record<string, unknown>, streamId = 0): Buffer {
  return rtmpMessage(CHANNEL_INVOKE, 20, streamId, amf.encodeAmf0Cmd(opt));
}

export function rtmpConnect(port: number, app = 'live'): Buffer {
  return rtmpInvoke({ cmd: 'connect', transId: 1, cmdObj: { app, tcUrl: `rtmp://127.0.0.1:${port}/${app}`, objectEncoding: 0 } });
}

export function rtmpCreateStream(transId = 2): Buffer {
  return rtmpInvoke({ cmd: 'createStream', transId, cmdObj: null });
}

export function rtmpPlay(streamName: string): Buffer {
  return rtmpInvoke({ cmd: 'play', transId: 3, cmdObj: null, streamName, start: -2 }, 1);
}

export function rtmpPublish(streamName: string): Buffer {
  return rtmpInvoke({ cmd: 'publish', transId: 3, cmdObj: null, streamName, type: 'live' }, 1);
}

/** Metadata, an AVC sequence header, an AVC keyframe and an AAC frame, each carrying `marker`. */
export function rtmpInjectedMedia(marker: string, timestamp: number): Buffer {
  const mark = Buffer.from(marker);
  const metadata = amf.encodeAmf0Data({ cmd: '@setDataFrame', method: 'onMetaData', dataObj: { marker, width: 16, height: 16 } });
  const seqHeader = Buffer.concat([Buffer.from([0x17, 0x00, 0, 0, 0]), mark]);
  const keyframe = Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.from([0, 0, 0, mark.length]), mark]);
  const audio = Buffer.concat([Buffer.from([0xaf, 0x01]), mark]);
  return Buffer.concat([
    rtmpMessage(CHANNEL_DATA, 18, 1, metadata, timestamp),
    rtmpMessage(CHANNEL_VIDEO, 9, 1, seqHeader, timestamp),
    rtmpMessage(CHANNEL_VIDEO, 9, 1, keyframe, timestamp),
    rtmpMessage(CHANNEL_AUDIO, 8, 1, audio, timestamp),
  ]);
}

export interface RtmpConnection {
  socket: Socket;
  received(): Buffer;
  closed: Promise<void>;
  isClosed(): boolean;
  write(bytes: Buffer): void;
  destroy(): void;
}

export function rtmpOpen(port: number): Promise<RtmpConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const closedPromise = new Promise<void>((r) =>
      socket.once('close', () => {
        closed = true;
        r();
      }),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed: closedPromise,
        isClosed: () => closed,
        write: (bytes) => {
          if (!socket.destroyed) socket.write(bytes);
        },
        destroy: () => socket.destroy(),
      }),
    );
    socket.once('error', reject);
  });
}

/** How many AMF `_result` answers the server sent (connect, createStream...). */
export function countResults(bytes: Buffer): number {
  return bytes.toString('latin1').split('\u0002\u0000\u0007_result').length - 1;
}

// ---------- FLV viewer ----------

export interface FlvTag {
  type: number;
  timestamp: number;
  data: Buffer;
}

/** Incremental FLV reader: header, then tags. A stream that is not FLV sets `broken`. */
export class FlvReader {
  readonly tags: FlvTag[] = [];
  readonly #chunks: Buffer[] = [];
  broken = false;
  #pending = Buffer.alloc(0);
  #headerDone = false;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    if (this.broken) return;
    this.#pending = Buffer.concat([this.#pending, chunk]);
    if (!this.#headerDone) {
      if (this.#pending.length < 13) return;
      if (this.#pending.subarray(0, 3).toString('latin1') !== 'FLV') {
        this.broken = true;
        return;
      }
      this.#pending = this.#pending.subarray(13);
      this.#headerDone = true;
    }
    while (this.#pending.length >= 11) {
      const size = this.#pending.readUIntBE(1, 3);
      if (this.#pending.length < 11 + size + 4) return;
      const timestamp = this.#pending.readUIntBE(4, 3) | (this.#pending[7] << 24);
      this.tags.push({ type: this.#pending[0], timestamp, data: Buffer.from(this.#pending.subarray(11, 11 + size)) });
      this.#pending = this.#pending.subarray(11 + size + 4);
    }
  }

  /** Video keyframes (AVC NALU, frame type 1) seen so far. */
  keyframes(): number {
    return this.tags.filter((tag) => tag.type === 9 && tag.data[0] >> 4 === 1 && tag.data[1] === 1).length;
  }

  contains(marker: string): boolean {
    return Buffer.concat(this.#chunks).includes(Buffer.from(marker));
  }
}

/** An HTTP-FLV viewer that keeps every byte and tag it receives. */
export function watchHttpFlv(url: string): Promise<{ status: number; reader: FlvReader; closed: () => boolean; stop(): void }> {
  return new Promise((resolve, reject) => {
    const reader = new FlvReader();
    let isClosed = false;
    const req = request(url, (res) => {
      res.on('data', (chunk: Buffer) => reader.push(chunk));
      res.on('close', () => (isClosed = true));
      resolve({ status: res.statusCode ?? 0, reader, closed: () => isClosed, stop: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------- processes ----------

/** Command lines (argv joined by spaces) of the direct children of `pid`, from /proc. */
export function childCommandLines(pid: number): string[] {
  const lines: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) comes after the parenthesised command name, which may itself contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      lines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' '));
    } catch {
      // The process ended while we looked.
    }
  }
  return lines;
}

export function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
}
