/**
 * The transaction layer GB/T 28181 needs, over SipTransport (RFC 3261 §17, reduced):
 *  - server side: one handler run per request (retransmissions of a request still being handled are
 *    ignored, those of an answered one get the same answer again, from a bounded cache); malformed
 *    requests that can be answered get 400, the rest are dropped;
 *  - client side: requests matched to answers by Via branch, retransmitted over UDP (Timer A, doubling
 *    up to T2), given up after a deadline; INVITE answers that are not 2xx are ACKed here (§17.1.1.3), a 2xx
 *    is the dialog's to ACK (sendAck), and the ACK is sent again when the 2xx is retransmitted.
 * @see https://www.rfc-editor.org/rfc/rfc3261#section-17
 */
import { randomBytes } from 'node:crypto';
import { SipHeaders, parseCSeq, parseNameAddr, parseVia, type ParseResult, type SipLimits, type SipRequest, type SipResponse } from './sip-message.js';
import { SipTransport, peerKey, type SipPeer } from './sip-transport.js';

const T1_MS = 500;
const T2_MS = 4000;
/** How long an answered request's answer is kept for its retransmissions (64·T1). */
const ANSWER_CACHE_MS = 32_000;
const MAX_CACHED_ANSWERS = 20_000;

export const newTag = () => randomBytes(6).toString('hex');
export const newBranch = () => `z9hG4bK${randomBytes(8).toString('hex')}`;
export const newCallId = () => randomBytes(10).toString('hex');

export const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying', 200: 'OK', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 481: 'Call/Transaction Does Not Exist', 486: 'Busy Here',
  488: 'Not Acceptable Here', 489: 'Bad Event', 500: 'Server Internal Error', 501: 'Not Implemented', 503: 'Service Unavailable',
  504: 'Server Time-out',
};

export interface SipAnswer {
  status: number;
  reason?: string;
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Buffer;
  contentType?: string;
  /** Our tag in To when the request had none (a dialog this answer creates); random otherwise. */
  toTag?: string;
}

export type RequestHandler = (request: SipRequest, peer: SipPeer) => Promise<SipAnswer | undefined> | SipAnswer | undefined;

export interface OutgoingRequest {
  method: string;
  uri: string;
  /** From, To, Call-ID, CSeq and anything else but Via, Max-Forwards and Content-Length. */
  headers: ReadonlyArray<readonly [string, string]>;
  body?: Buffer;
  contentType?: string;
}

export interface SipStackOptions {
  host: string;
  port: number;
  limits: SipLimits;
  maxTcpConnections: number;
  tcpIdleMs: number;
  listenTcp?: boolean;
  /** SO_RCVBUF of the UDP socket; unset: the system default. */
  udpReceiveBufferBytes?: number;
  /** The address put in Via and Contact (where peers reach us). */
  advertisedHost: string;
  userAgent: string;
  onRequest: RequestHandler;
  /** A request was dropped or answered 400 (for logs and counters). */
  onMalformed?(reason: string, peer: SipPeer): void;
  onTcpClose?(peer: SipPeer): void;
  onHandlerError?(err: unknown): void;
  /** A 2xx to an INVITE whose transaction is gone (given up on) and was never ACKed. */
  onStray2xx?(response: SipResponse, peer: SipPeer): void;
}

interface ClientTransaction {
  method: string;
  resolve(response: SipResponse): void;
  reject(err: Error): void;
  retransmit?: NodeJS.Timeout;
  deadline: NodeJS.Timeout;
}

export class SipTimeoutError extends Error {
  constructor(method: string) {
    super(`no final answer to ${method} in time`);
    this.name = 'SipTimeoutError';
  }
}

export class SipStack {
  private transport!: SipTransport;
  private readonly pending = new Map<string, ClientTransaction>();
  /** Server transactions: undefined while the handler runs, then the bytes of the answer. */
  private readonly answered = new Map<string, { at: number; response?: SipResponse; peer: SipPeer }>();
  /** ACKs of INVITE 2xx answers, by branch, re-sent when the 2xx comes again. */
  private readonly acks = new Map<string, { at: number; peer: SipPeer; ack: SipRequest }>();

  private constructor(private readonly options: SipStackOptions) {}

