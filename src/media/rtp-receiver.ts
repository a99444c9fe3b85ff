/**
 * One RTP port opened for one GB/T 28181 stream (like ZLMediaKit's openRtpServer): UDP, or TCP passive with
 * RFC 4571 framing (a 2-byte length before each packet). Packets pass only with the SSRC this port was opened for,
 * and only from the first peer that sent one: RTP from another address or another SSRC never reaches the stream (a
 * viewer who learnt the port could otherwise inject video). UDP packets are put back in sequence order within a
 * small window; a gap that does not fill is a loss, reported as a discontinuity so the demuxer drops to the next
 * keyframe. Payloads (MPEG-PS) go to `onPayload` in order. Nothing for `silenceMs` after the first packet →
 * `onSilence` (the broker ends the sessions `source-failed`).
 * @see RFC 3550 §5.1 (RTP header), RFC 4571 §2 (RTP over connection-oriented transport)
 * @see GB/T 28181-2016 Annex C (PS over RTP), Annex F (SSRC)
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type RtpTransport = 'udp' | 'tcp-passive';

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payload: Buffer;
}

/** Parses one RTP packet; undefined for anything that is not well-formed RTP version 2. */
export function parseRtpPacket(packet: Buffer): RtpPacket | undefined {
  if (packet.length < 12 || packet[0] >> 6 !== 2) return undefined;
  const padding = (packet[0] & 0x20) !== 0;
  const extension = (packet[0] & 0x10) !== 0;
  let offset = 12 + (packet[0] & 0x0f) * 4;
  if (extension) {
    if (packet.length < offset + 4) return undefined;
    offset += 4 + packet.readUInt16BE(offset + 2) * 4;
  }
  let end = packet.length;
  if (padding) {
    const count = packet[packet.length - 1];
    if (count === 0) return undefined;
    end -= count;
  }
  if (end < offset) return undefined;
  return {
    marker: (packet[1] & 0x80) !== 0,
    payloadType: packet[1] & 0x7f,
    sequence: packet.readUInt16BE(2),
    timestamp: packet.readUInt32BE(4),
    ssrc: packet.readUInt32BE(8),
    payload: packet.subarray(offset, end),
  };
}

export function buildRtpPacket(packet: Omit<RtpPacket, 'payload'> & { payload: Buffer }): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0x80;
  head[1] = (packet.marker ? 0x80 : 0) | (packet.payloadType & 0x7f);
  head.writeUInt16BE(packet.sequence & 0xffff, 2);
  head.writeUInt32BE(packet.timestamp >>> 0, 4);
  head.writeUInt32BE(packet.ssrc >>> 0, 8);
  return Buffer.concat([head, packet.payload]);
}

/** RTP over TCP (RFC 4571): the 2-byte big-endian length, then the packet. */
export function frameRfc4571(packet: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(packet.length);
  return Buffer.concat([length, packet]);
}

/** Splits an RFC 4571 byte stream into packets, whatever the chunking; holds at most one frame (≤ 65,537 bytes). */
export class Rfc4571Reader {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    let buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const packets: Buffer[] = [];
    while (buffer.length >= 2) {
      const length = buffer.readUInt16BE(0);
      if (buffer.length < 2 + length) break;
      if (length > 0) packets.push(buffer.subarray(2, 2 + length));
      buffer = buffer.subarray(2 + length);
    }
    this.#pending = Buffer.from(buffer);
    return packets;
  }
}

/** Sequence difference a − b on the 16-bit RTP counter, as the shortest signed distance. */
function seqDelta(a: number, b: number): number {
  const d = (a - b) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}

export interface RtpReorderOptions {
  /** Packets held while waiting for a missing one; past this the gap is a loss. */
  windowPackets: number;
}

/**
 * Puts packets back in sequence order. A packet older than the next expected one (late or duplicate) is dropped;
 * a missing one is waited for until `windowPackets` later ones have arrived, or `flushGap()` is called (the
 * receiver does on a timer), then given up: the payloads after it come with `discontinuity: true`.
 */
export class RtpReorderBuffer {
  #next?: number;
  readonly #held = new Map<number, RtpPacket>();
  #lost = false;
  readonly stats = { late: 0, lost: 0 };

  constructor(private readonly options: RtpReorderOptions) {}

  get waiting(): boolean {
    return this.#held.size > 0;
  }

