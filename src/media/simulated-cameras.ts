/**
 * The camera simulator's RTSP side and its H.265 cameras, all in one process: a short clip is encoded once per
 * codec (H.264 or H.265, an access unit delimiter before each picture), split into access units, and played
 * in a loop at 25 fps to every viewer — as RTP over RTSP (TCP interleaved or UDP, RFC 6184 / RFC 7798
 * packetization), and, for H.265, as enhanced-FLV tags into the simulator's RTMP server (ffmpeg cannot put
 * H.265 into FLV). No process per camera, so a bench can run hundreds.
 *
 * A new RTSP session starts at a keyframe, sent at once after PLAY, as the IP cameras the platform mostly
 * carries do (Hikvision, Dahua and most ONVIF cameras begin every new RTSP session with an IDR and its
 * parameter sets, so a client never waits out the rest of a GOP): each session plays the clip from the last
 * keyframe before the moment it joined, in real time from there, on its own phase of the loop.
 * The RTMP side (RTMP H.265 tags here, ffmpeg publishers for H.264) keeps one phase per camera; its server's
 * GOP cache gives a new player the last keyframe.
 * @see https://www.rfc-editor.org/rfc/rfc2326 (RTSP), rfc6184 (H.264 RTP), rfc7798 (H.265 RTP)
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { FlvVideoMuxer, isKeyframe, nalType, splitAnnexB, type VideoCodec } from './flv-mux.js';
import type { FlvTag } from './flv-publisher.js';

export const FRAME_MS = 40;
const TICKS_PER_FRAME = 3600;
const MAX_RTP_PAYLOAD = 1400;
const MAX_REQUEST_BYTES = 8 * 1024;
const H264_AUD = 9;
const H265_AUD = 35;

/** The access units of an Annex-B clip encoded with an AUD before each picture. */
export async function readClipUnits(file: string, codec: VideoCodec): Promise<Buffer[][]> {
  const aud = codec === 'h264' ? H264_AUD : H265_AUD;
  const units: Buffer[][] = [];
  for (const nalu of splitAnnexB(await readFile(file))) {
    if (nalType(codec, nalu) === aud || units.length === 0) units.push([]);
    if (nalType(codec, nalu) !== aud) units[units.length - 1].push(Buffer.from(nalu));
  }
  return units.filter((unit) => unit.length > 0);
}

/** RTP payloads (one per packet, marker on the last) of one access unit. */
export function packetize(codec: VideoCodec, unit: Buffer[]): Buffer[] {
  const payloads: Buffer[] = [];
  for (const nalu of unit) {
    if (nalu.length <= MAX_RTP_PAYLOAD) {
      payloads.push(nalu);
      continue;
    }
    const headerBytes = codec === 'h264' ? 1 : 2;
    const type = nalType(codec, nalu);
    const indicator = codec === 'h264'
      ? Buffer.from([(nalu[0] & 0xe0) | 28])
      : Buffer.from([(nalu[0] & 0x81) | (49 << 1), nalu[1]]);
    for (let offset = headerBytes; offset < nalu.length; offset += MAX_RTP_PAYLOAD) {
      const end = Math.min(nalu.length, offset + MAX_RTP_PAYLOAD);
      const fuHeader = (offset === headerBytes ? 0x80 : 0) | (end === nalu.length ? 0x40 : 0) | type;
      payloads.push(Buffer.concat([indicator, Buffer.from([fuHeader]), nalu.subarray(offset, end)]));
    }
  }
  return payloads;
}

export interface SimulatedCamera {
  path: string;
  codec: VideoCodec;
  units: Buffer[][];
}

interface Viewer {
  camera: SimulatedCamera;
  send: (rtp: Buffer) => void;
  ssrc: number;
  seq: number;
  base: number;
  /** Clip index = (clock frame + offset) mod clip length: the session's own phase of the loop. */
  offset: number;
  closed: boolean;
}

/** The clip's keyframe indexes, ascending (computed once per clip). */
const keyframeIndexes = new WeakMap<Buffer[][], number[]>();
function keyframesOf(camera: SimulatedCamera): number[] {
  let indexes = keyframeIndexes.get(camera.units);
  if (!indexes) {
    indexes = camera.units.flatMap((unit, i) => (isKeyframe(camera.codec, unit) ? [i] : []));
    if (indexes.length === 0) indexes = [0];
    keyframeIndexes.set(camera.units, indexes);
  }
  return indexes;
}

