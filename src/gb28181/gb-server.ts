/**
 * The broker as GB/T 28181 upper platform: the SIP endpoint (UDP + TCP on one port), registration with
 * digest, keepalive, online/offline with audit, and the dispatch of device requests to the catalog sync
 * and the dialogs. One GbServer per broker process; with Redis, a device's registration belongs to the
 * broker it registered with (its `brokerId`), and only that broker sends it requests.
 * @see ../../../shared/API.md "GB/T 28181 access"
 * @see GB/T 28181-2016 9.1 注册和注销, 9.6 状态信息报送
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Principal } from '../core/model.js';
import type { AuditService } from '../core/audit-service.js';
import type { CatalogService } from '../core/catalog-service.js';
import type { LoginThrottle } from '../accounts/login-throttle.js';
import { conflict, unavailable } from '../core/errors.js';
import { parseDigest, parseNameAddr, type SipRequest } from './sip-message.js';
import { SipStack, type SipAnswer } from './sip-stack.js';
import type { SipPeer } from './sip-transport.js';
import { NonceIssuer, challengeHeader, checkDigest } from './digest.js';
import { GbDeviceRegistry, present, type CreateGbDevice, type GbDevice, type PatchGbDevice, type PublicGbDevice } from './gb-devices.js';
import { readManscdp, type ManscdpDocument } from './manscdp.js';
import { CatalogSync } from './gb-catalog-sync.js';
import { GbDialogs } from './gb-dialogs.js';
import type { GbConfig } from './gb-config.js';


/** A registration asks for at most this long (the device re-registers before it lapses). */
const MAX_EXPIRES_SECONDS = 86_400;
const DEFAULT_EXPIRES_SECONDS = 3600;
/** A keepalive is written to the store at most this often per device (the online check runs on memory). */
const KEEPALIVE_WRITE_MS = 30_000;
const SWEEP_MS = 1000;

export interface GbServerDeps {
  config: GbConfig;
  registry: GbDeviceRegistry;
  catalog: CatalogService;
  audit: AuditService;
  throttle: LoginThrottle;
  log: Logger;
  /** End the live sessions of these channels `source-failed` (their device went offline). */
  failChannels(channelIds: readonly string[]): Promise<void>;
}

const deviceActor = (id: string) => ({ id: `gb:${id.slice(0, 20)}`, role: 'system' as const, agencyId: 'platform' });
const addressOf = (peer: SipPeer) => `${peer.address}:${peer.port}`;

/** A device as the API answers it. */
export type GbDeviceView = PublicGbDevice & { channelsOnline: number };

export class GbServer {
  readonly instanceId = randomUUID();
  readonly catalogSync: CatalogSync;
  readonly dialogs: GbDialogs;
  private stack!: SipStack;
  private readonly nonces = new NonceIssuer();
  /** When each device registered here last spoke (keepalive or register), ms. */
  private readonly heardAt = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  private constructor(private readonly deps: GbServerDeps) {
    this.catalogSync = new CatalogSync({
      config: deps.config,
      registry: deps.registry,
      catalog: deps.catalog,
      log: deps.log,
      send: (device, outgoing, timeoutMs) => this.requestTo(device, outgoing, timeoutMs),
      contact: (transport) => this.stack.contact(deps.config.serverId, transport),
    });
    this.dialogs = new GbDialogs({
      config: deps.config,
      registry: deps.registry,
      send: (device, outgoing, timeoutMs, branch) => this.requestTo(device, outgoing, timeoutMs, branch),
      sendAck: (device, branch, outgoing) => this.stack.sendAck(this.peerOf(device), branch, outgoing),
      contact: (transport) => this.stack.contact(deps.config.serverId, transport),
      log: deps.log,
    });
  }

  static async start(deps: GbServerDeps): Promise<GbServer> {
    const server = new GbServer(deps);
    const { config } = deps;
    server.stack = await SipStack.listen({
      host: config.host,
      port: config.port,
      limits: { maxMessageBytes: config.maxMessageBytes, maxHeaders: config.maxHeaders },
      maxTcpConnections: config.maxTcpConnections,
      udpReceiveBufferBytes: config.udpReceiveBufferBytes,
      tcpIdleMs: config.keepaliveTimeoutMs,
      advertisedHost: config.advertisedHost,
      userAgent: 'SharpEyes-Broker',
      onRequest: (request, peer) => server.handle(request, peer),
      onMalformed: (reason, peer) => deps.log.debug({ reason, peer: addressOf(peer) }, 'gb28181: malformed SIP message'),
      onHandlerError: (err) => deps.log.error({ err }, 'gb28181: request handler failed'),
      onStray2xx: (response) => void server.dialogs.stray2xx(response),
    });
    server.sweepTimer = setInterval(() => {
      if (server.sweeping) return;
      server.sweeping = server.sweep().catch((err: unknown) => deps.log.warn({ err }, 'gb28181: offline sweep failed')).finally(() => {
        server.sweeping = undefined;
      });
    }, SWEEP_MS);
    server.sweepTimer.unref();
    return server;
  }

