/**
 * H.265 → H.264 transcodes for browsers that cannot decode H.265 (API.md Streams `codec: "h264"`): one per
 * channel on its media node, shared by all its H.264 viewers, bounded by MEDIA_MAX_TRANSCODES.
 *
 * The node taps the channel's forward in-process (ForwardSet.tap), turns its enhanced-FLV `hvc1` tags back
 * into an Annex-B elementary stream on ffmpeg's stdin, and publishes ffmpeg's FLV (libx264) from its stdout
 * as the stream `<channel>_h264`, fenced like any publisher (flv-publisher.ts). ffmpeg never sees enhanced
 * FLV (neither the bundled nor Debian's reads it), and the transcoder reads from this node, not the camera.
 *
 * It ends with its last viewer: the broker names the session each start is for (its holders), and the end
 * of the last holder's session (POST /sessions/:id/end) stops it at once. One nobody holds (started without
 * a session) is stopped after TRANSCODE_IDLE_MS with no player; one whose holders never play, after
 * TRANSCODE_HELD_IDLE_MS (a broker that could not tell the node of a session's end).
 */
import type { ChildProcess } from 'node:child_process';
import { captureStderrTail, spawnFfmpeg, stopChild } from './ffmpeg.js';
import { FLV_TAG_VIDEO, type FlvPublisher, type FlvTag } from './flv-publisher.js';
import { TRANSCODE_SUFFIX } from './player-gate.js';

/** A transcode nobody watches is stopped after this (its first viewer gets as long to arrive). */
export const TRANSCODE_IDLE_MS = 15_000;
/** Two lease TTLs (BROKER_LEASE_TTL_SECONDS default 30): a held session that plays nothing this long has lapsed. */
export const TRANSCODE_HELD_IDLE_MS = 60_000;
/** A transcoder's first H.264 keyframe comes within a GOP or two of the camera's. */
const TRANSCODE_START_TIMEOUT_MS = 15_000;
const START_CODE = Buffer.from([0, 0, 0, 1]);
const FOURCC_HVC1 = 'hvc1';

export class TranscodeCapacityError extends Error {
  constructor(max: number) {
    super(`all ${max} transcodes of this node are in use`);
    this.name = 'TranscodeCapacityError';
  }
}

/** Enhanced-FLV `hvc1` tags → Annex-B access units (parameter sets before each keyframe). */
export class HevcAnnexBWriter {
  #parameterSets: Buffer[] = [];
  #started = false;

