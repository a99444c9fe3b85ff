/**
 * A small RTSP client that pulls one camera in-process: DESCRIBE, SETUP of the video track (and an AAC audio
 * track when there is one), PLAY, then RTP over the RTSP connection (TCP interleaved) or over a pair of UDP
 * ports, with keep-alives. It hands raw RTP packets to the caller; rtp-depacketizer.ts makes access units.
 *
 * Why not node-media-server's RtspClient: it buffers a response header or body of any size (a camera
 * or a stranger on the camera network sending an endless header grows the node's memory), waits for a reply
 * forever, and speaks TCP only. This one bounds every read (MAX_RTSP_HEADER_BYTES, MAX_SDP_BYTES),
 * times every request, and accepts UDP media only from the camera's address.
 * @see https://www.rfc-editor.org/rfc/rfc2326 (RTSP 1.0: 10.4 SETUP, 10.11 interleaved, 12.39 Transport)
 * @see https://www.rfc-editor.org/rfc/rfc2617 (Basic and Digest authentication)
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Socket } from 'node:net';
import { connectPaced, type PacedSocket } from './paced-socket.js';
import { createRequire } from 'node:module';

const nmsRequire = createRequire(import.meta.url);
/** NMS's SDP parser is a tolerant line reader; what it returns is validated in `mediaOfSdp`. */
const SdpParser = nmsRequire('node-media-server/src/protocol/sdp.js') as {
  parse(sdp: string): { media: SdpMedia[] };
};

interface SdpMedia {
  type: string;
  payloadType: number;
  codec: string;
  clockRate: number;
  channels: number;
  fmtp: Record<string, string>;
  control: string;
}

/** A response's status line and headers; a camera's are a few hundred bytes. */
export const MAX_RTSP_HEADER_BYTES = 16 * 1024;
/** A DESCRIBE body (SDP) with a few tracks is 1-2 KiB; parameter sets of a 4K camera add little. */
export const MAX_SDP_BYTES = 64 * 1024;
const DEFAULT_PORT = 554;
const USER_AGENT = 'SharpEyes media node';

export type RtspTransport = 'tcp' | 'udp';
export type RtspVideoCodec = 'h264' | 'h265';

export interface RtspTrack {
  kind: 'video' | 'audio';
  codec: RtspVideoCodec | 'aac';
  payloadType: number;
  clockRate: number;
  fmtp: Record<string, string>;
  /** Absolute URL of the track for SETUP. */
  url: string;
}

export class RtspError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtspError';
  }
}

export interface RtspPullOptions {
  url: string;
  transport: RtspTransport;
  /** Bounds the connect, every request, and a silence of the media. */
  timeoutMs: number;
  onRtp: (track: RtspTrack, packet: Buffer) => void;
  /** Called once, when the pull ends for any reason other than `close()`. */
  onEnd: (error: Error) => void;
}

export interface RtspPull {
  /** The tracks being played (video first). */
  readonly tracks: RtspTrack[];
  close(): void;
}