  get port(): number {
    return this.stack.port;
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.sweeping;
    this.catalogSync.close();
    await this.dialogs.close();
    await this.stack.close();
  }

  // -------------------------------------------------------------------------------------------
  // The API's actions (routes call these).
  // -------------------------------------------------------------------------------------------

  list(principal: Principal): GbDeviceView[] {
    return this.deps.registry.list(principal).map((device) => this.view(device));
  }

  read(principal: Principal, id: string): GbDeviceView {
    return this.view(this.deps.registry.read(principal, id));
  }

  async create(principal: Principal, input: CreateGbDevice): Promise<GbDeviceView> {
    return this.view(await this.deps.registry.create(principal, input));
  }

  /**
   * What the API shows: the record, with how many of its channels are online now (the console's devices
   * page shows them going offline with the device) and the last keepalive as this broker heard it (the
   * record is written at most every KEEPALIVE_WRITE_MS).
   */
  private view(device: PublicGbDevice): GbDeviceView {
    const heard = this.heardAt.get(device.id);
    const recorded = device.lastKeepaliveAt ? Date.parse(device.lastKeepaliveAt) : 0;
    return {
      ...device,
      lastKeepaliveAt: heard !== undefined && heard > recorded ? new Date(heard).toISOString() : device.lastKeepaliveAt,
      channelsOnline: this.deps.catalog.channelsOfDevice(device.id).filter((c) => c.status === 'online').length,
    };
  }

  async patch(principal: Principal, id: string, patch: PatchGbDevice): Promise<GbDeviceView> {
    const { device, previous } = await this.deps.registry.patch(principal, id, patch);
    if (device.disabled && !previous.disabled && device.online) {
      // Disabling unregisters it (API.md): offline, channels offline, live sessions end, connection cut.
      const peer = device.peer;
      const after = await this.goOffline(device, 'gb.unregister', 'disabled');
      if (peer?.transport === 'tcp' && device.brokerId === this.instanceId) this.stack.drop(peer);
      return this.view(present(after));
    }
    return this.view(present(device));
  }

  /** POST /gb/devices/:id/catalog: query again (202). The device must be online and registered here. */
  async requery(principal: Principal, id: string): Promise<void> {
    this.deps.registry.read(principal, id);
    const device = this.deps.registry.get(id)!;
    if (!device.online || device.disabled) throw conflict(`device ${id} is offline`, 'DEVICE_OFFLINE');
    if (device.brokerId !== this.instanceId) throw unavailable('the device is registered with another broker; ask that one');
    this.catalogSync.query(device).catch((err: unknown) => this.deps.log.warn({ err, deviceId: id }, 'gb28181: catalog query failed'));
  }

  // -------------------------------------------------------------------------------------------
  // SIP.
  // -------------------------------------------------------------------------------------------

  private peerOf(device: GbDevice): SipPeer {
    if (!device.peer || device.brokerId !== this.instanceId) throw new Error(`device ${device.id} is not registered with this broker`);
    return device.peer;
  }

  private async requestTo(device: GbDevice, outgoing: Parameters<SipStack['request']>[1], timeoutMs: number, branch?: string) {
    return this.stack.request(this.peerOf(device), outgoing, timeoutMs, branch);
  }

  private async handle(request: SipRequest, peer: SipPeer): Promise<SipAnswer | undefined> {
    switch (request.method) {
      case 'REGISTER':
        return this.register(request, peer);
      case 'MESSAGE':
        return this.message(request, peer);
      case 'NOTIFY':
        return this.notify(request, peer);
      case 'BYE':
      case 'ACK':
        return this.dialogs.incoming(request);
      case 'OPTIONS':
        return { status: 200, headers: [['Allow', 'REGISTER, MESSAGE, NOTIFY, SUBSCRIBE, INVITE, ACK, BYE, OPTIONS']] };
      default:
        return { status: 405, headers: [['Allow', 'REGISTER, MESSAGE, NOTIFY, INVITE, ACK, BYE, OPTIONS']] };
    }
  }

