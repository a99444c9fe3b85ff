/**
 * A GB/T 28181 device or lower platform, simulated (signalling side): it registers with digest,
 * keepalives, answers a Catalog query with N channels over several GB2312 MESSAGEs, accepts the catalog
 * SUBSCRIBE and sends NOTIFYs, and answers INVITEs through an `onInvite` hook that the media side plugs
 * into (`offer SDP → answer SDP + start sending`). Without a hook it answers with an SDP and sends nothing
 * (enough to test dialogs). `npm run simulate -- --gb28181 …` runs one (src/media/simulator-main.ts).
 * @see GB/T 28181-2016 9.1, 9.2, 9.5, 9.6, 9.11
 */
import { parseDigest, parseNameAddr, type SipRequest } from './sip-message.js';
import { SipStack, newCallId, newTag, type OutgoingRequest, type SipAnswer } from './sip-stack.js';
import type { SipPeer, SipTransportName } from './sip-transport.js';
import { authorizationHeader } from './digest.js';
import { MANSCDP_CONTENT_TYPE, catalogDocument, encodeBody, keepaliveNotify, readManscdp, type BodyEncoding, type CatalogItem } from './manscdp.js';
import { parseSdpAnswer } from './gb-dialogs.js';
import type { SimulatorSocket } from './simulator-socket.js';

/** What the media side gets for an INVITE, and gives back. */
export interface InviteOffer {
  channelId: string;
  /** The broker's SDP offer, as received. */
  sdp: string;
  /** Where to send RTP (from the offer's c= and m=), with which SSRC and transport. */
  mediaIp: string;
  mediaPort: number;
  transport: 'udp' | 'tcp';
  ssrc: string;
}

export interface InviteSession {
  /** The SDP of the 200 OK. */
  sdpAnswer: string;
  /** Called on the ACK: start sending. */
  start(): void;
  /** Called on BYE (either side) or close: stop sending. */
  stop(): void;
}

export type InviteHandler = (offer: InviteOffer) => Promise<InviteSession>;

export interface GbDeviceSimulatorOptions {
  deviceId: string;
  password: string;
  serverHost: string;
  serverPort: number;
  serverId: string;
  /** Digest realm / SIP domain; default: first 10 digits of the server id. */
  realm?: string;
  transport?: SipTransportName;
  localHost?: string;
  /** Catalog: a number of generated camera channels, or the items themselves. */
  channels?: number | CatalogItem[];
  /** Items per Catalog answer MESSAGE (the answer is split over ceil(N / this) MESSAGEs). */
  itemsPerMessage?: number;
  encoding?: BodyEncoding;
  /** 0: no automatic keepalives. */
  keepaliveSeconds?: number;
  expires?: number;
  /** Media hook; without one INVITEs get an SDP answer and no media. */
  onInvite?: InviteHandler;
  /** 'ignore': never answer INVITEs (tests of the broker's timeout). */
  inviteBehaviour?: 'answer' | 'ignore' | 'refuse';
  /** Share this UDP endpoint with other simulated devices instead of binding one (thousands in one process). */
  socket?: SimulatorSocket;
}

interface Call {
  callId: string;
  /** The broker's tag (From of the INVITE) and ours. */
  remoteTag: string;
  localTag: string;
  channelId: string;
  cseq: number;
  session?: InviteSession;
}

interface Subscription {
  callId: string;
  remoteTag: string;
  localTag: string;
  cseq: number;
  expires: number;
}

/** Generated channels: cameras (type 131) in 天河 (440106), with GB2312 names. */
export function simulatedCatalog(deviceId: string, count: number): CatalogItem[] {
  const items: CatalogItem[] = [];
  for (let i = 0; i < count; i++) {
    const serial = String(i + 1).padStart(6, '0');
    items.push({
      deviceId: `440106${deviceId.slice(6, 10)}1310${serial}`,
      name: `天河路口摄像机${i + 1}号`,
      status: 'ON',
      longitude: 113.3 + (i % 100) * 0.001,
      latitude: 23.1 + Math.floor(i / 100) * 0.0001,
      civilCode: '440106',
      parentId: deviceId,
    });
  }
  return items;
}