/** The loop offset that puts `frame` of the clock on the clip's last keyframe at or before where the clock is. */
export function sessionOffset(camera: SimulatedCamera, frame: number): number {
  const length = camera.units.length;
  const position = ((frame % length) + length) % length;
  const keyframes = keyframesOf(camera);
  const keyframe = [...keyframes].reverse().find((i) => i <= position) ?? keyframes[keyframes.length - 1];
  return (((keyframe - frame) % length) + length) % length;
}

function sdpOf(camera: SimulatedCamera): string {
  const first = camera.units.find((unit) => unit.some((n) => nalType(camera.codec, n) === (camera.codec === 'h264' ? 7 : 33))) ?? [];
  const set = (type: number) => first.find((n) => nalType(camera.codec, n) === type)?.toString('base64') ?? '';
  const fmtp = camera.codec === 'h264'
    ? `packetization-mode=1;sprop-parameter-sets=${set(7)},${set(8)}`
    : `sprop-vps=${set(32)};sprop-sps=${set(33)};sprop-pps=${set(34)}`;
  return [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=Sharp Eyes simulated camera',
    'c=IN IP4 0.0.0.0',
    't=0 0',
    'a=control:*',
    'm=video 0 RTP/AVP 96',
    `a=rtpmap:96 ${camera.codec === 'h264' ? 'H264' : 'H265'}/90000`,
    `a=fmtp:96 ${fmtp}`,
    'a=control:trackID=0',
    '',
  ].join('\r\n');
}

/** Serves the cameras over RTSP and paces their clips; `rtmpTags` receives each H.265 camera's FLV tags. */
export class SimulatedCameraServer {
  readonly #viewers = new Set<Viewer>();
  readonly #server: Server;
  readonly #udp: UdpSocket;
  readonly #tagSinks = new Map<SimulatedCamera, { muxer: FlvVideoMuxer; write: (tag: FlvTag) => void }>();
  #clock: NodeJS.Timeout | null = null;
  #frame = 0;

