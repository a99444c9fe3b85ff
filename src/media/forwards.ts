/**
 * The forwards of one media node: for each channel, an in-process relay (relays.ts) that pulls the camera
 * source and publishes it through the channel's in-process publisher (flv-publisher.ts), guarded by the
 * channel's fencing token. No process per channel, and no publish secret: nothing outside this process
 * can publish, so none is needed.
 *
 * Lifecycle: starting (until the first video keyframe reaches node-media-server, or the source timeout)
 * → live ⇄ retrying (the source dropped; a few attempts with backoff) → ended (stopped, replaced by a
 * newer fence, or failed). A failure after the start is recorded so the broker learns it from GET /load.
 *
 * A GB/T 28181 channel is pushed, not pulled: `openRtp` opens an RTP port (rtp-ps-source.ts) with an SSRC unique on
 * this node, the broker INVITEs the device to it, and the forward goes live on the first picture. It is not
 * retried (only the broker can INVITE again): RTP silence after the start is a failure like a lost relay.
 */
import { SourceUnavailableError } from '../core/ports.js';
import { FLV_TAG_VIDEO, type FlvPublisher, type FlvTag, type SourceCodec } from './flv-publisher.js';
import { startRelay, type Relay } from './relays.js';
import type { RtspTransport } from './rtsp-client.js';
import { RtpPsSource, type RtpLimits } from './rtp-ps-source.js';
import type { RtpTransport } from './rtp-receiver.js';

export type ForwardState = 'starting' | 'live' | 'retrying' | 'ended';

export interface ForwardSummary {
  channelId: string;
  fence: number;
  state: ForwardState;
  /** The camera's video codec, once its first video reached the publisher. */
  codec?: SourceCodec;
}

export interface ForwardFailure {
  /** Increases with every failure this node process records; lets pollers skip what they have seen. */
  seq: number;
  channelId: string;
  fence: number;
  reason: 'source-lost';
  at: number;
}

/** The request carried a fence older than the one this node already holds for the channel. */
export class StaleFenceError extends Error {
  constructor(channelId: string, fence: number, current: number) {
    super(`fence ${fence} of channel ${channelId} is older than ${current}`);
    this.name = 'StaleFenceError';
  }
}

/** The forward was stopped or replaced by a newer fence before its source came up. */
export class ForwardSupersededError extends Error {
  constructor(channelId: string, fence: number) {
    super(`forward ${channelId}#${fence} ended before its source came up`);
    this.name = 'ForwardSupersededError';
  }
}

export interface ForwardSetOptions {
  /** Claims the channel's stream path for one relay run (throws if another publisher holds it). */
  openPublisher: (channelId: string) => FlvPublisher;
  sourceTimeoutMs: number;
  /** RTSP transport for sources whose URL does not choose one. */
  rtspTransport: RtspTransport;
  /** Relay restarts allowed after the forward went live, before it is reported failed. */
  maxRetries: number;
  /** First retry delay; doubles per attempt. */
  retryBaseMs: number;
  /** A relay that stayed live this long gets its retry budget back. */
  stableMs: number;
  onEnded: (channelId: string, fence: number) => void;
  log: (message: string, fields: Record<string, unknown>) => void;
  /** RTP ports for GB/T 28181 streams. */
  rtp: RtpLimits;
}

/** GB/T 28181 Annex F: the last 4 of the SSRC's 10 digits tell a node's streams apart. */
const SSRC_INDEXES = 10_000;
const SSRC_PREFIX = /^[01][0-9]{5}$/;

/** Every SSRC index of this node is in use. */
export class RtpPortsExhaustedError extends Error {
  constructor() {
    super('no free SSRC on this media node');
    this.name = 'RtpPortsExhaustedError';
  }
}

export interface RtpServer {
  port: number;
  /** The 10-digit SSRC to offer (y= line); the port accepts no other. */
  ssrc: string;
}

