/**
 * Players for the end-to-end media tests: read a live HTTP-FLV or WebSocket-FLV stream and parse its
 * FLV framing as it arrives, so a test can tell real video (a header, then video tags) from a refusal
 * (a status code or a closed socket with zero FLV bytes).
 * @see https://veovera.org/docs/legacy/video-file-format-v10-1-spec.pdf (FLV header, tag header layout)
 */
import { request } from 'node:http';
import { WebSocket } from 'ws';

const FLV_TAG_VIDEO = 9;
const FLV_TAG_HEADER_BYTES = 11;
const PREVIOUS_TAG_SIZE_BYTES = 4;

/** Counts what an FLV byte stream carries, fed chunk by chunk. */
export class FlvTally {
  bytes = 0;
  /** 'FLV' signature seen at byte 0. */
  header = false;
  videoTags = 0;
  otherTags = 0;
  /** The framing did not parse: the stream is not FLV. */
  malformed = false;
  #pending = Buffer.alloc(0);
  #headerSize = 0;
  #waiters: Array<{ check: () => boolean; resolve: () => void }> = [];

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.#pending = Buffer.concat([this.#pending, chunk]);
    this.#parse();
    this.#waiters = this.#waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
  }

  /** Resolves once `check` holds; `ended` (the stream closed) also resolves it, so callers re-check. */
  when(check: () => boolean, ended: Promise<unknown>): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ check, resolve });
      void ended.then(() => resolve());
    });
  }

  #parse(): void {
    if (this.malformed) return;
    if (!this.header) {
      if (this.#pending.length < 9) return;
      if (this.#pending.toString('latin1', 0, 3) !== 'FLV') {
        this.malformed = true;
        return;
      }
      this.header = true;
      this.#headerSize = this.#pending.readUInt32BE(5);
    }
    if (this.#headerSize > 0) {
      if (this.#pending.length < this.#headerSize + PREVIOUS_TAG_SIZE_BYTES) return;
      this.#pending = this.#pending.subarray(this.#headerSize + PREVIOUS_TAG_SIZE_BYTES);
      this.#headerSize = 0;
    }
    while (this.#pending.length >= FLV_TAG_HEADER_BYTES) {
      const type = this.#pending[0]! & 0x1f;
      const dataSize = this.#pending.readUIntBE(1, 3);
      const total = FLV_TAG_HEADER_BYTES + dataSize + PREVIOUS_TAG_SIZE_BYTES;
      if (this.#pending.length < total) return;
      if (type === FLV_TAG_VIDEO) this.videoTags += 1;
      else this.otherTags += 1;
      this.#pending = this.#pending.subarray(total);
    }
  }
}

export interface FlvPlayer {
  /** HTTP status of the play response (0 for WebSocket: a refused WS play is a close, not a status). */
  status: number;
  flv: FlvTally;
  /** Resolves when the stream ends, however it ends. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Resolves once `n` video tags arrived, or the stream closed first (then `flv.videoTags < n`). */
  videoTags(n: number): Promise<void>;
  stop(): void;
}

function player(status: number, flv: FlvTally, closed: Promise<void>, stop: () => void): FlvPlayer {
  let done = false;
  void closed.then(() => (done = true));
  return {
    status,
    flv,
    closed,
    isClosed: () => done,
    videoTags: (n) => flv.when(() => flv.videoTags >= n, closed),
    stop,
  };
}

/** GET an HTTP-FLV URL; resolves with the response status once headers arrive (or the socket closes). */
export function playHttpFlv(url: string, headers: Record<string, string> = {}): Promise<FlvPlayer> {
  return new Promise((resolve) => {
    const flv = new FlvTally();
    const req = request(url, { headers }, (res) => {
      const closed = new Promise<void>((r) => {
        res.once('close', () => r());
        res.once('end', () => r());
        res.once('error', () => r());
      });
      res.on('data', (chunk: Buffer) => flv.push(chunk));
      resolve(player(res.statusCode ?? 0, flv, closed, () => req.destroy()));
    });
    // A connection dropped before any response: a refusal without a status, and no FLV byte.
    req.once('error', () => resolve(player(0, flv, Promise.resolve(), () => undefined)));
    req.end();
  });
}

export function playWsFlv(url: string, headers: Record<string, string> = {}): FlvPlayer {
  const flv = new FlvTally();
  const ws = new WebSocket(url, { headers });
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer) => flv.push(Buffer.from(data)));
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  return player(0, flv, closed, () => ws.terminate());
}

/** True when `promise` settles within `ms`, false otherwise (bounds a wait on the wire without failing it). */
export async function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const outcome = await Promise.race([promise.then(() => true as const), timeout]);
  clearTimeout(timer);
  return outcome;
}
