/**
 * The media side of the GB/T 28181 device simulator: given what an INVITE's SDP offer says (IP, port, UDP or TCP,
 * SSRC), it sends a clip as MPEG-PS over RTP in real time and loops it, the way a camera does — one pack per
 * picture (ps-mux.ts), cut into RTP packets of at most `RTP_PAYLOAD_BYTES`, payload type 96, the 90 kHz PTS as RTP
 * timestamp, marker on a picture's last packet. TCP is active (the device connects to the broker's passive port)
 * with RFC 4571 framing.
 * The clip is encoded once by the bundled ffmpeg (libx264/libx265, 25 fps, a keyframe every second).
 * @see GB/T 28181-2016 Annex C, RFC 4571
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { captureStderrTail, spawnFfmpeg } from './ffmpeg.js';
import { isKeyframe, nalType, splitAnnexB, type AccessUnit, type VideoCodec } from './flv-mux.js';
import { PsMuxer } from './ps-mux.js';
import { buildRtpPacket, frameRfc4571 } from './rtp-receiver.js';

/** Fits an Ethernet MTU with IP/UDP/RTP headers. */
export const RTP_PAYLOAD_BYTES = 1400;
const PAYLOAD_TYPE_PS = 96;
const FRAME_TICKS = 3600; // 25 fps on the 90 kHz clock
const FRAME_MS = 40;

export interface GbClip {
  codec: VideoCodec;
  /** Access units in decoding order (no B-frames: a camera's stream), timestamps from 0. */
  units: AccessUnit[];
  keyframes: boolean[];
}