interface Forward extends ForwardSummary {
  sourceUrl: string;
  relay: Relay | null;
  rtp: { source: RtpPsSource; server: RtpServer; index: number } | null;
  publisher: FlvPublisher | null;
  attempts: number;
  liveSince: number;
  ready: Promise<ForwardSummary>;
  resolveReady: (summary: ForwardSummary) => void;
  rejectReady: (error: Error) => void;
  timers: Set<NodeJS.Timeout>;
  /** In-process readers of the forward's tags (transcoders), across relay restarts. */
  taps: Set<(tag: FlvTag) => void>;
  /** Timestamps of the last video frames, for the frame rate a transcoder is told. */
  frameTimes: number[];
  /** The last video sequence header: a tap that joins late needs it before any frame. */
  videoHeader: FlvTag | null;
}

const MAX_FAILURES_KEPT = 200;
const FRAME_TIMES_KEPT = 16;

export class ForwardSet {
  readonly #forwards = new Map<string, Forward>();
  /** Highest fence ever given per channel: older ones are refused even after the forward ended. */
  readonly #latestFence = new Map<string, number>();
  readonly #failures: ForwardFailure[] = [];
  #failureSeq = 0;
  readonly #ssrcIndexes = new Set<number>();

  constructor(private readonly options: ForwardSetOptions) {}

  /** Resolves once media flows; idempotent for the current fence; a newer fence replaces the forward. */
  start(channelId: string, sourceUrl: string, fence: number): Promise<ForwardSummary> {
    const current = this.#current(channelId, fence);
    if (current instanceof Error) return Promise.reject(current);
    if (current) return current.ready;
    const forward = this.#create(channelId, sourceUrl, fence);
    this.#spawnRelay(forward);
    return forward.ready;
  }

  /**
   * Opens the RTP port of a GB/T 28181 forward and returns it with its SSRC (`ssrcPrefix`: the SSRC's first 6
   * digits, from the realm); idempotent for the current fence. `awaitStart` then waits for the first picture.
   */
  async openRtp(channelId: string, fence: number, transport: RtpTransport, ssrcPrefix: string): Promise<RtpServer> {
    if (!SSRC_PREFIX.test(ssrcPrefix)) throw new RangeError('an SSRC prefix is 6 digits, the first 0 or 1');
    const current = this.#current(channelId, fence);
    if (current instanceof Error) throw current;
    if (current?.rtp) return current.rtp.server;
    if (current) throw new ForwardSupersededError(channelId, fence);
    const index = this.#allocateSsrcIndex();
    const ssrc = `${ssrcPrefix}${String(index).padStart(4, '0')}`;
    const forward = this.#create(channelId, `gb28181:${transport}`, fence);
    const source = new RtpPsSource({
      ...this.options.rtp,
      transport,
      ssrc: Number(ssrc),
      openPublisher: () => {
        forward.publisher = this.options.openPublisher(channelId);
        return forward.publisher;
      },
      onLive: () => this.#markLive(forward),
      onFailed: (reason) => {
        if (forward.state === 'ended') return;
        this.options.log('GB/T 28181 stream failed', { channelId, fence, reason });
        if (forward.state === 'live') {
          this.#recordFailure(forward);
          this.#end(forward);
        } else this.#end(forward, new SourceUnavailableError(`the GB/T 28181 stream of ${channelId} failed: ${reason}`));
      },
    });
    forward.rtp = { source, server: { port: 0, ssrc }, index };
    try {
      forward.rtp.server.port = await source.listen();
    } catch (error) {
      this.#end(forward);
      throw error;
    }
    return forward.rtp.server;
  }

  /** Resolves once the channel's forward of this fence is live (a GB/T 28181 forward after `openRtp`). */
  awaitStart(channelId: string, fence: number): Promise<ForwardSummary> {
    const current = this.#current(channelId, fence);
    if (current instanceof Error) return Promise.reject(current);
    if (!current) return Promise.reject(new ForwardSupersededError(channelId, fence));
    return current.ready;
  }

