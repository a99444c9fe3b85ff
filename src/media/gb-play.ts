/**
 * Forwarding a GB/T 28181 channel (API.md "GB/T 28181 access", Play), around any media plane that opens RTP ports:
 * open the port on the media node (UDP or TCP passive, as the device's `mediaTransport` says; the node picks an SSRC
 * unique to it), INVITE the device to it (src/gb28181 signalling), wait for the first picture. Anything that fails
 * on the way closes the port and BYEs the dialog, so no slot, SSRC or call is kept; the caller answers 504.
 * Stopping the forward (idle close, end) BYEs the device; the device's BYE (or its going offline) ends the forward
 * like a failed relay (`source-failed`); RTP silence is the media node's failure, reported the same way.
 * The call may be held by another broker (the one the device registered with, src/gb28181/gb-calls.ts), and the
 * forward may end on a broker that did not place it (any broker sweeps): `byeForward` finds the call's holder.
 */
import type { Logger } from 'pino';
import { SourceUnavailableError, type MediaControl } from '../core/ports.js';

export type GbMediaTransport = 'udp' | 'tcp-passive';

/** What the signalling side (src/gb28181) offers the media side; satisfied by GbServer's dialogs and registry. */
export interface GbSignalling {
  realm: string;
  transportOf(deviceId: string): GbMediaTransport | undefined;
  invite(deviceId: string, channelId: string, fence: number, media: { mediaIp: string; mediaPort: number; transport: GbMediaTransport; ssrc: string }): Promise<GbCall>;
  bye(call: GbCall): Promise<void>;
  /** The forward ended where its call was not placed (another broker's sweep or failure report): hang it up wherever it is held. */
  byeForward(channelId: string, fence: number): Promise<void>;
  /** The device ended the call (BYE) or went offline. */
  onEnded(listener: (call: GbCall) => void): void;
}

export interface GbCall {
  channelId: string;
}

/** The media plane's part: RTP ports on a media node (the embedded one, or the city's nodes through their control API). */
export interface RtpMediaControl extends MediaControl {
  openRtpServer(input: { channelId: string; network: string; fence: number; transport: GbMediaTransport; ssrcPrefix: string }): Promise<{
    nodeId: string;
    host: string;
    port: number;
    ssrc: string;
  }>;
  /** Resolves on the forward's first published picture; rejects with SourceUnavailableError otherwise. */
  awaitRtpForward(input: { channelId: string; fence: number }): Promise<void>;
  /** The addresses this plane's RTP ports listen at: the only ones an INVITE asked for by another broker may offer. */
  rtpHosts(): string[];
}

export function supportsRtp(media: MediaControl): media is RtpMediaControl {
  return typeof (media as Partial<RtpMediaControl>).openRtpServer === 'function';
}

/** GB/T 28181-2016 Annex F: `0` (live), then digits 4-8 of the realm; the media node adds the 4-digit index. */
export function ssrcPrefixOf(realm: string): string {
  return `0${realm.slice(3, 8)}`;
}

export function withGbPlay(media: MediaControl, signalling: () => GbSignalling | undefined, log: Logger): MediaControl {
  const calls = new Map<string, { fence: number; call: GbCall }>();
  const failedListeners: Array<(channelId: string, fence: number) => void> = [];
  let listening = false;

  const startGb = async (input: { channelId: string; network: string; fence: number }, deviceId: string): Promise<{ nodeId: string }> => {
    const gb = signalling();
    if (!gb) throw new SourceUnavailableError('GB/T 28181 is off on this broker');
    if (!supportsRtp(media)) throw new SourceUnavailableError('this media plane cannot receive GB/T 28181 streams');
    if (!listening) {
      listening = true;
      gb.onEnded((call) => {
        const current = calls.get(call.channelId);
        if (current?.call !== call) return;
        calls.delete(call.channelId);
        log.info({ channelId: call.channelId, fence: current.fence }, 'gb28181: the device ended the call');
        media.stopForward(call.channelId, current.fence).catch((err: unknown) => log.warn({ err }, 'gb28181: stop after BYE failed'));
        for (const listener of failedListeners) listener(call.channelId, current.fence);
      });
    }
    const { channelId, fence } = input;
    const transport = gb.transportOf(deviceId) ?? 'udp';
    const server = await media.openRtpServer({ ...input, transport, ssrcPrefix: ssrcPrefixOf(gb.realm) });
    let call: GbCall | undefined;
    try {
      call = await gb.invite(deviceId, channelId, fence, { mediaIp: server.host, mediaPort: server.port, transport, ssrc: server.ssrc });
      calls.set(channelId, { fence, call });
      await media.awaitRtpForward({ channelId, fence });
      return { nodeId: server.nodeId };
    } catch (error) {
      if (call) {
        calls.delete(channelId);
        await gb.bye(call);
      }
      await media.stopForward(channelId, fence).catch(() => undefined);
      throw error;
    }
  };

  return {
    ...media,
    async startForward(input) {
      if (input.gb) return startGb(input, input.gb.deviceId);
      return media.startForward(input);
    },
    async stopForward(channelId, fence) {
      const current = calls.get(channelId);
      if (current && current.fence <= fence) {
        calls.delete(channelId);
        await signalling()?.bye(current.call);
      } else if (!current) await signalling()?.byeForward(channelId, fence);
      await media.stopForward(channelId, fence);
    },
    onForwardFailed(listener) {
      failedListeners.push(listener);
      media.onForwardFailed((channelId, fence) => {
        // RTP silence: the node ended the forward; the device still thinks it is sending.
        const current = calls.get(channelId);
        if (current && current.fence === fence) {
          calls.delete(channelId);
          void signalling()?.bye(current.call);
        } else if (!current) void signalling()?.byeForward(channelId, fence);
        listener(channelId, fence);
      });
    },
  };
}
