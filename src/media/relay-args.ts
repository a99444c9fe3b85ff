/**
 * ffmpeg arguments of a relay: pull a camera source and publish it unchanged (`-c copy`) as FLV into the
 * media node's RTMP ingest. Socket timeouts make ffmpeg exit when a source stalls, which is how the
 * forward learns the source dropped.
 * @see https://ffmpeg.org/ffmpeg-protocols.html (rtsp `stimeout`, generic `rw_timeout`, both microseconds)
 */

export const RELAY_SOURCE_PROTOCOLS = ['rtmp:', 'rtsp:', 'http:', 'https:'] as const;

export function isRelaySource(sourceUrl: string): boolean {
  try {
    return (RELAY_SOURCE_PROTOCOLS as readonly string[]).includes(new URL(sourceUrl).protocol);
  } catch {
    return false;
  }
}

/** `ioTimeoutMs` bounds how long ffmpeg waits on a silent source before it gives up. */
export function relayArgs(sourceUrl: string, targetUrl: string, ioTimeoutMs: number): string[] {
  const timeoutMicros = String(Math.max(1, ioTimeoutMs) * 1000);
  const protocol = new URL(sourceUrl).protocol;
  const input =
    protocol === 'rtsp:'
      ? ['-rtsp_transport', 'tcp', '-stimeout', timeoutMicros, '-i', sourceUrl]
      : ['-rw_timeout', timeoutMicros, '-i', sourceUrl];
  return [...input, '-map', '0:v?', '-map', '0:a?', '-c', 'copy', '-f', 'flv', targetUrl];
}