  /** The forward of this fence (undefined: none yet, so one may be created), or the error a stale fence gets. */
  #current(channelId: string, fence: number): Forward | Error | undefined {
    const latest = this.#latestFence.get(channelId);
    if (latest !== undefined && fence < latest) return new StaleFenceError(channelId, fence, latest);
    const current = this.#forwards.get(channelId);
    if (current && current.fence === fence) return current;
    if (current) this.#end(current);
    return undefined;
  }

  #create(channelId: string, sourceUrl: string, fence: number): Forward {
    this.#latestFence.set(channelId, fence);
    let resolveReady!: (summary: ForwardSummary) => void;
    let rejectReady!: (error: Error) => void;
    const ready = new Promise<ForwardSummary>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    // Callers may all have gone away (client disconnect); the rejection is still theirs to see, not unhandled.
    ready.catch(() => undefined);
    const forward: Forward = {
      channelId,
      fence,
      sourceUrl,
      state: 'starting',
      relay: null,
      rtp: null,
      publisher: null,
      attempts: 0,
      liveSince: 0,
      ready,
      resolveReady,
      rejectReady,
      timers: new Set(),
      taps: new Set(),
      frameTimes: [],
      videoHeader: null,
    };
    this.#forwards.set(channelId, forward);
    this.#after(forward, this.options.sourceTimeoutMs, () => {
      if (forward.state !== 'starting') return;
      this.options.log('source sent nothing in time', { channelId, fence });
      this.#end(forward, new SourceUnavailableError(`no media from the source of ${channelId} within the timeout`));
    });
    return forward;
  }

  /** A random free index: SSRCs are guessable by design (realm digits), their order need not be. */
  #allocateSsrcIndex(): number {
    if (this.#ssrcIndexes.size >= SSRC_INDEXES) throw new RtpPortsExhaustedError();
    let index = Math.floor(Math.random() * SSRC_INDEXES);
    while (this.#ssrcIndexes.has(index)) index = (index + 1) % SSRC_INDEXES;
    this.#ssrcIndexes.add(index);
    return index;
  }

  /** What the channel's RTP port has seen (accepted, refused by SSRC or peer, lost), if it has one. */
  rtpStats(channelId: string): (RtpServer & RtpPsSource['stats']) | undefined {
    const rtp = this.#forwards.get(channelId)?.rtp;
    return rtp ? { ...rtp.server, ...rtp.source.stats } : undefined;
  }

  /** SSRC indexes in use (tests check they are freed). */
  get ssrcsInUse(): number {
    return this.#ssrcIndexes.size;
  }

  /** Stops the channel's forward if `fence` is current; 'absent' when there is none (idempotent). */
  stop(channelId: string, fence: number): 'stopped' | 'absent' {
    const forward = this.#forwards.get(channelId);
    const latest = this.#latestFence.get(channelId);
    if (latest !== undefined && fence < latest) throw new StaleFenceError(channelId, fence, latest);
    if (!forward) return 'absent';
    this.#end(forward);
    return 'stopped';
  }

  /**
   * Every tag the channel's forward publishes from now on goes to `listener` too, until the returned
   * function is called or the forward ends. Undefined when the channel has no live forward.
   */
  tap(channelId: string, listener: (tag: FlvTag) => void): (() => void) | undefined {
    const forward = this.#forwards.get(channelId);
    if (!forward || forward.state === 'ended') return undefined;
    if (forward.videoHeader) listener(forward.videoHeader);
    forward.taps.add(listener);
    return () => forward.taps.delete(listener);
  }

  /** Video frames per second the channel's camera sends, from the last frames' timestamps (undefined: too few yet). */
  frameRateOf(channelId: string): number | undefined {
    const times = this.#forwards.get(channelId)?.frameTimes ?? [];
    if (times.length < 2) return undefined;
    const span = times[times.length - 1] - times[0];
    return span > 0 ? ((times.length - 1) * 1000) / span : undefined;
  }

  /** Fence of the channel's forward, if this node has one. */
  fenceOf(channelId: string): number | undefined {
    return this.#forwards.get(channelId)?.fence;
  }

  list(): ForwardSummary[] {
    return [...this.#forwards.values()].map(summaryOf);
  }

  failures(): ForwardFailure[] {
    return [...this.#failures];
  }

  stopAll(): void {
    for (const forward of [...this.#forwards.values()]) this.#end(forward);
  }

  #spawnRelay(forward: Forward): void {
    let publisher: FlvPublisher | null = null;
    const relay = startRelay(
      forward.sourceUrl,
      { timeoutMs: this.options.sourceTimeoutMs, rtspTransport: this.options.rtspTransport },
      {
        output: () => {
          publisher = forward.publisher = this.options.openPublisher(forward.channelId);
          const claimed = publisher;
          claimed.subscribe((tag) => {
            if (isVideoFrame(tag) && forward.frameTimes.push(tag.timestamp) > FRAME_TIMES_KEPT) forward.frameTimes.shift();
            else if (tag.type === FLV_TAG_VIDEO && !isVideoFrame(tag)) forward.videoHeader = { type: tag.type, timestamp: tag.timestamp, data: Buffer.from(tag.data) }; // kept: its own copy, not a view of a read (nor of a tag slab: no `encoded`)
            for (const listener of forward.taps) listener(tag);
          });
          return {
            writeTag: (tag) => {
              claimed.writeTag(tag);
              this.#progress(forward, claimed);
            },
            feed: (chunk) => {
              claimed.feed(chunk);
              this.#progress(forward, claimed);
            },
          };
        },
        onExit: (reason) => {
          (publisher as FlvPublisher | null)?.close();
          if (forward.relay !== relay) return;
          forward.relay = null;
          forward.publisher = null;
          this.#relayExited(forward, reason);
        },
      },
    );
    forward.relay = relay;
  }

  #progress(forward: Forward, publisher: FlvPublisher): void {
    forward.codec = publisher.codec ?? forward.codec;
    if (forward.state !== 'live' && forward.state !== 'ended' && publisher.keyframes > 0) this.#markLive(forward);
  }

  #relayExited(forward: Forward, reason: string): void {
    if (forward.state === 'ended') return;
    const { channelId, fence } = forward;
    if (forward.state === 'starting') {
      // Keep trying until the source timeout decides; a camera may need a moment to accept.
      this.#after(forward, this.options.retryBaseMs, () => this.#spawnRelay(forward));
      return;
    }
    if (forward.state === 'live' && Date.now() - forward.liveSince >= this.options.stableMs) forward.attempts = 0;
    forward.attempts += 1;
    this.options.log('relay exited', { channelId, fence, attempt: forward.attempts, reason });
    if (forward.attempts > this.options.maxRetries) {
      this.#recordFailure(forward);
      this.#end(forward);
      return;
    }
    forward.state = 'retrying';
    const delay = this.options.retryBaseMs * 2 ** (forward.attempts - 1);
    this.#after(forward, delay, () => this.#spawnRelay(forward));
  }

  #markLive(forward: Forward): void {
    if (forward.state === 'ended') return;
    forward.state = 'live';
    forward.liveSince = Date.now();
    forward.resolveReady(summaryOf(forward));
  }

  #recordFailure(forward: Forward): void {
    this.#failureSeq += 1;
    this.#failures.push({
      seq: this.#failureSeq,
      channelId: forward.channelId,
      fence: forward.fence,
      reason: 'source-lost',
      at: Date.now(),
    });
    if (this.#failures.length > MAX_FAILURES_KEPT) this.#failures.shift();
  }

  #end(forward: Forward, startError?: Error): void {
    if (forward.state === 'ended') return;
    forward.state = 'ended';
    for (const timer of forward.timers) clearTimeout(timer);
    forward.timers.clear();
    forward.relay?.stop();
    forward.relay = null;
    forward.taps.clear();
    if (forward.rtp) {
      forward.rtp.source.close();
      this.#ssrcIndexes.delete(forward.rtp.index);
      forward.rtp = null;
    }
    forward.publisher?.close();
    forward.publisher = null;
    if (this.#forwards.get(forward.channelId) === forward) this.#forwards.delete(forward.channelId);
    forward.rejectReady(startError ?? new ForwardSupersededError(forward.channelId, forward.fence));
    this.options.onEnded(forward.channelId, forward.fence);
  }

  #after(forward: Forward, ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      forward.timers.delete(timer);
      run();
    }, ms);
    forward.timers.add(timer);
  }
}

function summaryOf({ channelId, fence, state, codec }: ForwardSummary): ForwardSummary {
  return codec === undefined ? { channelId, fence, state } : { channelId, fence, state, codec };
}

/** A coded picture (not a sequence header): AVCPacketType 1, or an ExVideoTagHeader's CodedFrames(X). */
function isVideoFrame(tag: FlvTag): boolean {
  if (tag.type !== FLV_TAG_VIDEO || tag.data.length < 2) return false;
  if ((tag.data[0] & 0x80) !== 0) return (tag.data[0] & 0x0f) === 1 || (tag.data[0] & 0x0f) === 3;
  return tag.data[1] === 1;
}
