/**
 * SIP over UDP and TCP on one port (RFC 3261 §18). UDP: one datagram, one message. TCP: a byte stream
 * framed by Content-Length (§18.3), with every bound explicit: a frame's headers must end within the
 * message limit, its Content-Length must fit in it too, or the connection is closed (a peer that lies
 * about lengths loses its connection, not our memory). CRLF keep-alive pings between frames are skipped
 * (RFC 5626 §3.5.1). Connections are capped and closed when idle.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { headerEnd, parseSipMessage, serializeSipMessage, type ParseResult, type SipLimits, type SipMessage } from './sip-message.js';

export type SipTransportName = 'udp' | 'tcp';

export interface SipPeer {
  transport: SipTransportName;
  address: string;
  port: number;
}

export const peerKey = (peer: SipPeer) => `${peer.transport}:${peer.address}:${peer.port}`;

export interface SipTransportOptions {
  host: string;
  /** 0: any free port (UDP first, then TCP on the same number). */
  port: number;
  limits: SipLimits;
  /** Open TCP connections at once; more are refused (BROKER_GB_SIP_MAX_TCP_CONNECTIONS). */
  maxTcpConnections: number;
  /** A TCP connection with no traffic this long is closed. */
  tcpIdleMs: number;
  /** Whether to accept TCP connections (a device simulator on UDP only still may dial out over TCP). */
  listenTcp?: boolean;
  /** SO_RCVBUF of the UDP socket (bursts of datagrams wait there while one is handled); unset: the system default. */
  udpReceiveBufferBytes?: number;
  onMessage(result: ParseResult, peer: SipPeer): void;
  /** A connection closed (its peer is unreachable over it from now on). */
  onTcpClose?(peer: SipPeer): void;
}

export class SipTransport {
  private readonly connections = new Map<string, Socket>();
  private closed = false;

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server | undefined,
    private readonly options: SipTransportOptions,
    readonly port: number,
  ) {}

  static async listen(options: SipTransportOptions): Promise<SipTransport> {
    const udp = createSocket({ type: options.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: options.udpReceiveBufferBytes });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(options.port, options.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    let tcp: Server | undefined;
    if (options.listenTcp !== false) {
      tcp = createServer();
      tcp.maxConnections = options.maxTcpConnections;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp!.once('error', reject);
          tcp!.listen(port, options.host, () => {
            tcp!.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        throw err;
      }
    }
    const transport = new SipTransport(udp, tcp, options, port);
    udp.on('message', (datagram, remote) => transport.datagram(datagram, { transport: 'udp', address: remote.address, port: remote.port }));
    // A send error (ICMP unreachable on some systems) must not end the socket or the process.
    udp.on('error', () => undefined);
    tcp?.on('connection', (socket) => transport.adopt(socket));
    tcp?.on('error', () => undefined);
    return transport;
  }

  /** Sends over UDP, or over the open TCP connection to the peer (dialled if there is none). */
  async send(peer: SipPeer, message: SipMessage): Promise<void> {
    if (this.closed) throw new Error('SIP transport closed');
    const bytes = serializeSipMessage(message);
    if (peer.transport === 'udp') {
      await new Promise<void>((resolve, reject) => this.udp.send(bytes, peer.port, peer.address, (err) => (err ? reject(err) : resolve())));
      return;
    }
    const socket = this.connections.get(peerKey(peer)) ?? (await this.dial(peer));
    await new Promise<void>((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  hasConnection(peer: SipPeer): boolean {
    return this.connections.has(peerKey(peer));
  }

  /** Closes the TCP connection to a peer (a disabled device). */
  drop(peer: SipPeer): void {
    this.connections.get(peerKey(peer))?.destroy();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const socket of this.connections.values()) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      this.tcp ? new Promise<void>((resolve) => this.tcp!.close(() => resolve())) : undefined,
    ]);
  }

  private async dial(peer: SipPeer): Promise<Socket> {
    if (this.connections.size >= this.options.maxTcpConnections) throw new Error('too many SIP TCP connections');
    const socket = connect({ host: peer.address, port: peer.port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    this.adopt(socket, peer);
    return socket;
  }

  private datagram(datagram: Buffer, peer: SipPeer): void {
    // A CRLF keep-alive ping carries no message.
    if (datagram.length <= 4 && datagram.toString('latin1').trim() === '') return;
    this.options.onMessage(parseSipMessage(datagram, this.options.limits), peer);
  }

  private adopt(socket: Socket, dialled?: SipPeer): void {
    const peer: SipPeer = dialled ?? { transport: 'tcp', address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const key = peerKey(peer);
    this.connections.get(key)?.destroy();
    this.connections.set(key, socket);
    socket.setTimeout(this.options.tcpIdleMs, () => socket.destroy());
    socket.setNoDelay(true);
    const framer = new SipStreamFramer(this.options.limits);
    socket.on('data', (chunk: Buffer) => {
      const frames = framer.push(chunk);
      if (frames === 'overflow') {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        if (socket.destroyed) return;
        this.options.onMessage(parseSipMessage(frame, this.options.limits), peer);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.connections.get(key) === socket) this.connections.delete(key);
      this.options.onTcpClose?.(peer);
    });
  }
}

/**
 * Cuts a TCP byte stream into SIP messages by Content-Length. `push` returns the complete frames, or
 * 'overflow' when the stream broke a bound (headers not ended within the limit, a length that is not a
 * number or would exceed it): the connection must then be closed, nothing in it can be trusted.
 */
export class SipStreamFramer {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly limits: SipLimits) {}

  push(chunk: Buffer): Buffer[] | 'overflow' {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      let start = 0;
      while (start < this.buffer.length && (this.buffer[start] === 0x0d || this.buffer[start] === 0x0a)) start++;
      if (start > 0) this.buffer = this.buffer.subarray(start);
      if (this.buffer.length === 0) return frames;
      const end = headerEnd(this.buffer, 0, this.limits.maxMessageBytes);
      if (!end) return this.buffer.length >= this.limits.maxMessageBytes ? 'overflow' : frames;
      const head = this.buffer.subarray(0, end.at).toString('latin1');
      const match = /(?:^|\n)\s*(?:content-length|l)\s*:\s*([^\r\n]*)/i.exec(head);
      const declared = match ? match[1]!.trim() : '0';
      if (!/^[0-9]{1,9}$/.test(declared)) return 'overflow';
      const total = end.at + end.length + Number(declared);
      if (total > this.limits.maxMessageBytes) return 'overflow';
      if (this.buffer.length < total) return frames;
      frames.push(Buffer.from(this.buffer.subarray(0, total)));
      this.buffer = this.buffer.subarray(total);
    }
  }
}