  static async listen(options: SipStackOptions): Promise<SipStack> {
    const stack = new SipStack(options);
    stack.transport = await SipTransport.listen({
      host: options.host,
      port: options.port,
      limits: options.limits,
      maxTcpConnections: options.maxTcpConnections,
      tcpIdleMs: options.tcpIdleMs,
      listenTcp: options.listenTcp,
      udpReceiveBufferBytes: options.udpReceiveBufferBytes,
      onMessage: (result, peer) => stack.receive(result, peer),
      onTcpClose: options.onTcpClose,
    });
    return stack;
  }

  get port(): number {
    return this.transport.port;
  }

  /** `SIP/2.0/UDP host:port` for our Via; `<sip:user@host:port>` for our Contact. */
  contact(user: string, transport: SipPeer['transport'] = 'udp'): string {
    return `<sip:${user}@${this.options.advertisedHost}:${this.port}${transport === 'tcp' ? ';transport=tcp' : ''}>`;
  }

  hasConnection(peer: SipPeer): boolean {
    return this.transport.hasConnection(peer);
  }

  drop(peer: SipPeer): void {
    this.transport.drop(peer);
  }

  async close(): Promise<void> {
    for (const tx of this.pending.values()) {
      clearTimeout(tx.retransmit);
      clearTimeout(tx.deadline);
      tx.reject(new Error('SIP stack closed'));
    }
    this.pending.clear();
    await this.transport.close();
  }

  /**
   * Sends a request and resolves with its final answer (provisional ones are skipped). Rejects with
   * SipTimeoutError when none comes within `timeoutMs`, or with the transport's error.
   */
  request(peer: SipPeer, outgoing: OutgoingRequest, timeoutMs: number, branch = newBranch()): Promise<SipResponse> {
    const request = this.build(peer, outgoing, branch);
    return new Promise<SipResponse>((resolve, reject) => {
      const tx: ClientTransaction = {
        method: outgoing.method,
        resolve: (response) => {
          this.finish(branch);
          resolve(response);
        },
        reject: (err) => {
          this.finish(branch);
          reject(err);
        },
        deadline: setTimeout(() => tx.reject(new SipTimeoutError(outgoing.method)), timeoutMs),
      };
      this.pending.set(branch, tx);
      const send = () => this.transport.send(peer, request).catch((err: Error) => tx.reject(err));
      void send();
      if (peer.transport === 'udp') {
        let interval = T1_MS;
        const again = () => {
          tx.retransmit = setTimeout(() => {
            if (!this.pending.has(branch)) return;
            void send();
            interval = Math.min(interval * 2, T2_MS);
            again();
          }, interval);
        };
        again();
      }
    });
  }

  /** Sends a request that has no answer (ACK for a 2xx); remembered so a retransmitted 2xx is ACKed again. */
  async sendAck(peer: SipPeer, inviteBranch: string, outgoing: OutgoingRequest): Promise<void> {
    const ack = this.build(peer, outgoing, newBranch());
    this.acks.set(inviteBranch, { at: Date.now(), peer, ack });
    await this.transport.send(peer, ack);
  }

  /** Answers `request` (used by handlers that answer later, and for retransmission caching). */
  async answer(request: SipRequest, peer: SipPeer, answer: SipAnswer): Promise<void> {
    const response = responseTo(request, answer);
    const key = serverKey(request, peer);
    if (key) {
      this.answered.set(key, { at: Date.now(), response, peer });
      this.trimCache();
    }
    await this.transport.send(peer, response);
  }

  private build(peer: SipPeer, outgoing: OutgoingRequest, branch: string): SipRequest {
    const headers = new SipHeaders();
    headers.add('Via', `SIP/2.0/${peer.transport.toUpperCase()} ${this.options.advertisedHost}:${this.port};rport;branch=${branch}`);
    for (const [name, value] of outgoing.headers) headers.add(name, value);
    if (!headers.get('max-forwards')) headers.add('Max-Forwards', '70');
    if (!headers.get('user-agent')) headers.add('User-Agent', this.options.userAgent);
    if (outgoing.contentType) headers.set('Content-Type', outgoing.contentType);
    return { kind: 'request', method: outgoing.method, uri: outgoing.uri, headers, body: outgoing.body ?? Buffer.alloc(0) };
  }

  private finish(branch: string): void {
    const tx = this.pending.get(branch);
    if (!tx) return;
    clearTimeout(tx.retransmit);
    clearTimeout(tx.deadline);
    this.pending.delete(branch);
  }