  private async register(request: SipRequest, peer: SipPeer): Promise<SipAnswer> {
    const { registry, audit, throttle, config } = this.deps;
    const deviceId = parseNameAddr(request.headers.get('from'))?.parsed?.user ?? '';
    let device = registry.get(deviceId);
    if (!device || device.disabled) {
      await audit.record({
        actor: deviceActor(deviceId || 'unknown'),
        action: 'gb.register.denied',
        target: `gb-device:${deviceId.slice(0, 20)}`,
        outcome: 'denied',
        reason: device ? 'disabled' : 'unknown device',
        details: { address: addressOf(peer) },
      });
      return { status: 403 };
    }
    const challenge = (stale = false): SipAnswer => ({
      status: 401,
      headers: [['WWW-Authenticate', challengeHeader(config.realm, this.nonces.issue(), stale)]],
    });
    const credentials = parseDigest(request.headers.get('authorization'));
    if (!credentials) return challenge();

    const attempt = await throttle.arrive(deviceId, peer.address);
    if (!attempt.allowed) {
      await audit.record({
        actor: deviceActor(deviceId),
        action: 'gb.register.denied',
        target: `gb-device:${deviceId}`,
        outcome: 'denied',
        reason: 'too many failures',
        details: { address: addressOf(peer) },
      });
      return { status: 403, reason: 'Too Many Failed Attempts', headers: [['Retry-After', String(attempt.retryAfterSeconds)]] };
    }
    const check = device.realm === config.realm
      ? checkDigest(credentials, { method: 'REGISTER', username: deviceId, realm: config.realm, ha1: device.ha1, nonces: this.nonces })
      : 'wrong';
    if (check === 'wrong' || check === 'missing') {
      await throttle.failed(attempt);
      await audit.record({
        actor: deviceActor(deviceId),
        action: 'gb.register.denied',
        target: `gb-device:${deviceId}`,
        outcome: 'denied',
        reason: 'wrong credentials',
        details: { address: addressOf(peer) },
      });
      return challenge();
    }
    await throttle.succeeded(attempt);
    if (check === 'stale') return challenge(true);
    // The record as it is now, not as it was before the awaits above: an admin may have disabled the
    // device, an unregister or a catalog answer may have been written meanwhile.
    const current = registry.get(deviceId);
    if (!current || current.disabled) return { status: 403 };
    device = current;

    const expires = expiresOf(request);
    if (expires === 0) {
      if (device.online) await this.goOffline(device, 'gb.unregister', 'unregistered');
      return { status: 200, headers: [['Expires', '0']] };
    }
    const now = Date.now();
    const granted = Math.min(expires, MAX_EXPIRES_SECONDS);
    const fresh = !device.online || device.brokerId !== this.instanceId || device.peer === null || addressOf(device.peer) !== addressOf(peer) || device.peer.transport !== peer.transport;
    const iso = new Date(now).toISOString();
    const next: GbDevice = {
      ...device,
      online: true,
      address: addressOf(peer),
      transport: peer.transport,
      registeredAt: fresh ? iso : device.registeredAt,
      lastKeepaliveAt: iso,
      expiresAt: now + granted * 1000,
      brokerId: this.instanceId,
      peer,
    };
    await registry.save(next);
    this.heardAt.set(deviceId, now);
    if (fresh) {
      await audit.record({
        actor: deviceActor(deviceId),
        action: 'gb.register',
        target: `gb-device:${deviceId}`,
        outcome: 'ok',
        details: { address: addressOf(peer), transport: peer.transport, expires: granted },
      });
      // After the answer is on its way: the device must know it is registered before it is asked things.
      setImmediate(() => this.catalogSync.afterRegister(next));
    }
    return {
      status: 200,
      headers: [
        ['Contact', request.headers.get('contact') ?? `<sip:${deviceId}@${peer.address}:${peer.port}>`],
        ['Expires', String(granted)],
        // GB/T 28181-2016 9.10: the upper platform's time, for the device to set its clock.
        ['Date', new Date(now).toISOString().slice(0, 23)],
      ],
    };
  }

  /** The registered device a request comes from, if it comes from where the device registered. */
  private registeredSender(request: SipRequest, peer: SipPeer): GbDevice | undefined {
    const deviceId = parseNameAddr(request.headers.get('from'))?.parsed?.user ?? '';
    const device = this.deps.registry.get(deviceId);
    if (!device || device.disabled || !device.online || !device.peer) return undefined;
    // Keepalives carry no credentials (GB/T 28181 9.6): only the registration's own address speaks for it.
    if (device.peer.address !== peer.address || device.peer.transport !== peer.transport) return undefined;
    if (peer.transport === 'udp' && device.peer.port !== peer.port) return undefined;
    return device;
  }