/** Encodes `seconds` of test pattern as an Annex-B elementary stream with the bundled ffmpeg. */
export async function encodeGbClip(file: string, codec: VideoCodec, seconds = 4, size = '640x360'): Promise<void> {
  const encoder =
    codec === 'h264'
      ? ['-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-bsf:v', 'h264_metadata=aud=insert', '-f', 'h264']
      : ['-c:v', 'libx265', '-preset', 'veryfast', '-x265-params', 'keyint=25:min-keyint=25:scenecut=0:bframes=0:aud=1:log-level=error', '-f', 'hevc'];
  await new Promise<void>((resolve, reject) => {
    const child = spawnFfmpeg(['-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25:duration=${seconds}`, '-pix_fmt', 'yuv420p', '-b:v', '500k', ...encoder, file]);
    const stderrTail = captureStderrTail(child);
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}: ${stderrTail()}`))));
  });
}

/** Reads an Annex-B clip with access unit delimiters into pictures. */
export async function loadGbClip(file: string, codec: VideoCodec): Promise<GbClip> {
  const aud = codec === 'h264' ? 9 : 35;
  const groups: Buffer[][] = [];
  for (const nalu of splitAnnexB(await readFile(file))) {
    if (nalType(codec, nalu) === aud || groups.length === 0) groups.push([]);
    groups[groups.length - 1].push(nalu);
  }
  const units = groups.map((nalus, i) => ({ nalus, pts: i * FRAME_TICKS, dts: i * FRAME_TICKS }));
  return { codec, units, keyframes: units.map((u) => isKeyframe(codec, u.nalus)) };
}

export interface GbMediaTarget {
  ip: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** The offer's y= line: 10 decimal digits. */
  ssrc: string;
}

export interface GbMediaSender {
  /** Resolves once connected (TCP) or bound (UDP); the first picture goes out at once. */
  readonly started: Promise<void>;
  readonly packetsSent: number;
  stop(): void;
}

/** Sends the clip in a loop, in real time, from its first keyframe; stops on `stop()` or when TCP drops. */
export function sendGbMedia(clip: GbClip, target: GbMediaTarget): GbMediaSender {
  const ssrc = Number(target.ssrc);
  if (!/^[0-9]{1,10}$/.test(target.ssrc) || ssrc > 0xffffffff) throw new RangeError('an SSRC is at most 10 digits and 32 bits');
  const muxer = new PsMuxer(clip.codec);
  let sequence = Math.floor(Math.random() * 0x10000);
  let packetsSent = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let udp: UdpSocket | undefined;
  let tcp: Socket | undefined;

  const write = (packet: Buffer) => {
    packetsSent += 1;
    if (udp) udp.send(packet, target.port, target.ip);
    else tcp?.write(frameRfc4571(packet));
  };
  let index = clip.keyframes.indexOf(true);
  let loops = 0;
  const startedAt = Date.now();
  let sentPictures = 0;
  const sendPicture = () => {
    if (stopped) return;
    const unit = clip.units[index];
    const offset = loops * clip.units.length * FRAME_TICKS;
    const pts = (unit.pts + offset) % 2 ** 33;
    const pack = muxer.picture({ ...unit, pts, dts: pts }, clip.keyframes[index]);
    for (let at = 0; at < pack.length; at += RTP_PAYLOAD_BYTES) {
      const payload = pack.subarray(at, at + RTP_PAYLOAD_BYTES);
      write(buildRtpPacket({ marker: at + RTP_PAYLOAD_BYTES >= pack.length, payloadType: PAYLOAD_TYPE_PS, sequence, timestamp: pts >>> 0, ssrc, payload }));
      sequence = (sequence + 1) & 0xffff;
    }
    index += 1;
    if (index === clip.units.length) {
      index = 0;
      loops += 1;
    }
    sentPictures += 1;
    // Paced against the wall clock, so a slow timer does not slow the stream down.
    timer = setTimeout(sendPicture, Math.max(0, startedAt + sentPictures * FRAME_MS - Date.now()));
  };
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    udp?.close();
    tcp?.destroy();
    udp = undefined;
    tcp = undefined;
  };

  const started = new Promise<void>((resolve, reject) => {
    if (target.transport === 'udp') {
      udp = createSocket(target.ip.includes(':') ? 'udp6' : 'udp4');
      udp.on('error', () => stop());
      udp.bind(0, () => {
        resolve();
        sendPicture();
      });
      return;
    }
    const socket = connect({ host: target.ip, port: target.port });
    tcp = socket;
    socket.setNoDelay(true);
    socket.once('connect', () => {
      resolve();
      sendPicture();
    });
    socket.on('error', (error) => {
      reject(error);
      stop();
    });
    socket.on('close', () => stop());
  });
  started.catch(() => undefined);
  return {
    started,
    get packetsSent() {
      return packetsSent;
    },
    stop,
  };
}

/** What the device simulator's INVITE hook gets (src/gb28181/device-simulator.ts `InviteOffer`, structurally). */
export interface GbInviteOffer {
  channelId: string;
  mediaIp: string;
  mediaPort: number;
  transport: 'udp' | 'tcp';
  ssrc: string;
}

/**
 * The device simulator's media hook: answers an INVITE's offer with a sendonly SDP (TCP: `a=setup:active`, the
 * device connects) and sends the clip from the ACK until the BYE.
 */
export function answerGbInvite(clip: GbClip, offer: GbInviteOffer, localHost: string): { sdpAnswer: string; start(): void; stop(): void } {
  let sender: GbMediaSender | undefined;
  const tcp = offer.transport === 'tcp';
  const sdpAnswer = [
    'v=0',
    `o=${offer.channelId} 0 0 IN IP4 ${localHost}`,
    's=Play',
    `c=IN IP4 ${localHost}`,
    't=0 0',
    // The port a device sends from; with TCP active it is chosen when it connects (9: discard, RFC 4145).
    `m=video ${tcp ? 9 : 15060} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96`,
    'a=sendonly',
    'a=rtpmap:96 PS/90000',
    ...(tcp ? ['a=setup:active', 'a=connection:new'] : []),
    `y=${offer.ssrc}`,
    `f=v/${clip.codec === 'h264' ? 2 : 5}/////`,
    '',
  ].join('\r\n');
  return {
    sdpAnswer,
    start() {
      sender ??= sendGbMedia(clip, { ip: offer.mediaIp, port: offer.mediaPort, transport: offer.transport, ssrc: offer.ssrc });
    },
    stop() {
      sender?.stop();
    },
  };
}
