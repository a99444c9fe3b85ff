/**
 * A GB/T 28181 stream's way into a media node: its RTP port (rtp-receiver.ts) → PS demuxer → FLV muxer →
 * the channel's in-process publisher. No process, no copy of the stream beyond one picture.
 * The publisher is claimed on the first picture that can be published (a keyframe with its parameter sets), so a
 * port that only ever receives garbage holds no stream path.
 */
import { FlvVideoMuxer, type VideoCodec } from './flv-mux.js';
import type { FlvPublisher } from './flv-publisher.js';
import { PsDemuxer } from './ps-demux.js';
import { RtpReceiver, type RtpReceiverStats, type RtpTransport } from './rtp-receiver.js';

export interface RtpLimits {
  /** Address the RTP ports listen on (and the SDP offers). */
  host: string;
  reorderWindowPackets: number;
  reorderWaitMs: number;
  silenceMs: number;
}

export interface RtpPsSourceOptions extends RtpLimits {
  transport: RtpTransport;
  ssrc: number;
  openPublisher: () => FlvPublisher;
  /** The first picture is published (the forward is live). */
  onLive: () => void;
  /** No RTP for `silenceMs`, or the stream broke the publisher. */
  onFailed: (reason: string) => void;
}

export class RtpPsSource {
  readonly #receiver: RtpReceiver;
  readonly #demuxer = new PsDemuxer();
  #muxer?: FlvVideoMuxer;
  #publisher?: FlvPublisher;
  #live = false;
  #closed = false;

  constructor(private readonly options: RtpPsSourceOptions) {
    this.#receiver = new RtpReceiver({
      transport: options.transport,
      host: options.host,
      ssrc: options.ssrc,
      reorderWindowPackets: options.reorderWindowPackets,
      reorderWaitMs: options.reorderWaitMs,
      silenceMs: options.silenceMs,
      onPayload: (payload, { discontinuity }) => this.#payload(payload, discontinuity),
      onSilence: () => this.#fail(`no RTP for ${options.silenceMs} ms`),
    });
  }

  listen(): Promise<number> {
    return this.#receiver.listen();
  }

  get stats(): RtpReceiverStats & { codec?: VideoCodec; droppedUnits: number; resyncs: number } {
    return { ...this.#receiver.stats, codec: this.#demuxer.codec, droppedUnits: this.#demuxer.stats.droppedUnits, resyncs: this.#demuxer.stats.resyncs };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#receiver.close();
    this.#publisher?.close();
  }

  #payload(payload: Buffer, discontinuity: boolean): void {
    if (this.#closed) return;
    if (discontinuity) this.#demuxer.discontinuity();
    for (const unit of this.#demuxer.push(payload)) {
      if (this.#muxer?.codec !== unit.codec) this.#muxer = new FlvVideoMuxer(unit.codec);
      const tags = this.#muxer.push(unit);
      if (tags.length === 0) continue;
      try {
        this.#publisher ??= this.options.openPublisher();
        for (const tag of tags) this.#publisher.writeTag(tag);
      } catch (error) {
        this.#fail((error as Error).message);
        return;
      }
      if (!this.#live && this.#publisher.keyframes > 0) {
        this.#live = true;
        this.options.onLive();
      }
    }
  }

  #fail(reason: string): void {
    if (this.#closed) return;
    this.close();
    this.options.onFailed(reason);
  }
}
