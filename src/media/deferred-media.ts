/**
 * A media plane that is still starting (the embedded one is a child process that takes about a second to
 * answer), usable at once: the broker process opens its stores, seeds the demo and builds its HTTP app
 * meanwhile instead of waiting for it. Until the plane is up, `ready()` answers false (so `/readyz` says 503:
 * the broker is not ready before its media plane is) and every other call waits for it, then goes through.
 * If it fails to start, those calls fail with that error, and `started` rejects with it (main.ts exits).
 */
import type { MediaControl } from '../core/ports.js';
import type { RtpMediaControl } from './gb-play.js';

export interface DeferredMediaControl extends RtpMediaControl {
  /** Resolves once the plane is up; rejects with the reason it could not start. */
  readonly started: Promise<void>;
  /** The embedded plane's media node process id, once it is up (operators' tools and tests look at its children). */
  nodePid(): number | undefined;
}

/**
 * `starting` must resolve to a plane that opens RTP ports (the embedded and `nodes` planes do): whether the plane
 * supports GB/T 28181 is decided before it is up (gb-play.ts asks `openRtpServer` of it).
 */
export function deferredMedia(starting: Promise<RtpMediaControl>): DeferredMediaControl {
  let media: RtpMediaControl | undefined;
  const started = starting.then((m) => {
    media = m;
  });
  // Reported through `started` (and each call); not an unhandled rejection while nobody asked yet.
  started.catch(() => undefined);
  const up = async () => media ?? (await starting);
  return {
    started,
    startForward: async (input) => (await up()).startForward(input),
    awaitForward: async (input) => (await up()).awaitForward(input),
    stopForward: async (channelId, fence) => (await up()).stopForward(channelId, fence),
    disconnectSession: async (sessionId, channelId, owner) => (await up()).disconnectSession(sessionId, channelId, owner),
    players: async (sessionId, channelId) => (await up()).players(sessionId, channelId),
    cutPlayer: async (sessionId, channelId, playerId) => (await up()).cutPlayer(sessionId, channelId, playerId),
    startTranscode: async (input) => (await up()).startTranscode(input),
    playUrls: async (input) => (await up()).playUrls(input),
    nodes: async () => (await up()).nodes(),
    openRtpServer: async (input) => (await up()).openRtpServer(input),
    awaitRtpForward: async (input) => (await up()).awaitRtpForward(input),
    // Nothing listens at an RTP address before the plane is up.
    rtpHosts: () => media?.rtpHosts() ?? [],
    onPlayerEvents(listener) {
      void started.then(() => media!.onPlayerEvents(listener), () => undefined);
    },
    onForwardFailed(listener) {
      void started.then(() => media!.onForwardFailed(listener), () => undefined);
    },
    onTranscodeFailed(listener) {
      void started.then(() => media!.onTranscodeFailed(listener), () => undefined);
    },
    ready: async () => (media ? media.ready() : false),
    nodePid: () => (media as Partial<{ nodePid(): number | undefined }> | undefined)?.nodePid?.(),
    async close() {
      // A plane that never started has nothing to close.
      const m = await starting.catch(() => undefined);
      await m?.close();
    },
  };
}

export const isDeferred = (media: MediaControl): media is DeferredMediaControl => 'started' in media && media.started instanceof Promise;