  constructor(private readonly cameras: Map<string, SimulatedCamera>) {
    this.#server = createServer((socket) => this.#serve(socket));
    this.#udp = createSocket('udp4');
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve());
    });
    await new Promise<void>((resolve) => this.#udp.bind(0, host, () => resolve()));
    const started = Date.now();
    this.#clock = setInterval(() => {
      const due = Math.floor((Date.now() - started) / FRAME_MS);
      while (this.#frame < due) this.#tick(this.#frame++);
    }, FRAME_MS / 2);
  }

  /** An H.265 camera's picture stream as FLV tags (for the RTMP side). */
  publishTags(camera: SimulatedCamera, write: (tag: FlvTag) => void): void {
    this.#tagSinks.set(camera, { muxer: new FlvVideoMuxer(camera.codec), write });
  }

  async close(): Promise<void> {
    if (this.#clock) clearInterval(this.#clock);
    for (const viewer of this.#viewers) viewer.closed = true;
    this.#viewers.clear();
    this.#udp.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #tick(frame: number): void {
    for (const viewer of this.#viewers) this.#sendFrame(viewer, frame);
    for (const [camera, sink] of this.#tagSinks) {
      const unit = camera.units[frame % camera.units.length];
      const ticks = (frame * TICKS_PER_FRAME) % 2 ** 33;
      for (const tag of sink.muxer.push({ nalus: unit, pts: ticks, dts: ticks })) sink.write(tag);
    }
  }

  /** One picture of the viewer's clip, as RTP packets (the marker on the last). */
  #sendFrame(viewer: Viewer, frame: number): void {
    const { units, codec } = viewer.camera;
    const unit = units[(frame + viewer.offset) % units.length];
    const payloads = packetize(codec, unit);
    const timestamp = (viewer.base + frame * TICKS_PER_FRAME) >>> 0;
    payloads.forEach((payload, i) => {
      const header = Buffer.alloc(12);
      header[0] = 0x80;
      header[1] = (i === payloads.length - 1 ? 0x80 : 0) | 96;
      header.writeUInt16BE(viewer.seq, 2);
      viewer.seq = (viewer.seq + 1) & 0xffff;
      header.writeUInt32BE(timestamp, 4);
      header.writeUInt32BE(viewer.ssrc, 8);
      viewer.send(Buffer.concat([header, payload]));
    });
  }

  #serve(socket: Socket): void {
    let pending = Buffer.alloc(0);
    let viewer: Viewer | null = null;
    let udpTarget: { port: number; address: string } | null = null;
    let interleaved = -1;
    const session = randomBytes(6).toString('hex');
    const end = () => {
      if (viewer) {
        viewer.closed = true;
        this.#viewers.delete(viewer);
      }
      socket.destroy();
    };
    socket.on('error', end);
    socket.on('close', end);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (pending[0] === 0x24 && pending.length >= 4) {
          // RTCP from the client (interleaved): skipped.
          const length = pending.readUInt16BE(2);
          if (pending.length < 4 + length) return;
          pending = pending.subarray(4 + length);
          continue;
        }
        const headEnd = pending.indexOf('\r\n\r\n');
        if (headEnd === -1) {
          if (pending.length > MAX_REQUEST_BYTES) end();
          return;
        }
        const lines = pending.toString('latin1', 0, headEnd).split('\r\n');
        pending = pending.subarray(headEnd + 4);
        const [method, uri] = lines[0].split(' ');
        const header = (name: string) => lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? '';
        const reply = (status: string, extra: string[] = [], body = '') => {
          const head = [`RTSP/1.0 ${status}`, `CSeq: ${header('cseq')}`, ...extra];
          if (body) head.push('Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(body)}`);
          socket.write(`${head.join('\r\n')}\r\n\r\n${body}`);
        };
        let path = '';
        try {
          path = new URL(uri).pathname.replace(/\/trackID=\d+$/, '').replace(/\/$/, '');
        } catch {
          reply('400 Bad Request');
          continue;
        }
        const camera = this.cameras.get(path);
        if (method === 'OPTIONS') reply('200 OK', ['Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER']);
        else if (!camera && method !== 'TEARDOWN') reply('404 Not Found');
        else if (method === 'DESCRIBE') reply('200 OK', [`Content-Base: ${uri.replace(/\/?$/, '/')}`], sdpOf(camera!));
        else if (method === 'SETUP') {
          const transport = header('transport');
          const channel = /interleaved=(\d+)/.exec(transport);
          const ports = /client_port=(\d+)/.exec(transport);
          if (channel) {
            interleaved = Number(channel[1]);
            reply('200 OK', [`Session: ${session};timeout=60`, `Transport: RTP/AVP/TCP;unicast;interleaved=${interleaved}-${interleaved + 1}`]);
          } else if (ports) {
            udpTarget = { port: Number(ports[1]), address: socket.remoteAddress ?? '127.0.0.1' };
            const own = this.#udp.address().port;
            reply('200 OK', [`Session: ${session};timeout=60`, `Transport: RTP/AVP;unicast;client_port=${ports[1]}-${Number(ports[1]) + 1};server_port=${own}-${own + 1}`]);
          } else reply('461 Unsupported Transport');
        } else if (method === 'PLAY') {
          const target = udpTarget;
          const channel = interleaved;
          const send = target
            ? (rtp: Buffer) => this.#udp.send(rtp, target.port, target.address)
            : (rtp: Buffer) => {
              const frame = Buffer.alloc(4);
              frame[0] = 0x24;
              frame[1] = channel;
              frame.writeUInt16BE(rtp.length, 2);
              socket.write(Buffer.concat([frame, rtp]));
            };
          reply('200 OK', [`Session: ${session}`, 'Range: npt=0.000-']);
          if (!viewer) {
            // The session starts on a keyframe, now: the clock's last frame is this session's keyframe
            // (its RTP timestamp that frame's), the next tick sends the picture after it.
            const joined = this.#frame - 1;
            viewer = { camera: camera!, send, ssrc: randomBytes(4).readUInt32BE(0), seq: randomBytes(2).readUInt16BE(0), base: randomBytes(4).readUInt32BE(0), offset: sessionOffset(camera!, joined), closed: false };
            this.#sendFrame(viewer, joined);
            this.#viewers.add(viewer);
          }
        } else if (method === 'TEARDOWN') {
          reply('200 OK');
          end();
        } else reply('200 OK');
      }
    });
  }
}