  /** The bytes for ffmpeg, or null when the tag carries nothing to decode yet. */
  push(tag: FlvTag): Buffer | null {
    const data = tag.data;
    if (tag.type !== FLV_TAG_VIDEO || data.length < 5 || (data[0] & 0x80) === 0 || data.toString('latin1', 1, 5) !== FOURCC_HVC1) return null;
    const packetType = data[0] & 0x0f;
    const keyframe = ((data[0] >> 4) & 0x07) === 1;
    if (packetType === 0) {
      this.#parameterSets = parameterSetsOfRecord(data.subarray(5));
      return null;
    }
    if (packetType !== 1 && packetType !== 3) return null;
    if (!this.#started && !keyframe) return null;
    if (this.#parameterSets.length === 0) return null;
    this.#started = true;
    const parts: Buffer[] = keyframe ? this.#parameterSets.flatMap((nalu) => [START_CODE, nalu]) : [];
    let offset = packetType === 1 ? 8 : 5;
    while (offset + 4 <= data.length) {
      const length = data.readUInt32BE(offset);
      offset += 4;
      if (length === 0 || offset + length > data.length) break;
      parts.push(START_CODE, data.subarray(offset, offset + length));
      offset += length;
    }
    return Buffer.concat(parts);
  }
}

/** The NAL units of an HEVCDecoderConfigurationRecord's arrays (ISO/IEC 14496-15 §8.3.3.1). */
export function parameterSetsOfRecord(record: Buffer): Buffer[] {
  const nalus: Buffer[] = [];
  if (record.length < 23) return nalus;
  let offset = 23;
  for (let array = 0; array < record[22] && offset + 3 <= record.length; array += 1) {
    const count = record.readUInt16BE(offset + 1);
    offset += 3;
    for (let i = 0; i < count && offset + 2 <= record.length; i += 1) {
      const length = record.readUInt16BE(offset);
      offset += 2;
      if (offset + length > record.length) return nalus;
      nalus.push(Buffer.from(record.subarray(offset, offset + length)));
      offset += length;
    }
  }
  return nalus;
}

export interface TranscodeSetOptions {
  max: number;
  /** Taps the channel's forward (undefined when it has none). */
  tap: (channelId: string, listener: (tag: FlvTag) => void) => (() => void) | undefined;
  frameRateOf: (channelId: string) => number | undefined;
  openPublisher: (streamName: string) => FlvPublisher;
  /** Players on the channel's H.264 stream now. */
  viewersOf: (channelId: string) => number;
  log: (message: string, fields: Record<string, unknown>) => void;
}

interface Transcode {
  channelId: string;
  ffmpeg: ChildProcess;
  untap: () => void;
  publisher: FlvPublisher | null;
  idleSince: number;
  ready: Promise<void>;
  /** Broker sessions this transcode plays for. */
  holders: Set<string>;
}

/** ffmpeg's arguments: Annex-B H.265 at the camera's frame rate in, H.264 FLV out, tuned for live. */
export function transcodeArgs(frameRate: number): string[] {
  const fps = String(Math.max(1, Math.min(60, Math.round(frameRate))));
  return [
    // A raw stream needs no 5 s of analysis (the default): its first keyframe carries VPS/SPS/PPS.
    '-probesize', '65536', '-analyzeduration', '0', '-f', 'hevc', '-framerate', fps, '-i', 'pipe:0',
    '-map', '0:v', '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p',
    '-g', String(Number(fps) * 2), '-f', 'flv', 'pipe:1',
  ];
}

export class TranscodeSet {
  readonly #running = new Map<string, Transcode>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(private readonly options: TranscodeSetOptions) {
    this.#sweeper = setInterval(() => this.#sweep(), 1000);
    this.#sweeper.unref();
  }

  get count(): number {
    return this.#running.size;
  }

  /** Starts (or shares) the channel's transcode for `sessionId`, if given; resolves once H.264 is published. */
  ensure(channelId: string, sessionId?: string): Promise<void> {
    const running = this.#running.get(channelId);
    if (running) {
      running.idleSince = Date.now();
      if (sessionId !== undefined) running.holders.add(sessionId);
      return running.ready;
    }
    if (this.#running.size >= this.options.max) return Promise.reject(new TranscodeCapacityError(this.options.max));
    const writer = new HevcAnnexBWriter();
    const ffmpeg = spawnFfmpeg(transcodeArgs(this.options.frameRateOf(channelId) ?? 25), { stdin: true, stdout: true });
    const stderrTail = captureStderrTail(ffmpeg);
    ffmpeg.stdin?.on('error', () => undefined);
    const untap = this.options.tap(channelId, (tag) => {
      const bytes = writer.push(tag);
      // A transcoder that cannot keep up loses frames rather than grow the node's memory.
      if (bytes && ffmpeg.stdin && ffmpeg.stdin.writableLength < 8 * 1024 * 1024) ffmpeg.stdin.write(bytes);
    });
    if (!untap) {
      ffmpeg.kill('SIGKILL');
      return Promise.reject(new Error(`channel ${channelId} has no forward on this node`));
    }
    let resolveReady!: () => void;
    let rejectReady!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    ready.catch(() => undefined);
    const holders = new Set(sessionId === undefined ? [] : [sessionId]);
    const transcode: Transcode = { channelId, ffmpeg, untap, publisher: null, idleSince: Date.now(), ready, holders };
    this.#running.set(channelId, transcode);
    ffmpeg.stdout?.on('data', (chunk: Buffer) => {
      try {
        transcode.publisher ??= this.options.openPublisher(`${channelId}${TRANSCODE_SUFFIX}`);
        transcode.publisher.feed(chunk);
        if (transcode.publisher.keyframes > 0) resolveReady();
      } catch (error) {
        this.options.log('transcode output refused', { channelId, err: (error as Error).message });
        ffmpeg.kill('SIGKILL');
      }
    });
    const deadline = setTimeout(() => {
      rejectReady(new Error(`no H.264 from the transcoder of ${channelId} within ${TRANSCODE_START_TIMEOUT_MS} ms`));
      this.#end(transcode);
    }, TRANSCODE_START_TIMEOUT_MS);
    void ready.then(() => clearTimeout(deadline), () => clearTimeout(deadline));
    ffmpeg.once('exit', () => {
      rejectReady(new Error(`the transcoder of ${channelId} exited: ${stderrTail()}`));
      this.#end(transcode);
    });
    return ready;
  }

  /** The session ended: a transcode it was the last holder of stops now. */
  release(sessionId: string): void {
    for (const transcode of [...this.#running.values()]) {
      if (!transcode.holders.delete(sessionId) || transcode.holders.size > 0) continue;
      this.options.log('transcode stopped: its last session ended', { channelId: transcode.channelId });
      this.#end(transcode);
    }
  }

  /** Stops the channel's transcode (its forward ended). */
  stop(channelId: string): void {
    const transcode = this.#running.get(channelId);
    if (transcode) this.#end(transcode);
  }

  async stopAll(): Promise<void> {
    clearInterval(this.#sweeper);
    const all = [...this.#running.values()];
    for (const transcode of all) this.#end(transcode);
    await Promise.all(all.map((t) => stopChild(t.ffmpeg)));
  }

  #sweep(): void {
    const now = Date.now();
    for (const transcode of [...this.#running.values()]) {
      if (this.options.viewersOf(transcode.channelId) > 0) transcode.idleSince = now;
      else if (now - transcode.idleSince >= (transcode.holders.size > 0 ? TRANSCODE_HELD_IDLE_MS : TRANSCODE_IDLE_MS)) {
        this.options.log('transcode stopped: no viewer', { channelId: transcode.channelId });
        this.#end(transcode);
      }
    }
  }

  #end(transcode: Transcode): void {
    if (this.#running.get(transcode.channelId) !== transcode) return;
    this.#running.delete(transcode.channelId);
    transcode.untap();
    transcode.publisher?.close();
    void stopChild(transcode.ffmpeg);
  }
}
