/**
 * The forwards of one media node: for each channel, an ffmpeg relay that pulls the camera source and
 * writes FLV to its stdout, which the node publishes in-process (flv-publisher.ts), guarded by the
 * channel's fencing token. No publish secret exists: nothing outside this process can publish, so none is
 * needed, and none lands on a command line.
 *
 * Lifecycle: starting (until the first video keyframe reaches node-media-server, or the source timeout)
 * → live ⇄ retrying (the source dropped; a few attempts with backoff) → ended (stopped, replaced by a
 * newer fence, or failed). A failure after the start is recorded so the broker learns it from GET /load.
 */
import type { ChildProcess } from 'node:child_process';
import { SourceUnavailableError } from '../core/ports.js';
import { captureStderrTail, spawnFfmpeg, stopChild } from './ffmpeg.js';
import type { FlvPublisher } from './flv-publisher.js';
import { RELAY_OUTPUT, relayArgs } from './relay-args.js';

export type ForwardState = 'starting' | 'live' | 'retrying' | 'ended';

export interface ForwardSummary {
  channelId: string;
  fence: number;
  state: ForwardState;
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
  /** Relay restarts allowed after the forward went live, before it is reported failed. */
  maxRetries: number;
  /** First retry delay; doubles per attempt. */
  retryBaseMs: number;
  /** A relay that stayed live this long gets its retry budget back. */
  stableMs: number;
  onEnded: (channelId: string, fence: number) => void;
  log: (message: string, fields: Record<string, unknown>) => void;
}

interface Forward extends ForwardSummary {
  sourceUrl: string;
  relay: ChildProcess | null;
  publisher: FlvPublisher | null;
  attempts: number;
  liveSince: number;
  ready: Promise<void>;
  resolveReady: () => void;
  rejectReady: (error: Error) => void;
  timers: Set<NodeJS.Timeout>;
}

const MAX_FAILURES_KEPT = 200;

export class ForwardSet {
  readonly #forwards = new Map<string, Forward>();
  /** Highest fence ever given per channel: older ones are refused even after the forward ended. */
  readonly #latestFence = new Map<string, number>();
  readonly #failures: ForwardFailure[] = [];
  #failureSeq = 0;

  constructor(private readonly options: ForwardSetOptions) {}

  /** Resolves once media flows; idempotent for the current fence; a newer fence replaces the forward. */
  start(channelId: string, sourceUrl: string, fence: number): Promise<void> {
    const latest = this.#latestFence.get(channelId);
    if (latest !== undefined && fence < latest) return Promise.reject(new StaleFenceError(channelId, fence, latest));
    const current = this.#forwards.get(channelId);
    if (current && current.fence === fence) return current.ready;
    if (current) this.#end(current);
    this.#latestFence.set(channelId, fence);

    let resolveReady!: () => void;
    let rejectReady!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
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
      publisher: null,
      attempts: 0,
      liveSince: 0,
      ready,
      resolveReady,
      rejectReady,
      timers: new Set(),
    };
    this.#forwards.set(channelId, forward);
    this.#after(forward, this.options.sourceTimeoutMs, () => {
      if (forward.state !== 'starting') return;
      this.options.log('source sent nothing in time', { channelId, fence });
      this.#end(forward, new SourceUnavailableError(`no media from the source of ${channelId} within the timeout`));
    });
    this.#spawnRelay(forward);
    return ready;
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

  /** Fence of the channel's forward, if this node has one. */
  fenceOf(channelId: string): number | undefined {
    return this.#forwards.get(channelId)?.fence;
  }

  list(): ForwardSummary[] {
    return [...this.#forwards.values()].map(({ channelId, fence, state }) => ({ channelId, fence, state }));
  }

  failures(): ForwardFailure[] {
    return [...this.#failures];
  }

  async stopAll(): Promise<void> {
    const relays = [...this.#forwards.values()].map((f) => f.relay).filter((r): r is ChildProcess => r !== null);
    for (const forward of [...this.#forwards.values()]) this.#end(forward);
    await Promise.all(relays.map((relay) => stopChild(relay)));
  }

  #spawnRelay(forward: Forward): void {
    const relay = spawnFfmpeg(relayArgs(forward.sourceUrl, RELAY_OUTPUT, this.options.sourceTimeoutMs), { stdout: true });
    forward.relay = relay;
    const stderrTail = captureStderrTail(relay);
    let publisher: FlvPublisher | null = null;
    let streamError = '';
    relay.stdout?.on('data', (chunk: Buffer) => {
      if (forward.relay !== relay) return;
      try {
        // Claimed on the first byte, so a relay that never sends holds no stream path.
        publisher ??= forward.publisher = this.options.openPublisher(forward.channelId);
        publisher.feed(chunk);
      } catch (error) {
        streamError = (error as Error).message;
        relay.stdout?.removeAllListeners('data');
        relay.kill('SIGKILL');
        return;
      }
      if (forward.state !== 'live' && forward.state !== 'ended' && publisher.keyframes > 0) this.#markLive(forward);
    });
    const onGone = () => {
      publisher?.close();
      if (forward.relay !== relay) return;
      forward.relay = null;
      forward.publisher = null;
      this.#relayExited(forward, streamError || stderrTail());
    };
    relay.once('exit', onGone);
    relay.once('error', onGone);
  }

  #relayExited(forward: Forward, stderrTail: string): void {
    if (forward.state === 'ended') return;
    const { channelId, fence } = forward;
    if (forward.state === 'starting') {
      // Keep trying until the source timeout decides; a camera may need a moment to accept.
      this.#after(forward, this.options.retryBaseMs, () => this.#spawnRelay(forward));
      return;
    }
    if (forward.state === 'live' && Date.now() - forward.liveSince >= this.options.stableMs) forward.attempts = 0;
    forward.attempts += 1;
    this.options.log('relay exited', { channelId, fence, attempt: forward.attempts, ffmpeg: stderrTail });
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
    forward.resolveReady();
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
    if (forward.relay) void stopChild(forward.relay);
    forward.relay = null;
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
