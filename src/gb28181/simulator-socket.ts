/**
 * One SIP endpoint (a UDP socket and its transaction layer) shared by many simulated devices, as a lower
 * platform carries many devices over one address: requests from the broker are handed to the device they
 * are for, by the user part of To (the device for MESSAGE and SUBSCRIBE, a channel for INVITE, ACK, BYE),
 * else of the request URI. Lets one process simulate thousands of devices (bench gb-devices) without a
 * socket each. Devices that share a socket share its address and port, which the broker allows: a
 * registration is keyed by device id, its address is only where to send.
 * @see GB/T 28181-2016 9.1 (a lower platform registers once for its devices; many NVRs sit behind one NAT)
 */
import { parseNameAddr, type SipRequest } from './sip-message.js';
import { SipStack, type SipAnswer } from './sip-stack.js';
import type { SipPeer } from './sip-transport.js';

const SOCKET_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

export type SimulatedDeviceHandler = (request: SipRequest, peer: SipPeer) => Promise<SipAnswer | undefined>;

export class SimulatorSocket {
  private readonly handlers = new Map<string, SimulatedDeviceHandler>();

  private constructor(readonly stack: SipStack) {}

  static async open(localHost = '127.0.0.1'): Promise<SimulatorSocket> {
    let socket: SimulatorSocket | undefined;
    const stack = await SipStack.listen({
      host: localHost,
      port: 0,
      limits: { maxMessageBytes: 65_535, maxHeaders: 64 },
      maxTcpConnections: 4,
      tcpIdleMs: 24 * 3600_000,
      listenTcp: false,
      // The broker's Catalog queries and SUBSCRIBEs to all its devices arrive together after a registration wave.
      udpReceiveBufferBytes: SOCKET_RECEIVE_BUFFER_BYTES,
      advertisedHost: localHost,
      userAgent: 'SharpEyes-GB-Simulator',
      onRequest: (request, peer) => socket!.route(request, peer),
    });
    socket = new SimulatorSocket(stack);
    return socket;
  }

  /** Requests addressed to any of `users` (a device id and its channel ids) go to `handler`. */
  attach(users: readonly string[], handler: SimulatedDeviceHandler): void {
    for (const user of users) this.handlers.set(user, handler);
  }

  detach(users: readonly string[]): void {
    for (const user of users) this.handlers.delete(user);
  }

  get devices(): number {
    return this.handlers.size;
  }

  close(): Promise<void> {
    this.handlers.clear();
    return this.stack.close();
  }

  private route(request: SipRequest, peer: SipPeer): Promise<SipAnswer | undefined> | SipAnswer | undefined {
    const to = parseNameAddr(request.headers.get('to'))?.parsed?.user;
    const target = /^sips?:([^@;>]+)@/.exec(request.uri)?.[1];
    const handler = (to && this.handlers.get(to)) || (target && this.handlers.get(target));
    // An ACK is never answered (RFC 3261 §17.2.1), not even for a device that is gone.
    if (!handler) return request.method === 'ACK' ? undefined : { status: 404 };
    return handler(request, peer);
  }
}
