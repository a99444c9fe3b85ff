/**
 * In-process relays: pull a camera source (RTSP over TCP or UDP, RTMP, HTTP-FLV) inside the media node and
 * hand its media, as FLV tags or FLV bytes, to the forward's publisher (flv-publisher.ts). No child process
 * per channel: a relay is a socket, a parser and a few timers.
 *
 * A relay ends (once, through `onExit`) when its source closes, errs, or stays silent for `timeoutMs`;
 * ForwardSet decides about retries. Anything malformed a source sends ends that relay only: every
 * parser here is bounded, and its exceptions are caught at the socket.
 */
import { get as httpGet, type ClientRequest } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { FlvTag } from './flv-publisher.js';
import { FlvVideoMuxer, type AccessUnit } from './flv-mux.js';
import { AacDepacketizer, parseRtp, spropParameterSets, VideoDepacketizer } from './rtp-depacketizer.js';
import { pullRtmp } from './rtmp-client.js';
import { pullRtsp, type RtspPull, type RtspTrack, type RtspTransport } from './rtsp-client.js';

export const RELAY_SOURCE_PROTOCOLS = ['rtmp:', 'rtsp:', 'http:', 'https:'] as const;

export function isRelaySource(sourceUrl: string): boolean {
  try {
    return (RELAY_SOURCE_PROTOCOLS as readonly string[]).includes(new URL(sourceUrl).protocol);
  } catch {
    return false;
  }
}

/** Where a relay's media goes: tags (RTSP, RTMP) or an FLV byte stream (HTTP-FLV). Both may throw on bad media. */
export interface RelayOutput {
  writeTag(tag: FlvTag): void;
  feed(chunk: Buffer): void;
}

export interface RelayOptions {
  /** Bounds the connection, the handshake and any silence of the source. */
  timeoutMs: number;
  /** RTSP transport when the URL does not choose one (`#transport=udp` / `#transport=tcp`). */
  rtspTransport: RtspTransport;
}

export interface Relay {
  stop(): void;
}

export interface RelayEvents {
  /** The publisher, claimed on the first media (a relay that never sends holds no stream path). */
  output: () => RelayOutput;
  /** Once: the relay ended by itself, with why (for the log). */
  onExit: (reason: string) => void;
}

