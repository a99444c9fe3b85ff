/**
 * What a stream session plays (API.md Streams `codec`): `source` plays what the camera sends, `h264` asks for
 * H.264 — an H.265 channel is then transcoded once on its media node for all its H.264 viewers (the node
 * shares it and stops it with the last of their sessions), an H.264 channel plays its source.
 * @see ../../../shared/API.md "Streams", issue 10 point 3
 */
import type { StreamCodecRequest, VideoCodecName } from './model.js';
import { MediaUnavailableError, TranscodeCapacityExhaustedError, type MediaControl, type SessionLease } from './ports.js';
import { DomainError } from './errors.js';

export interface ChannelCodecs {
  channel(id: string): { codec?: VideoCodecName } | undefined;
  recordCodec(id: string, codec: VideoCodecName): Promise<void>;
}

/** A transcode frees when another channel's last H.264 viewer leaves: minutes, not seconds. */
const TRANSCODE_RETRY_AFTER_SECONDS = 30;

/**
 * The session's `codec` (what its URLs play; absent while the camera's is not known) and whether its URLs
 * name the channel's transcoded H.264 rendition (asked for H.264, and the camera sends H.265).
 */
export function sessionPlays(session: { channelId: string; requestedCodec?: StreamCodecRequest }, catalog: Pick<ChannelCodecs, 'channel'>): { codec?: VideoCodecName; rendition?: 'h264' } {
  const camera = catalog.channel(session.channelId)?.codec;
  if (session.requestedCodec !== 'h264') return camera ? { codec: camera } : {};
  return camera === 'h265' ? { codec: 'h264', rendition: 'h264' } : { codec: 'h264' };
}

/**
 * Makes H.264 play for a session on a started forward: nothing to do for an H.264 camera; otherwise the
 * node's transcode is started or shared (for a camera whose codec is not known yet too: the node knows it,
 * and the catalog follows when it transcodes). 503 TRANSCODE_CAPACITY_EXHAUSTED when the node's budget is spent, 503
 * UNAVAILABLE when the transcoder cannot be started; the caller gives the session's slot back.
 */
export async function startH264(
  o: { media: Pick<MediaControl, 'startTranscode'>; catalog: ChannelCodecs },
  channelId: string,
  sessionId: SessionLease['id'],
  cameraCodec: VideoCodecName | undefined,
): Promise<void> {
  if (cameraCodec === 'h264') return;
  let transcoded: boolean;
  try {
    transcoded = await o.media.startTranscode({ sessionId, channelId });
  } catch (err) {
    if (err instanceof TranscodeCapacityExhaustedError) {
      throw new DomainError('TRANSCODE_CAPACITY_EXHAUSTED', 503, 'the media node of this channel runs all the H.264 transcodes it may; try again later, or play the source', {
        'retry-after': String(TRANSCODE_RETRY_AFTER_SECONDS),
      });
    }
    if (err instanceof MediaUnavailableError) throw new DomainError('UNAVAILABLE', 503, 'the H.264 transcode of this channel could not be started');
    throw err;
  }
  // Only a node that transcodes knows the camera sends H.265; "nothing to transcode" names no codec (the
  // control-plane-only adapter answers it for every channel).
  if (transcoded) await o.catalog.recordCodec(channelId, 'h265');
}
