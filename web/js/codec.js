// Which codec the console asks for: an H.265 camera plays as it is where the browser decodes H.265 (MSE
// with hvc1), and as the broker's H.264 transcode elsewhere (headless Debian Chromium, most Firefoxes).
// @see API.md "Streams" codec, DESIGN.md "GB/T 28181 and the in-process media plane"

/** Main profile, level 3.1: what a city camera's H.265 stream announces at the least. */
const HEVC_MSE_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"';

export function browserDecodesH265() {
  return typeof MediaSource !== 'undefined' && MediaSource.isTypeSupported(HEVC_MSE_TYPE);
}

/** The `codec` of POST /streams for a channel: 'h264' for an H.265 camera this browser cannot decode. */
export function codecRequestFor(channel) {
  return channel?.codec === 'h265' && !browserDecodesH265() ? 'h264' : undefined;
}

/** The session plays an H.265 camera through its H.264 transcode (the player says why). */
export function playsH264Fallback(session, channel) {
  return session.codec === 'h264' && channel?.codec === 'h265';
}