/** `#transport=udp` on an RTSP URL asks for UDP (the fragment is never sent to the camera). */
export function rtspTransportOf(sourceUrl: string, fallback: RtspTransport): RtspTransport {
  const fragment = new URL(sourceUrl).hash;
  if (/^#transport=udp$/i.test(fragment)) return 'udp';
  if (/^#transport=tcp$/i.test(fragment)) return 'tcp';
  return fallback;
}

export function startRelay(sourceUrl: string, options: RelayOptions, events: RelayEvents): Relay {
  let done = false;
  let cleanup: () => void = () => undefined;
  let watchdog: NodeJS.Timeout | null = null;
  const finish = (reason: string) => {
    if (done) return;
    done = true;
    if (watchdog) clearTimeout(watchdog);
    cleanup();
    events.onExit(reason);
  };
  watchdog = setTimeout(() => finish(`the source sent nothing for ${options.timeoutMs} ms`), options.timeoutMs);
  const alive = () => watchdog?.refresh();
  let output: RelayOutput | null = null;
  /** Runs `write` on the publisher; a broken stream ends the relay with the publisher's reason. */
  const deliver = (write: (out: RelayOutput) => void) => {
    if (done) return;
    alive();
    try {
      output ??= events.output();
      write(output);
    } catch (error) {
      finish((error as Error).message);
    }
  };
  const protocol = new URL(sourceUrl).protocol;
  const run =
    protocol === 'rtsp:' ? relayRtsp : protocol === 'rtmp:' ? relayRtmp : relayHttpFlv;
  try {
    cleanup = run(sourceUrl, options, deliver, finish);
  } catch (error) {
    setImmediate(() => finish((error as Error).message));
  }
  return {
    stop() {
      if (done) return;
      done = true;
      if (watchdog) clearTimeout(watchdog);
      cleanup();
    },
  };
}

type Deliver = (write: (out: RelayOutput) => void) => void;
type Finish = (reason: string) => void;

function relayRtsp(sourceUrl: string, options: RelayOptions, deliver: Deliver, finish: Finish): () => void {
  const url = new URL(sourceUrl);
  url.hash = '';
  let pull: RtspPull | null = null;
  let stopped = false;
  const handlers = new Map<RtspTrack, (packet: Buffer) => void>();
  const handlerOf = (track: RtspTrack): ((packet: Buffer) => void) => {
    if (track.codec === 'aac') {
      const aac = new AacDepacketizer(track.clockRate, track.fmtp);
      return (raw) => {
        const packet = parseRtp(raw);
        if (!packet || packet.payloadType !== track.payloadType) return;
        const tags = aac.push(packet);
        if (tags.length > 0) deliver((out) => tags.forEach((tag) => out.writeTag(tag)));
      };
    }
    const codec = track.codec;
    const video = new VideoDepacketizer(codec, track.clockRate, spropParameterSets(codec, track.fmtp));
    const muxer = new FlvVideoMuxer(codec);
    const { payloadType } = track;
    // The unit's NAL units are views of the depacketizer's buffer: the muxer copies them into the tag at once.
    const onUnit = (unit: AccessUnit) => {
      const tags = muxer.push(unit);
      if (tags.length === 1) deliver((out) => out.writeTag(tags[0]!));
      else if (tags.length > 0) deliver((out) => tags.forEach((tag) => out.writeTag(tag)));
    };
    return (raw) => video.pushRtp(raw, payloadType, onUnit);
  };
  pullRtsp({
    url: url.toString(),
    transport: rtspTransportOf(sourceUrl, options.rtspTransport),
    timeoutMs: options.timeoutMs,
    onRtp: (track, packet) => {
      let handler = handlers.get(track);
      if (!handler) handlers.set(track, (handler = handlerOf(track)));
      handler(packet);
    },
    onEnd: (error) => finish(error.message),
  }).then(
    (started) => {
      if (stopped) started.close();
      else pull = started;
    },
    (error: Error) => finish(error.message),
  );
  return () => {
    stopped = true;
    pull?.close();
  };
}

/**
 * RTMP pull through rtmp-client.ts (handshake, connect/createStream/play, a bounded chunk demultiplexer that
 * speaks enhanced RTMP as FLV tag bodies): each audio, video or data message is one tag, handed on as is.
 * Malformed input, a refusal or the server's close end this relay with the reason; silence is the watchdog's.
 */
function relayRtmp(sourceUrl: string, _options: RelayOptions, deliver: Deliver, finish: Finish): () => void {
  const pull = pullRtmp({
    url: sourceUrl,
    onMessage: (type, timestamp, data) => deliver((out) => out.writeTag({ type, timestamp, data })),
    onEnd: finish,
  });
  return () => pull.close();
}

/** HTTP(S)-FLV: the response body is an FLV byte stream; anything else fails as a broken stream. */
function relayHttpFlv(sourceUrl: string, _options: RelayOptions, deliver: Deliver, finish: Finish): () => void {
  const get = new URL(sourceUrl).protocol === 'https:' ? httpsGet : httpGet;
  const request: ClientRequest = get(sourceUrl, (response) => {
    if (response.statusCode !== 200) {
      finish(`the source answered HTTP ${response.statusCode}`);
      response.resume();
      return;
    }
    response.on('data', (chunk: Buffer) => deliver((out) => out.feed(chunk)));
    response.on('end', () => finish('the source ended the stream'));
    response.on('error', (error) => finish(error.message));
  });
  request.on('error', (error) => finish(error.message));
  return () => request.destroy();
}