  private receive(result: ParseResult, peer: SipPeer): void {
    if (!result.ok) {
      this.options.onMalformed?.(result.reason, peer);
      if (result.request && result.request.method !== 'ACK') {
        this.transport.send(peer, responseTo(result.request, { status: 400, reason: `Bad Request (${result.reason})`.slice(0, 120) })).catch(() => undefined);
      }
      return;
    }
    const message = result.message;
    if (message.kind === 'response') {
      this.response(message, peer);
      return;
    }
    const key = serverKey(message, peer);
    if (key && message.method !== 'ACK') {
      const seen = this.answered.get(key);
      if (seen) {
        if (seen.response) this.transport.send(peer, seen.response).catch(() => undefined);
        return;
      }
      this.answered.set(key, { at: Date.now(), peer });
      this.trimCache();
    }
    Promise.resolve()
      .then(() => this.options.onRequest(message, peer))
      .then(
        (answer) => (answer && message.method !== 'ACK' ? this.answer(message, peer, answer) : undefined),
        (err: unknown) => {
          this.options.onHandlerError?.(err);
          if (message.method !== 'ACK') return this.answer(message, peer, { status: 500 });
          return undefined;
        },
      )
      .catch((err: unknown) => this.options.onHandlerError?.(err));
  }

  private response(response: SipResponse, peer: SipPeer): void {
    const branch = parseVia(response.headers.get('via'))?.params.get('branch');
    if (!branch) return;
    const tx = this.pending.get(branch);
    if (!tx) {
      // A retransmitted 2xx to an INVITE we already ACKed: ACK again (§13.2.2.4).
      const kept = this.acks.get(branch);
      if (response.status < 200 || response.status >= 300) return;
      if (kept) this.transport.send(kept.peer, kept.ack).catch(() => undefined);
      else this.options.onStray2xx?.(response, peer);
      return;
    }
    if (response.status < 200) {
      // Provisional: the peer has it, stop retransmitting (an INVITE may ring for a while).
      clearTimeout(tx.retransmit);
      tx.retransmit = undefined;
      return;
    }
    if (tx.method === 'INVITE' && response.status >= 300) {
      const ack = new SipHeaders();
      for (const name of ['via', 'from', 'call-id']) ack.add(name, response.headers.get(name)!);
      ack.add('To', response.headers.get('to')!);
      ack.add('CSeq', `${parseCSeq(response.headers.get('cseq'))?.seq ?? 1} ACK`);
      ack.add('Max-Forwards', '70');
      const uri = parseNameAddr(response.headers.get('to'))?.uri ?? 'sip:unknown@invalid';
      this.transport.send(peer, { kind: 'request', method: 'ACK', uri, headers: ack, body: Buffer.alloc(0) }).catch(() => undefined);
    }
    tx.resolve(response);
  }

  private trimCache(): void {
    const now = Date.now();
    for (const map of [this.answered, this.acks] as Array<Map<string, { at: number }>>) {
      for (const [key, entry] of map) {
        if (now - entry.at < ANSWER_CACHE_MS && map.size <= MAX_CACHED_ANSWERS) break;
        map.delete(key);
      }
    }
  }
}

function serverKey(request: SipRequest, peer: SipPeer): string | undefined {
  const branch = parseVia(request.headers.get('via'))?.params.get('branch');
  return branch ? `${peerKey(peer)}|${branch}|${request.method}` : undefined;
}

/** An answer to `request`: Via, From, To (with a tag of ours), Call-ID and CSeq copied (§8.2.6.2). */
export function responseTo(request: SipRequest, answer: SipAnswer): SipResponse {
  const headers = new SipHeaders();
  for (const via of request.headers.getAll('via')) headers.add('Via', via);
  headers.add('From', request.headers.get('from') ?? '');
  const to = request.headers.get('to') ?? '';
  headers.add('To', answer.status > 100 && !parseNameAddr(to)?.params.has('tag') ? `${to};tag=${answer.toTag ?? newTag()}` : to);
  headers.add('Call-ID', request.headers.get('call-id') ?? '');
  headers.add('CSeq', request.headers.get('cseq') ?? '');
  for (const [name, value] of answer.headers ?? []) headers.add(name, value);
  if (answer.contentType) headers.set('Content-Type', answer.contentType);
  return { kind: 'response', status: answer.status, reason: answer.reason ?? REASONS[answer.status] ?? 'Unknown', headers, body: answer.body ?? Buffer.alloc(0) };
}