export class GbDeviceSimulator {
  readonly realm: string;
  readonly server: SipPeer;
  private stack!: SipStack;
  private readonly callId = newCallId();
  private readonly fromTag = newTag();
  private cseq = 0;
  private sn = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readonly calls = new Map<string, Call>();
  private subscription: Subscription | undefined;
  items: CatalogItem[];
  /** What the simulator saw, for tests. */
  readonly seen = { catalogQueries: 0, subscribes: 0, invites: 0, acks: 0, byes: 0 };

  private constructor(private readonly options: GbDeviceSimulatorOptions) {
    this.realm = options.realm ?? options.serverId.slice(0, 10);
    this.server = { transport: options.transport ?? 'udp', address: options.serverHost, port: options.serverPort };
    const channels = options.channels ?? 4;
    this.items = typeof channels === 'number' ? simulatedCatalog(options.deviceId, channels) : channels;
  }

  /** Binds, registers (throws unless the broker answers 200) and starts keepalives. */
  static async start(options: GbDeviceSimulatorOptions): Promise<GbDeviceSimulator> {
    const sim = await GbDeviceSimulator.create(options);
    try {
      const status = await sim.register();
      if (status !== 200) throw new Error(`REGISTER answered ${status}`);
      sim.startKeepalives();
    } catch (err) {
      await sim.close();
      throw err;
    }
    return sim;
  }

  /** Binds without registering (tests drive register() themselves). */
  static async create(options: GbDeviceSimulatorOptions): Promise<GbDeviceSimulator> {
    const sim = new GbDeviceSimulator(options);
    if (options.socket) {
      if (sim.server.transport !== 'udp') throw new Error('a shared simulator socket is UDP');
      sim.stack = options.socket.stack;
      options.socket.attach(sim.users(), (request, peer) => sim.handle(request, peer));
      return sim;
    }
    sim.stack = await SipStack.listen({
      host: options.localHost ?? '127.0.0.1',
      port: 0,
      limits: { maxMessageBytes: 65_535, maxHeaders: 64 },
      maxTcpConnections: 4,
      tcpIdleMs: 24 * 3600_000,
      listenTcp: false,
      advertisedHost: options.localHost ?? '127.0.0.1',
      userAgent: 'SharpEyes-GB-Simulator',
      onRequest: (request, peer) => sim.handle(request, peer),
    });
    return sim;
  }

  get deviceId(): string {
    return this.options.deviceId;
  }

  get openCalls(): number {
    return this.calls.size;
  }

  get subscribed(): boolean {
    return this.subscription !== undefined;
  }

  /** REGISTER, answering one digest challenge; resolves with the final status. */
  async register(expires = this.options.expires ?? 3600, password = this.options.password): Promise<number> {
    const uri = `sip:${this.options.serverId}@${this.realm}`;
    let response = await this.stack.request(this.server, this.registerRequest(uri, expires), 10_000);
    if (response.status === 401) {
      const challenge = parseDigest(response.headers.get('www-authenticate'));
      if (!challenge) return 401;
      const authorization = authorizationHeader({ challenge, method: 'REGISTER', uri, username: this.options.deviceId, password });
      response = await this.stack.request(this.server, this.registerRequest(uri, expires, authorization), 10_000);
    }
    return response.status;
  }

  async unregister(): Promise<number> {
    this.stopKeepalives();
    return this.register(0);
  }

  async keepalive(): Promise<number> {
    const response = await this.stack.request(this.server, this.message(keepaliveNotify(++this.sn, this.options.deviceId)), 10_000);
    return response.status;
  }

  startKeepalives(): void {
    const seconds = this.options.keepaliveSeconds ?? 60;
    if (seconds <= 0 || this.keepaliveTimer) return;
    this.keepaliveTimer = setInterval(() => void this.keepalive().catch(() => undefined), seconds * 1000);
    this.keepaliveTimer.unref();
  }

