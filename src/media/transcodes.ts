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
 *
 * A transcoder that dies after it went live while its viewers still want it (a holder session, or a player
 * on its stream) is restarted after a backoff (TRANSCODE_RESTART_BASE_MS, doubling, at most
 * TRANSCODE_RESTART_MAX_DELAY_MS); its viewers stay connected meanwhile (NMS resumes the path's timeline for
 * the same in-process publisher). More than `maxRestarts` deaths within `restartWindowMs`
 * (MEDIA_TRANSCODE_MAX_RESTARTS per MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS) and it is given up: `onFailed`
 * names its holder sessions, which the broker ends `source-failed`, as it does those of a failed source.
 */
import type { ChildProcess } from 'node:child_process';
import { captureStderrTail, spawnFfmpeg, stopChild } from './ffmpeg.js';
import { FLV_TAG_VIDEO, type FlvPublisher, type FlvTag } from './flv-publisher.js';
import { DEFAULT_TRANSCODE_MAX_RESTARTS, DEFAULT_TRANSCODE_RESTART_WINDOW_MS } from './media-node-config.js';
import { TRANSCODE_SUFFIX } from './player-gate.js';

/** A transcode nobody watches is stopped after this (its first viewer gets as long to arrive). */
export const TRANSCODE_IDLE_MS = 15_000;
/** Two lease TTLs (BROKER_LEASE_TTL_SECONDS default 30): a held session that plays nothing this long has lapsed. */
export const TRANSCODE_HELD_IDLE_MS = 60_000;
/** A transcoder's first H.264 keyframe comes within a GOP or two of the camera's. */
const TRANSCODE_START_TIMEOUT_MS = 15_000;
/** First restart delay of a dead transcoder; doubles with each restart in the window. */
export const TRANSCODE_RESTART_BASE_MS = 250;
export const TRANSCODE_RESTART_MAX_DELAY_MS = 4000;

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
  /** Restarts of a live transcoder allowed within `restartWindowMs` before it is given up. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** A live transcode was given up (it kept dying): the sessions it played for, to end `source-failed`. */
  onFailed?: (channelId: string, sessionIds: string[]) => void;
  /** Cut the players of the channel's H.264 stream (its transcode was given up). */
  cutViewers?: (channelId: string) => void;
}

/** One ffmpeg run of a transcode; a restart is a new run. */
interface TranscodeRun {
  ffmpeg: ChildProcess;
  untap: () => void;
  publisher: FlvPublisher | null;
  /** A restarted run that publishes no keyframe in time is killed (and counts as another death). */
  deadline: NodeJS.Timeout | null;
}

interface Transcode {
  channelId: string;
  run: TranscodeRun | null;
  /** Published an H.264 keyframe once (from then on, a death is restarted). */
  live: boolean;
  idleSince: number;
  ready: Promise<void>;
  resolveReady: () => void;
  rejectReady: (error: Error) => void;
  /** Broker sessions this transcode plays for. */
  holders: Set<string>;
  /** When the transcoder died and was restarted, within the restart window. */
  restarts: number[];
  restartTimer: NodeJS.Timeout | null;
  startDeadline: NodeJS.Timeout | null;
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
  readonly #maxRestarts: number;
  readonly #restartWindowMs: number;

  constructor(private readonly options: TranscodeSetOptions) {
    this.#maxRestarts = options.maxRestarts ?? DEFAULT_TRANSCODE_MAX_RESTARTS;
    this.#restartWindowMs = options.restartWindowMs ?? DEFAULT_TRANSCODE_RESTART_WINDOW_MS;
    this.#sweeper = setInterval(() => this.#sweep(), 1000);
    this.#sweeper.unref();
  }

  get count(): number {
    return this.#running.size;
  }

  /** Process id of the channel's current transcoder (tests, benches); undefined while none runs. */
  pidOf(channelId: string): number | undefined {
    return this.#running.get(channelId)?.run?.ffmpeg.pid;
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
    let resolveReady!: () => void;
    let rejectReady!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    ready.catch(() => undefined);
    const transcode: Transcode = {
      channelId,
      run: null,
      live: false,
      idleSince: Date.now(),
      ready,
      resolveReady,
      rejectReady,
      holders: new Set(sessionId === undefined ? [] : [sessionId]),
      restarts: [],
      restartTimer: null,
      startDeadline: null,
    };
    this.#running.set(channelId, transcode);
    if (!this.#startRun(transcode)) {
      this.#running.delete(channelId);
      return Promise.reject(new Error(`channel ${channelId} has no forward on this node`));
    }
    transcode.startDeadline = setTimeout(() => {
      rejectReady(new Error(`no H.264 from the transcoder of ${channelId} within ${TRANSCODE_START_TIMEOUT_MS} ms`));
      this.#end(transcode);
    }, TRANSCODE_START_TIMEOUT_MS);
    return ready;
  }

