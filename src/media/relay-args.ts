/**
 * ffmpeg arguments of a relay: pull a camera source and write it unchanged (`-c copy`) as FLV to stdout,
 * which the media node publishes in-process (flv-publisher.ts): no ingest URL, so no publish secret on the
 * command line. Socket timeouts make ffmpeg exit when a source stalls, which is how the forward learns the
 * source dropped.
 * @see https://ffmpeg.org/ffmpeg-protocols.html (rtsp `stimeout`, generic `rw_timeout`, both microseconds)
 */

/** The relay's output: FLV on its stdout. */
export const RELAY_OUTPUT = 'pipe:1';

export const RELAY_SOURCE_PROTOCOLS = ['rtmp:', 'rtsp:', 'http:', 'https:'] as const;

export function isRelaySource(sourceUrl: string): boolean {
  try {
    return (RELAY_SOURCE_PROTOCOLS as readonly string[]).includes(new URL(sourceUrl).protocol);
  } catch {
    return false;
  }
}

/**
 * How long ffmpeg studies a source before relaying it. Its default (5 s, cut short once every stream
 * is seen) is most of a new forward's time to first frame; half a second still sees a keyframe and
 * the audio header of a camera that sends one every second.
 * @see https://ffmpeg.org/ffmpeg-formats.html#Format-Options (analyzeduration, in microseconds)
 */
const ANALYZE_MICROS = '500000';

/** `ioTimeoutMs` bounds how long ffmpeg waits on a silent source before it gives up. */
export function relayArgs(sourceUrl: string, targetUrl: string, ioTimeoutMs: number): string[] {
  const timeoutMicros = String(Math.max(1, ioTimeoutMs) * 1000);
  const protocol = new URL(sourceUrl).protocol;
  const probe = ['-analyzeduration', ANALYZE_MICROS];
  const input =
    protocol === 'rtsp:'
      ? [...probe, '-rtsp_transport', 'tcp', '-stimeout', timeoutMicros, '-i', sourceUrl]
      : [...probe, '-rw_timeout', timeoutMicros, '-i', sourceUrl];
  return [...input, '-map', '0:v?', '-map', '0:a?', '-c', 'copy', '-f', 'flv', targetUrl];
}