interface Response {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Which SDP media this client plays: the first H.264/H.265 video and the first AAC audio. */
export function mediaOfSdp(sdp: string, baseUrl: string): RtspTrack[] {
  const parsed = SdpParser.parse(sdp);
  const tracks: RtspTrack[] = [];
  const valid = (m: SdpMedia) =>
    Number.isInteger(m.payloadType) && m.payloadType >= 0 && m.payloadType <= 127 &&
    Number.isInteger(m.clockRate) && m.clockRate >= 1000 && m.clockRate <= 192_000;
  const codecOf = (m: SdpMedia): RtspTrack['codec'] | null => {
    const name = String(m.codec).toUpperCase();
    if (m.type === 'video' && name === 'H264') return 'h264';
    if (m.type === 'video' && (name === 'H265' || name === 'HEVC')) return 'h265';
    if (m.type === 'audio' && name === 'MPEG4-GENERIC' && /aac-hbr/i.test(m.fmtp.mode ?? '')) return 'aac';
    return null;
  };
  for (const kind of ['video', 'audio'] as const) {
    const media = parsed.media.find((m) => m.type === kind && codecOf(m) !== null && valid(m));
    if (!media) continue;
    tracks.push({
      kind,
      codec: codecOf(media)!,
      payloadType: media.payloadType,
      clockRate: media.clockRate,
      fmtp: media.fmtp,
      url: trackUrl(baseUrl, media.control),
    });
  }
  if (tracks[0]?.kind !== 'video') throw new RtspError('the source offers no H.264 or H.265 video');
  return tracks;
}

function trackUrl(base: string, control: string): string {
  if (!control || control === '*') return base;
  if (/^rtsp:\/\//i.test(control)) return control;
  return base.endsWith('/') ? base + control : `${base}/${control}`;
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** `Authorization` for a 401's challenge; Digest (RFC 2617, MD5, qop=auth or none) or Basic. */
function authorization(challenge: string, method: string, uri: string, user: string, pass: string, nc: number): string {
  if (/^basic/i.test(challenge)) return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  const param = (name: string) => new RegExp(`${name}="?([^",]*)"?`, 'i').exec(challenge)?.[1] ?? '';
  const realm = param('realm');
  const nonce = param('nonce');
  const qop = /auth/.test(param('qop')) ? 'auth' : '';
  const ha1 = md5(`${user}:${realm}:${pass}`);
  const ha2 = md5(`${method}:${uri}`);
  const quote = (s: string) => s.replace(/["\\]/g, '');
  if (!qop) return `Digest username="${quote(user)}", realm="${quote(realm)}", nonce="${quote(nonce)}", uri="${uri}", response="${md5(`${ha1}:${nonce}:${ha2}`)}"`;
  const count = nc.toString(16).padStart(8, '0');
  const cnonce = randomBytes(8).toString('hex');
  const response = md5(`${ha1}:${nonce}:${count}:${cnonce}:${qop}:${ha2}`);
  return `Digest username="${quote(user)}", realm="${quote(realm)}", nonce="${quote(nonce)}", uri="${uri}", qop=${qop}, nc=${count}, cnonce="${cnonce}", response="${response}"`;
}

const EMPTY = Buffer.alloc(0);

/** Splits the byte stream of an RTSP connection into responses and interleaved frames, bounded. */
class RtspReader {
  #pending: Buffer = EMPTY;
  #head: { status: number; headers: Map<string, string>; length: number } | null = null;

  constructor(
    private readonly onResponse: (response: Response) => void,
    private readonly onFrame: (channel: number, data: Buffer) => void,
  ) {}

  push(input: Buffer): void {
    let chunk = input;
    const pending = this.#pending;
    if (pending.length > 0 && !this.#head && pending[0] === 0x24 && pending.length >= 4) {
      // An interleaved frame cut by the last read: completed from the head of this one, not by copying all of it.
      const need = 4 + pending.readUInt16BE(2) - pending.length;
      if (chunk.length < need) {
        this.#pending = Buffer.concat([pending, chunk]);
        return;
      }
      this.#pending = EMPTY;
      this.#parse(Buffer.concat([pending, chunk.subarray(0, need)]));
      chunk = chunk.subarray(need);
    }
    this.#parse(chunk);
  }

  #parse(chunk: Buffer): void {
    let buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let offset = 0;
    for (;;) {
      if (this.#head) {
        if (buffer.length - offset < this.#head.length) break;
        const body = Buffer.from(buffer.subarray(offset, offset + this.#head.length));
        offset += this.#head.length;
        const { status, headers } = this.#head;
        this.#head = null;
        this.onResponse({ status, headers, body });
        continue;
      }
      if (buffer.length - offset < 4) break;
      if (buffer[offset] === 0x24) {
        const length = buffer.readUInt16BE(offset + 2);
        if (buffer.length - offset < 4 + length) break;
        this.onFrame(buffer[offset + 1], buffer.subarray(offset + 4, offset + 4 + length));
        offset += 4 + length;
        continue;
      }
      const end = buffer.indexOf('\r\n\r\n', offset, 'latin1');
      if (end === -1) {
        if (buffer.length - offset > MAX_RTSP_HEADER_BYTES) throw new RtspError('RTSP header too large');
        break;
      }
      if (end - offset > MAX_RTSP_HEADER_BYTES) throw new RtspError('RTSP header too large');
      const lines = buffer.toString('latin1', offset, end).split('\r\n');
      offset = end + 4;
      const statusLine = /^RTSP\/1\.\d (\d{3})/.exec(lines[0]);
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const length = Number(headers.get('content-length') ?? 0);
      if (!Number.isInteger(length) || length < 0) throw new RtspError('bad Content-Length');
      if (length > MAX_SDP_BYTES) throw new RtspError(`RTSP body of ${length} bytes`);
      // A request from the server (e.g. GET_PARAMETER, ANNOUNCE) has no status line: its body is skipped.
      this.#head = { status: statusLine ? Number(statusLine[1]) : 0, headers, length };
    }
    // Keep the remainder only, as a view: a read is a view of paced-socket.ts's slab (the handler's to keep),
    // so this pins a slab for one tick, not a socket's read buffer.
    this.#pending = offset === buffer.length ? EMPTY : buffer.subarray(offset);
  }
}

/** Opens two consecutive UDP ports (RTP even, RTCP odd), as RFC 3550 section 11 asks. */
async function bindUdpPair(): Promise<[UdpSocket, UdpSocket]> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const rtp = createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      rtp.once('error', () => resolve(false));
      rtp.bind(0, () => resolve(true));
    });
    if (!bound) continue;
    const port = rtp.address().port;
    if (port % 2 !== 0 || port === 65534) {
      rtp.close();
      continue;
    }
    const rtcp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      rtcp.once('error', () => resolve(false));
      rtcp.bind(port + 1, () => resolve(true));
    });
    if (ok) return [rtp, rtcp];
    rtp.close();
    rtcp.close();
  }
  throw new RtspError('no free UDP port pair');
}

/** Connects and plays; resolves once PLAY succeeded (media may follow), rejects on any failure before. */
export async function pullRtsp(options: RtspPullOptions): Promise<RtspPull> {
  const url = new URL(options.url);
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const requestUrl = url.toString();
  let socket: Socket | null = null;
  let paced: PacedSocket | null = null;
  const udp: UdpSocket[] = [];
  let ended = false;
  let cseq = 0;
  let nc = 0;
  let session = '';
  let challenge = '';
  let waiting: { cseq: number; resolve: (r: Response) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  let mediaTimer: NodeJS.Timeout | null = null;
  let keepAlive: NodeJS.Timeout | null = null;
  let playing = false;
  const channels = new Map<number, RtspTrack>();

  const teardown = () => {
    ended = true;
    if (mediaTimer) clearTimeout(mediaTimer);
    if (keepAlive) clearInterval(keepAlive);
    if (waiting) clearTimeout(waiting.timer);
    socket?.destroy();
    for (const s of udp) s.close();
    udp.length = 0;
  };
  const fail = (error: Error) => {
    if (ended) return;
    const request = waiting;
    waiting = null;
    teardown();
    if (request) request.reject(error);
    if (playing) options.onEnd(error);
  };
  const mediaSeen = () => {
    if (mediaTimer) mediaTimer.refresh();
  };
  /** Set by an interleaved media frame; the media timer is refreshed once per read, not once per packet. */
  let framesSeen = false;
  const onFrame = (channel: number, data: Buffer) => {
    const track = channels.get(channel);
    if (!track) return; // RTCP (odd channels) and unknown channels
    framesSeen = true;
    options.onRtp(track, data);
  };
  const reader = new RtspReader((response) => {
    const cseqOf = Number(response.headers.get('cseq'));
    if (!waiting || cseqOf !== waiting.cseq) return;
    const request = waiting;
    waiting = null;
    clearTimeout(request.timer);
    request.resolve(response);
  }, onFrame);

  const send = (method: string, uri: string, extra: Record<string, string> = {}): Promise<Response> =>
    new Promise((resolve, reject) => {
      if (ended || !socket) return reject(new RtspError('connection closed'));
      cseq += 1;
      const headers: Record<string, string> = { CSeq: String(cseq), 'User-Agent': USER_AGENT, ...extra };
      if (session) headers.Session = session;
      if (challenge) headers.Authorization = authorization(challenge, method, uri, user, pass, (nc += 1));
      const head = `${method} ${uri} RTSP/1.0\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
      const timer = setTimeout(() => fail(new RtspError(`no answer to ${method} within ${options.timeoutMs} ms`)), options.timeoutMs);
      waiting = { cseq, resolve, reject, timer };
      socket.write(head);
    });
  const request = async (method: string, uri: string, extra: Record<string, string> = {}): Promise<Response> => {
    let response = await send(method, uri, extra);
    if (response.status === 401 && !challenge && user) {
      challenge = response.headers.get('www-authenticate') ?? '';
      if (challenge) response = await send(method, uri, extra);
    }
    if (response.status !== 200) throw new RtspError(`${method} answered ${response.status || 'garbage'}`);
    return response;
  };

  try {
    const port = Number(url.port) || DEFAULT_PORT;
    socket = await new Promise<Socket>((resolve, reject) => {
      // Reads are paced once the camera plays (paced-socket.ts): one read per media tick, not per RTP packet.
      paced = connectPaced(url.hostname, port, (chunk) => {
        try {
          reader.push(chunk);
          if (framesSeen) {
            framesSeen = false;
            mediaSeen();
          }
        } catch (error) {
          fail(error as Error);
        }
      });
      const s = paced.socket;
      const timer = setTimeout(() => {
        s.destroy();
        reject(new RtspError(`no connection to ${url.hostname}:${port} within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    socket.setNoDelay(true);
    socket.on('error', (error) => fail(error));
    socket.on('close', () => fail(new RtspError('the source closed the connection')));
    const peerAddress = socket.remoteAddress ?? '';

    const describe = await request('DESCRIBE', requestUrl, { Accept: 'application/sdp' });
    const base = describe.headers.get('content-base') ?? describe.headers.get('content-location') ?? requestUrl;
    const tracks = mediaOfSdp(describe.body.toString('utf8'), base);

    for (const [index, track] of tracks.entries()) {
      let transport: string;
      if (options.transport === 'tcp') {
        transport = `RTP/AVP/TCP;unicast;interleaved=${index * 2}-${index * 2 + 1}`;
        channels.set(index * 2, track);
      } else {
        const [rtp, rtcp] = await bindUdpPair();
        udp.push(rtp, rtcp);
        // Only the camera's address may feed this port: anyone else's datagrams are dropped.
        rtp.on('message', (packet, from) => {
          if (from.address !== peerAddress && from.address !== `::ffff:${peerAddress}` && `::ffff:${from.address}` !== peerAddress) return;
          mediaSeen();
          options.onRtp(track, packet);
        });
        rtcp.on('message', () => undefined);
        for (const s of [rtp, rtcp]) s.on('error', (error) => fail(error));
        transport = `RTP/AVP;unicast;client_port=${rtp.address().port}-${rtcp.address().port}`;
      }
      const setup = await request('SETUP', track.url, { Transport: transport });
      session ||= (setup.headers.get('session') ?? '').split(';')[0].trim();
      if (!session) throw new RtspError('SETUP answered without a Session');
      const granted = setup.headers.get('transport') ?? '';
      if (options.transport === 'tcp') {
        const interleaved = /interleaved=(\d+)/.exec(granted);
        if (interleaved && Number(interleaved[1]) !== index * 2) {
          channels.delete(index * 2);
          channels.set(Number(interleaved[1]), track);
        }
      }
    }
    await request('PLAY', base, { Range: 'npt=0.000-' });
    playing = true;
    if (options.transport === 'tcp') (paced as PacedSocket | null)?.pace();
    mediaTimer = setTimeout(function silent() {
      fail(new RtspError(`no media for ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    // Keep the session alive (servers drop it after 60 s by default); OPTIONS is answered by every server.
    keepAlive = setInterval(() => {
      if (!waiting) send('OPTIONS', requestUrl).catch(() => undefined);
    }, Math.max(1000, Math.min(options.timeoutMs, 20_000)));
    keepAlive.unref();
    return {
      tracks,
      close() {
        if (ended) return;
        const open = socket;
        socket = null;
        teardown();
        if (open && !open.destroyed) {
          // A polite end frees the camera's session at once; the socket is destroyed if the camera lingers.
          open.end(`TEARDOWN ${base} RTSP/1.0\r\nCSeq: ${cseq + 1}\r\nSession: ${session}\r\nUser-Agent: ${USER_AGENT}\r\n\r\n`);
          setTimeout(() => open.destroy(), 1000).unref();
        }
      },
    };
  } catch (error) {
    teardown();
    throw error instanceof Error ? error : new RtspError(String(error));
  }
}