  push(packet: RtpPacket): Array<{ packet: RtpPacket; discontinuity: boolean }> {
    if (this.#next === undefined) this.#next = packet.sequence;
    const delta = seqDelta(packet.sequence, this.#next);
    if (delta < 0) {
      this.stats.late += 1;
      return [];
    }
    if (delta > 0x4000) {
      // A jump this far is a restarted sender, not reordering: start again from it.
      this.#held.clear();
      this.#next = packet.sequence;
      this.#lost = true;
    }
    this.#held.set(packet.sequence, packet);
    const out = this.#drain();
    if (this.#held.size > this.options.windowPackets) out.push(...this.flushGap());
    return out;
  }

  /** Gives up on the missing packet(s): continues at the oldest one held. */
  flushGap(): Array<{ packet: RtpPacket; discontinuity: boolean }> {
    if (this.#held.size === 0 || this.#next === undefined) return [];
    const next = this.#next;
    let oldest = -1;
    let best = Infinity;
    for (const sequence of this.#held.keys()) {
      const d = seqDelta(sequence, next);
      if (d < best) {
        best = d;
        oldest = sequence;
      }
    }
    this.stats.lost += best;
    this.#next = oldest;
    this.#lost = true;
    return this.#drain();
  }

  #drain(): Array<{ packet: RtpPacket; discontinuity: boolean }> {
    const out: Array<{ packet: RtpPacket; discontinuity: boolean }> = [];
    for (;;) {
      const packet = this.#held.get(this.#next as number);
      if (packet === undefined) return out;
      this.#held.delete(packet.sequence);
      out.push({ packet, discontinuity: this.#lost });
      this.#lost = false;
      this.#next = (packet.sequence + 1) & 0xffff;
    }
  }
}

export interface RtpReceiverOptions {
  transport: RtpTransport;
  host: string;
  /** The SSRC this port was opened for (GB/T 28181's 10-digit decimal, as a number). */
  ssrc: number;
  reorderWindowPackets: number;
  /** How long a gap may stay open before it counts as a loss. */
  reorderWaitMs: number;
  silenceMs: number;
  /** TCP passive: connections that have not proven themselves (first valid packet) at once; more are refused. */
  maxPendingConnections?: number;
  onPayload(payload: Buffer, info: { discontinuity: boolean; marker: boolean; timestamp: number }): void;
  /** The first accepted packet: the source is sending. */
  onFirstPacket?(): void;
  onSilence(): void;
}

export interface RtpReceiverStats {
  accepted: number;
  /** Not RTP, or a frame of a broken TCP stream. */
  malformed: number;
  /** Right shape, wrong SSRC. */
  wrongSsrc: number;
  /** From another address than the locked peer (UDP), or another connection (TCP). */
  wrongPeer: number;
  late: number;
  lost: number;
}

export class RtpReceiver {
  readonly stats: RtpReceiverStats = { accepted: 0, malformed: 0, wrongSsrc: 0, wrongPeer: 0, late: 0, lost: 0 };
  readonly #reorder: RtpReorderBuffer;
  #udp?: UdpSocket;
  #tcp?: Server;
  #peer?: string;
  #locked?: Socket;
  readonly #pending = new Set<Socket>();
  #silenceTimer?: NodeJS.Timeout;
  #gapTimer?: NodeJS.Timeout;
  #closed = false;
  #port = 0;

  constructor(private readonly options: RtpReceiverOptions) {
    this.#reorder = new RtpReorderBuffer({ windowPackets: options.reorderWindowPackets });
  }

  get port(): number {
    return this.#port;
  }

  /** Binds an ephemeral port on `host`; resolves with it. */
  async listen(): Promise<number> {
    const { host } = this.options;
    if (this.options.transport === 'udp') {
      const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      this.#udp = socket;
      socket.on('message', (message, remote) => this.#packet(message, `${remote.address}:${remote.port}`));
      socket.on('error', () => this.close());
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      this.#port = socket.address().port;
      return this.#port;
    }
    const server = createServer((socket) => this.#connection(socket));
    this.#tcp = server;
    server.on('error', () => this.close());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    return this.#port;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#silenceTimer);
    clearTimeout(this.#gapTimer);
    this.#udp?.close();
    this.#tcp?.close();
    this.#locked?.destroy();
    for (const socket of this.#pending) socket.destroy();
    this.#pending.clear();
  }

  #connection(socket: Socket): void {
    const maxPending = this.options.maxPendingConnections ?? 4;
    if (this.#closed || this.#locked !== undefined || this.#pending.size >= maxPending) {
      this.stats.wrongPeer += 1;
      socket.destroy();
      return;
    }
    this.#pending.add(socket);
    socket.setNoDelay(true);
    const reader = new Rfc4571Reader();
    // A connection must prove itself with a valid packet soon, or it only holds a slot.
    socket.setTimeout(this.options.silenceMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      for (const packet of reader.push(chunk)) {
        if (this.#locked !== undefined && this.#locked !== socket) return;
        this.#packet(packet, socket);
        if (this.#closed) return;
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.#pending.delete(socket);
      // The device hung up: silence decides (a device may reconnect within it? Not with connection:new).
    });
  }

  #packet(bytes: Buffer, from: string | Socket): void {
    if (this.#closed) return;
    const packet = parseRtpPacket(bytes);
    if (packet === undefined) {
      this.stats.malformed += 1;
      return;
    }
    if (packet.ssrc !== this.options.ssrc) {
      this.stats.wrongSsrc += 1;
      return;
    }
    if (typeof from === 'string') {
      this.#peer ??= from;
      if (this.#peer !== from) {
        this.stats.wrongPeer += 1;
        return;
      }
    } else if (this.#locked === undefined) {
      this.#locked = from;
      this.#pending.delete(from);
      for (const other of this.#pending) other.destroy();
      this.#pending.clear();
      from.setTimeout(0);
    }
    const first = this.stats.accepted === 0;
    this.stats.accepted += 1;
    this.#armSilence();
    if (first) this.options.onFirstPacket?.();
    this.#deliver(this.#reorder.push(packet));
    clearTimeout(this.#gapTimer);
    if (this.#reorder.waiting) {
      this.#gapTimer = setTimeout(() => this.#deliver(this.#reorder.flushGap()), this.options.reorderWaitMs);
    }
  }

  #deliver(packets: Array<{ packet: RtpPacket; discontinuity: boolean }>): void {
    this.stats.late = this.#reorder.stats.late;
    this.stats.lost = this.#reorder.stats.lost;
    for (const { packet, discontinuity } of packets) {
      if (this.#closed) return;
      this.options.onPayload(packet.payload, { discontinuity, marker: packet.marker, timestamp: packet.timestamp });
    }
  }

  #armSilence(): void {
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = setTimeout(() => {
      if (this.#closed) return;
      this.options.onSilence();
    }, this.options.silenceMs);
  }
}