  private async message(request: SipRequest, peer: SipPeer): Promise<SipAnswer> {
    const device = this.registeredSender(request, peer);
    if (!device) return { status: 403 };
    const doc = readManscdp(request.body, request.headers.get('content-type'));
    if (!doc) return { status: 400, reason: 'Bad Request (no MANSCDP document)' };
    if (doc.cmdType === 'Keepalive') {
      await this.keepalive(device, peer);
      return { status: 200 };
    }
    if (doc.cmdType === 'Catalog') return this.catalogDocument(device, doc);
    // Other notifications (alarms, device info answers) are acknowledged and not used yet.
    return { status: 200 };
  }

  private async notify(request: SipRequest, peer: SipPeer): Promise<SipAnswer> {
    const device = this.registeredSender(request, peer);
    if (!device) return { status: 481 };
    const event = (request.headers.get('event') ?? '').split(';')[0]!.trim().toLowerCase();
    if (event !== 'catalog') return { status: 489 };
    const doc = readManscdp(request.body, request.headers.get('content-type'));
    if (!doc || doc.cmdType !== 'Catalog') return { status: 400, reason: 'Bad Request (no Catalog document)' };
    return this.catalogDocument(device, doc);
  }

  private catalogDocument(device: GbDevice, doc: ManscdpDocument): SipAnswer {
    if (doc.root === 'Response') this.catalogSync.response(device, doc);
    else this.catalogSync.notify(device, doc);
    return { status: 200 };
  }

  private async keepalive(device: GbDevice, peer: SipPeer): Promise<void> {
    const now = Date.now();
    this.heardAt.set(device.id, now);
    const written = device.lastKeepaliveAt ? Date.parse(device.lastKeepaliveAt) : 0;
    if (device.brokerId !== this.instanceId || now - written >= KEEPALIVE_WRITE_MS) {
      await this.deps.registry.save({ ...device, lastKeepaliveAt: new Date(now).toISOString(), brokerId: this.instanceId, peer });
    }
  }

  /** Last keepalive as this broker heard it (fresher than the record, which is written at most every 30 s). */
  lastHeard(deviceId: string): number | undefined {
    return this.heardAt.get(deviceId);
  }

  private async goOffline(device: GbDevice, action: 'gb.unregister' | 'gb.offline', reason: string): Promise<GbDevice> {
    const { registry, catalog, audit } = this.deps;
    this.heardAt.delete(device.id);
    this.catalogSync.forget(device.id);
    const next: GbDevice = { ...(registry.get(device.id) ?? device), online: false, expiresAt: null, brokerId: null, peer: null };
    await registry.save(next);
    await audit.record({
      actor: deviceActor(device.id),
      action,
      target: `gb-device:${device.id}`,
      outcome: 'ok',
      reason,
      details: { address: device.address ?? '' },
    });
    const channels = catalog.channelsOfDevice(device.id);
    const live = channels.filter((c) => c.status === 'online');
    if (live.length > 0) await catalog.upsertFromDevice(live.map((c) => ({ ...c, status: 'offline' as const })));
    await this.deps.failChannels(channels.map((c) => c.id));
    await this.dialogs.deviceGone(device.id);
    return next;
  }

  /** Registrations that lapsed, devices that went silent: offline. Ours on what we heard; others' on the record. */
  async sweep(): Promise<void> {
    const now = Date.now();
    const timeout = this.deps.config.keepaliveTimeoutMs;
    for (const device of [...this.deps.registry.all()]) {
      if (!device.online) continue;
      const ours = device.brokerId === this.instanceId;
      const heard = ours ? (this.heardAt.get(device.id) ?? 0) : Date.parse(device.lastKeepaliveAt ?? '') || 0;
      // Another broker's record may be KEEPALIVE_WRITE_MS behind; and that broker gets the first chance.
      const slack = ours ? 0 : KEEPALIVE_WRITE_MS + timeout;
      if (device.expiresAt !== null && now > device.expiresAt + slack) await this.goOffline(device, 'gb.offline', 'registration lapsed');
      else if (now - heard > timeout + slack) await this.goOffline(device, 'gb.offline', 'keepalive timeout');
    }
  }
}

/** Expires of a REGISTER: the Contact's expires parameter, else the Expires header, else the default. */
function expiresOf(request: SipRequest): number {
  const contact = parseNameAddr(request.headers.get('contact'));
  const fromContact = contact?.params.get('expires');
  const raw = fromContact ?? request.headers.get('expires');
  if (raw === undefined || !/^[0-9]{1,10}$/.test(raw.trim())) return DEFAULT_EXPIRES_SECONDS;
  return Number(raw.trim());
}