  /** Spawns a transcoder run for `transcode`; false when the channel has no forward to tap. */
  #startRun(transcode: Transcode): boolean {
    const { channelId } = transcode;
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
      return false;
    }
    const run: TranscodeRun = { ffmpeg, untap, publisher: null, deadline: null };
    transcode.run = run;
    if (transcode.live) {
      run.deadline = setTimeout(() => {
        this.options.log('restarted transcoder sent no keyframe in time', { channelId, timeoutMs: TRANSCODE_START_TIMEOUT_MS });
        ffmpeg.kill('SIGKILL');
      }, TRANSCODE_START_TIMEOUT_MS);
    }
    ffmpeg.stdout?.on('data', (chunk: Buffer) => {
      if (transcode.run !== run) return;
      try {
        // A restarted run resumes the same path (same in-process publisher kind): NMS keeps the viewers and
        // continues their timeline past the last run's timestamps.
        run.publisher ??= this.options.openPublisher(`${channelId}${TRANSCODE_SUFFIX}`);
        run.publisher.feed(chunk);
        if (run.deadline && run.publisher.keyframes > 0) {
          clearTimeout(run.deadline);
          run.deadline = null;
        }
        if (run.publisher.keyframes > 0 && !transcode.live) {
          transcode.live = true;
          if (transcode.startDeadline) clearTimeout(transcode.startDeadline);
          transcode.startDeadline = null;
          transcode.resolveReady();
        }
      } catch (error) {
        this.options.log('transcode output refused', { channelId, err: (error as Error).message });
        ffmpeg.kill('SIGKILL');
      }
    });
    ffmpeg.once('exit', (code, signal) => {
      if (transcode.run !== run) return;
      this.#endRun(transcode);
      if (this.#running.get(channelId) !== transcode) return;
      const why = `the transcoder of ${channelId} exited (${signal ?? `code ${code}`}): ${stderrTail()}`;
      if (!transcode.live) {
        transcode.rejectReady(new Error(why));
        this.#end(transcode);
        return;
      }
      this.#restartOrFail(transcode, why);
    });
    return true;
  }

  /** A live transcoder died: restart it after a backoff while it is wanted, within the restart limit. */
  #restartOrFail(transcode: Transcode, why: string): void {
    const { channelId } = transcode;
    if (transcode.holders.size === 0 && this.options.viewersOf(channelId) === 0) {
      this.options.log('transcoder exited with no viewer left', { channelId, why });
      this.#end(transcode);
      return;
    }
    const now = Date.now();
    transcode.restarts = transcode.restarts.filter((at) => now - at < this.#restartWindowMs);
    if (transcode.restarts.length >= this.#maxRestarts) {
      const sessionIds = [...transcode.holders];
      this.options.log('transcode failed: it kept dying', { channelId, restarts: transcode.restarts.length, windowMs: this.#restartWindowMs, why, sessionIds });
      this.#end(transcode);
      this.options.cutViewers?.(channelId);
      this.options.onFailed?.(channelId, sessionIds);
      return;
    }
    const delay = Math.min(TRANSCODE_RESTART_MAX_DELAY_MS, TRANSCODE_RESTART_BASE_MS * 2 ** transcode.restarts.length);
    transcode.restarts.push(now);
    this.options.log('transcoder exited; restarting', { channelId, attempt: transcode.restarts.length, delayMs: delay, why });
    transcode.restartTimer = setTimeout(() => {
      transcode.restartTimer = null;
      if (this.#running.get(channelId) !== transcode) return;
      if (!this.#startRun(transcode)) {
        // The forward is gone (it ends the transcode itself when it ends): nothing left to transcode.
        this.#end(transcode);
        this.options.cutViewers?.(channelId);
        this.options.onFailed?.(channelId, [...transcode.holders]);
      }
    }, delay);
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
    const children = all.flatMap((t) => (t.run ? [t.run.ffmpeg] : []));
    for (const transcode of all) this.#end(transcode);
    await Promise.all(children.map((child) => stopChild(child)));
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

  /** Stops the current run (its tap, its publisher, its ffmpeg); the transcode itself goes on. */
  #endRun(transcode: Transcode): void {
    const run = transcode.run;
    if (!run) return;
    transcode.run = null;
    if (run.deadline) clearTimeout(run.deadline);
    run.untap();
    run.publisher?.close();
    void stopChild(run.ffmpeg);
  }

  #end(transcode: Transcode): void {
    if (this.#running.get(transcode.channelId) !== transcode) return;
    this.#running.delete(transcode.channelId);
    if (transcode.restartTimer) clearTimeout(transcode.restartTimer);
    if (transcode.startDeadline) clearTimeout(transcode.startDeadline);
    transcode.rejectReady(new Error(`the transcode of ${transcode.channelId} ended`));
    this.#endRun(transcode);
  }
}