  stopKeepalives(): void {
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** Sends catalog changes in a NOTIFY of the broker's subscription; resolves with the broker's answer. */
  async notifyCatalog(items: CatalogItem[]): Promise<number> {
    const sub = this.subscription;
    if (!sub) throw new Error('the broker has not subscribed');
    sub.cseq++;
    const xml = catalogDocument('Notify', ++this.sn, this.options.deviceId, items.length, items);
    const response = await this.stack.request(this.server, {
      method: 'NOTIFY',
      uri: `sip:${this.options.serverId}@${this.realm}`,
      headers: [
        ['From', `<sip:${this.options.deviceId}@${this.realm}>;tag=${sub.localTag}`],
        ['To', `<sip:${this.options.serverId}@${this.realm}>;tag=${sub.remoteTag}`],
        ['Call-ID', sub.callId],
        ['CSeq', `${sub.cseq} NOTIFY`],
        ['Event', 'Catalog'],
        ['Subscription-State', `active;expires=${sub.expires}`],
      ],
      body: encodeBody(xml, this.options.encoding ?? 'gb2312'),
      contentType: MANSCDP_CONTENT_TYPE,
    }, 10_000);
    return response.status;
  }

  /** Ends a call from the device side (camera stops); resolves with the broker's answer. */
  async bye(channelId?: string): Promise<number> {
    const call = [...this.calls.values()].find((c) => channelId === undefined || c.channelId === channelId);
    if (!call) throw new Error('no call to end');
    this.calls.delete(call.callId);
    call.session?.stop();
    call.cseq++;
    const response = await this.stack.request(this.server, {
      method: 'BYE',
      uri: `sip:${this.options.serverId}@${this.realm}`,
      headers: [
        ['From', `<sip:${call.channelId}@${this.realm}>;tag=${call.localTag}`],
        ['To', `<sip:${this.options.serverId}@${this.realm}>;tag=${call.remoteTag}`],
        ['Call-ID', call.callId],
        ['CSeq', `${call.cseq} BYE`],
      ],
    }, 10_000);
    return response.status;
  }

  async close(): Promise<void> {
    this.stopKeepalives();
    for (const call of this.calls.values()) call.session?.stop();
    this.calls.clear();
    if (this.options.socket) this.options.socket.detach(this.users());
    else await this.stack.close();
  }

  /** Who requests to this device are addressed to: itself and its channels. */
  private users(): string[] {
    return [this.options.deviceId, ...this.items.map((item) => item.deviceId)];
  }

  private registerRequest(uri: string, expires: number, authorization?: string): OutgoingRequest {
    const headers: Array<[string, string]> = [
      ['From', `<sip:${this.options.deviceId}@${this.realm}>;tag=${this.fromTag}`],
      ['To', `<sip:${this.options.deviceId}@${this.realm}>`],
      ['Call-ID', this.callId],
      ['CSeq', `${++this.cseq} REGISTER`],
      ['Contact', this.stack.contact(this.options.deviceId, this.server.transport)],
      ['Expires', String(expires)],
    ];
    if (authorization) headers.push(['Authorization', authorization]);
    return { method: 'REGISTER', uri, headers };
  }

  private message(xml: string): OutgoingRequest {
    return {
      method: 'MESSAGE',
      uri: `sip:${this.options.serverId}@${this.realm}`,
      headers: [
        ['From', `<sip:${this.options.deviceId}@${this.realm}>;tag=${newTag()}`],
        ['To', `<sip:${this.options.serverId}@${this.realm}>`],
        ['Call-ID', newCallId()],
        ['CSeq', `${++this.cseq} MESSAGE`],
      ],
      body: encodeBody(xml, this.options.encoding ?? 'gb2312'),
      contentType: MANSCDP_CONTENT_TYPE,
    };
  }

  private async handle(request: SipRequest, _peer: SipPeer): Promise<SipAnswer | undefined> {
    switch (request.method) {
      case 'MESSAGE': {
        const doc = readManscdp(request.body, request.headers.get('content-type'));
        if (!doc) return { status: 400 };
        if (doc.root === 'Query' && doc.cmdType === 'Catalog') {
          this.seen.catalogQueries++;
          // Answer first (the transaction), then the catalog in MESSAGEs of their own.
          setImmediate(() => void this.sendCatalog(doc.sn).catch(() => undefined));
        }
        return { status: 200 };
      }
      case 'SUBSCRIBE':
        return this.subscribe(request);
      case 'INVITE':
        return this.invite(request);
      case 'ACK': {
        this.seen.acks++;
        const call = this.calls.get(request.headers.get('call-id') ?? '');
        call?.session?.start();
        return undefined;
      }
      case 'BYE': {
        this.seen.byes++;
        const callId = request.headers.get('call-id') ?? '';
        const call = this.calls.get(callId);
        if (!call) return { status: 481 };
        this.calls.delete(callId);
        call.session?.stop();
        return { status: 200 };
      }
      default:
        return { status: 405 };
    }
  }

  /** The answer to Catalog query `sn`, `itemsPerMessage` items per MESSAGE, a few in flight at once. */
  private async sendCatalog(sn: number): Promise<void> {
    const per = Math.max(1, this.options.itemsPerMessage ?? 20);
    const chunks: CatalogItem[][] = [];
    for (let i = 0; i < this.items.length; i += per) chunks.push(this.items.slice(i, i + per));
    if (chunks.length === 0) chunks.push([]);
    const sum = this.items.length;
    let next = 0;
    const worker = async () => {
      while (next < chunks.length) {
        const chunk = chunks[next++]!;
        await this.stack.request(this.server, this.message(catalogDocument('Response', sn, this.options.deviceId, sum, chunk)), 10_000);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }

  private subscribe(request: SipRequest): SipAnswer {
    this.seen.subscribes++;
    const expires = Number(request.headers.get('expires') ?? 3600);
    const callId = request.headers.get('call-id') ?? '';
    const remoteTag = parseNameAddr(request.headers.get('from'))?.params.get('tag') ?? '';
    const existingTag = parseNameAddr(request.headers.get('to'))?.params.get('tag');
    if (existingTag && this.subscription?.callId !== callId) return { status: 481 };
    if (expires === 0) {
      this.subscription = undefined;
      return { status: 200, headers: [['Expires', '0']] };
    }
    const localTag = this.subscription?.callId === callId ? this.subscription.localTag : newTag();
    this.subscription = { callId, remoteTag, localTag, cseq: this.subscription?.cseq ?? 0, expires };
    return { status: 200, toTag: localTag, headers: [['Expires', String(expires)]] };
  }

  private async invite(request: SipRequest): Promise<SipAnswer | undefined> {
    this.seen.invites++;
    const behaviour = this.options.inviteBehaviour ?? 'answer';
    if (behaviour === 'ignore') return new Promise<undefined>(() => undefined);
    if (behaviour === 'refuse') return { status: 486 };
    const channelId = parseNameAddr(request.headers.get('to'))?.parsed?.user ?? '';
    if (!this.items.some((i) => i.deviceId === channelId)) return { status: 404 };
    const sdp = request.body.toString('utf8');
    const media = parseSdpAnswer(sdp);
    const ssrc = /\r?\ny=([0-9]{1,10})/.exec(`\n${sdp}`)?.[1] ?? '0';
    if (!media) return { status: 488 };
    const offer: InviteOffer = { channelId, sdp, mediaIp: media.ip, mediaPort: media.port, transport: media.proto.startsWith('TCP') ? 'tcp' : 'udp', ssrc };
    const session: InviteSession = this.options.onInvite
      ? await this.options.onInvite(offer)
      : { sdpAnswer: silentAnswer(channelId, offer, this.options.localHost ?? '127.0.0.1'), start: () => undefined, stop: () => undefined };
    const localTag = newTag();
    const callId = request.headers.get('call-id') ?? '';
    this.calls.set(callId, {
      callId,
      remoteTag: parseNameAddr(request.headers.get('from'))?.params.get('tag') ?? '',
      localTag,
      channelId,
      cseq: 0,
      session,
    });
    return {
      status: 200,
      toTag: localTag,
      headers: [['Contact', this.stack.contact(channelId, this.server.transport)]],
      body: Buffer.from(session.sdpAnswer),
      contentType: 'APPLICATION/SDP',
    };
  }
}

/** An answer SDP for a device that sends nothing (signalling-only use). */
function silentAnswer(channelId: string, offer: InviteOffer, host: string): string {
  return [
    'v=0',
    `o=${channelId} 0 0 IN IP4 ${host}`,
    's=Play',
    `c=IN IP4 ${host}`,
    't=0 0',
    `m=video 9 ${offer.transport === 'tcp' ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96`,
    'a=sendonly',
    'a=rtpmap:96 PS/90000',
    ...(offer.transport === 'tcp' ? ['a=setup:active', 'a=connection:new'] : []),
    `y=${offer.ssrc}`,
    '',
  ].join('\r\n');
}
