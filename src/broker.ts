/**
 * Composition root: picks the adapters the configuration asks for (memory or Redis store, media
 * plane), builds the services over them and runs the background sweep. The HTTP app (app.ts) and
 * the process (main.ts) sit on top; tests build a Broker the same way the process does.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { DocumentStore, AuditStore, SlotStore, MediaControl } from './core/ports.js';
import { ConflictError } from './core/ports.js';
import { AuditService } from './core/audit-service.js';
import { PlayerAudit } from './core/player-audit.js';
import { AUDIT_KEY_DOC, AuditSigner, generateSigningKeyPem } from './core/audit-head.js';
import { AUDIT_KEY_FILE, loadOrCreateAuditKeyFile } from './store/memory/audit-key.js';
import { CatalogService } from './core/catalog-service.js';
import { StreamService } from './core/stream-service.js';
import { AnalyticsService } from './core/analytics-service.js';
import { reservationOfStreamKey } from './core/stream-keys.js';
import { LeaseEffects } from './core/lease-effects.js';
import { GrantRevocation } from './core/grant-revocation.js';
import { LocalEventBus, type EventBus } from './core/events.js';
import { AccountsService } from './accounts/accounts-service.js';
import { LoginThrottle, type LoginAttemptCounter } from './accounts/login-throttle.js';
import { Authorizer } from './authz/authorizer.js';
import { documentPolicyPersistence } from './authz/policy-persistence.js';
import { MemoryDocumentStore } from './store/memory/document-store.js';
import { MemoryAuditStore } from './store/memory/audit-store.js';
import { MemorySlotStore } from './store/memory/slot-store.js';
import { createMedia } from './media/create-media.js';
import { supportsRtp, withGbPlay, type RtpMediaControl } from './media/gb-play.js';
import { deferredMedia, isDeferred } from './media/deferred-media.js';
import { GbServer } from './gb28181/gb-server.js';
import { GbDeviceRegistry } from './gb28181/gb-devices.js';
import { GbCalls, type BrokerLink, type GbCall } from './gb28181/gb-calls.js';
import { busKey } from './gb28181/gb-bus-messages.js';

export interface Secrets {
  /** Signs people's access tokens. */
  token: string;
  /** Signs play URLs; shared with the media nodes. */
  play: string;
  /** Authenticates the broker to the media nodes' control API. */
  mediaControl: string;
}

export interface Broker {
  config: Config;
  store: DocumentStore;
  access: Authorizer;
  audit: AuditService;
  accounts: AccountsService;
  catalog: CatalogService;
  streams: StreamService;
  analytics: AnalyticsService;
  effects: LeaseEffects;
  events: EventBus;
  slots: SlotStore;
  media: MediaControl;
  secrets: Secrets;
  /** GB/T 28181 signalling; absent when BROKER_GB_SIP_PORT is 0. */
  gb?: GbServer;
  storeReady(): Promise<boolean>;
  /** Resolves once the media plane is up; rejects with the reason it could not start (see BrokerOverrides.deferMedia). */
  mediaStarted: Promise<void>;
  /** Starts the lease sweep (expiry, idle close, queue). Tests may drive `sweep()` instead. */
  start(): void;
  sweep(): Promise<void>;
  close(): Promise<void>;
}

export interface BrokerOverrides {
  /** Replace the media plane (tests of the control plane use the `none` adapter via config instead). */
  media?: MediaControl;
  /** Clock for the memory slot store (tests move time without sleeping). */
  clock?: () => number;
  /**
   * Resolve before the media plane is up (main.ts: it seeds and builds the app meanwhile, then awaits
   * `mediaStarted`); by default createBroker resolves once the plane is up and rejects if it cannot start.
   */
  deferMedia?: boolean;
}

const policiesDir = fileURLToPath(new URL('../policies/', import.meta.url));

interface StoreAdapters {
  documents: DocumentStore;
  auditStore: AuditStore;
  slots: SlotStore;
  /** Live events: in-process for the embedded store, fanned out through Redis pub/sub otherwise. */
  events: EventBus;
  /** Failed-login counters shared by all brokers (Redis); in-process when absent. */
  loginCounter?: LoginAttemptCounter;
  /** Failed GB/T 28181 REGISTER counters, shared the same way. */
  gbRegisterCounter?: LoginAttemptCounter;
  /** Messages to the other brokers (Redis); absent for the embedded store, which has no others. */
  brokerLink?(selfId: string): Promise<BrokerLink>;
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

async function openMemoryStores(config: Config, logger: Logger, overrides: BrokerOverrides): Promise<StoreAdapters> {
  const onTornTail = (info: object) => logger.warn(info, 'journal: dropped a torn last line (unclean shutdown)');
  const documents = await MemoryDocumentStore.open(config.dataDir, { onTornTail });
  const auditStore = await MemoryAuditStore.open(config.dataDir, { onTornTail });
  const slots = new MemorySlotStore({
    forwardingLimit: config.forwardingSlots,
    analyticsLimit: config.analyticsSlots,
    idleCloseMs: config.idleCloseSeconds * 1000,
    clock: overrides.clock,
  });
  return {
    documents,
    auditStore,
    slots,
    events: new LocalEventBus(),
    ready: async () => true,
    close: async () => {
      await documents.close();
      await auditStore.close();
    },
  };
}

/**
 * Everything in Redis, so any number of brokers behind a load balancer are one broker. Every call
 * is bounded (redisCall): Redis gone → 503 within the deadline, never a hang or an unchecked grant.
 */
async function openRedisStores(config: Config, logger: Logger): Promise<StoreAdapters> {
  // Loaded only here: node-redis is a quarter of a second of module loading and ~20 MB that the embedded store never uses.
  const [{ boundedScriptClient, connectRedis, redisCall }, { RedisDocumentStore }, { RedisAuditStore }, { RedisSlotStore }, { RedisEventBus }, { RedisLoginAttemptCounter }, { RedisBrokerLink }] =
    await Promise.all([
      import('./store/redis/client.js'),
      import('./store/redis/document-store.js'),
      import('./store/redis/audit-store.js'),
      import('./store/redis/slot-store.js'),
      import('./store/redis/event-bus.js'),
      import('./store/redis/login-attempts.js'),
      import('./store/redis/broker-link.js'),
    ]);
  const client = await connectRedis({ url: config.redisUrl, name: 'sharp-eyes-broker', onError: (err) => logger.warn({ err }, 'redis connection error') });
  const prefix = config.redisPrefix;
  const documents = await RedisDocumentStore.open(client, { prefix, onError: (err) => logger.warn({ err }, 'redis subscriber error') });
  const auditStore = new RedisAuditStore(client, { prefix });
  const slots = new RedisSlotStore({
    client: boundedScriptClient(client),
    prefix,
    forwardingLimit: config.forwardingSlots,
    analyticsLimit: config.analyticsSlots,
    idleCloseMs: config.idleCloseSeconds * 1000,
  });
  const events = await RedisEventBus.open(client, { prefix, onError: (err) => logger.warn({ err }, 'redis event bus error') });
  return {
    documents,
    auditStore,
    slots,
    events,
    loginCounter: new RedisLoginAttemptCounter(client, `${prefix}:login`),
    gbRegisterCounter: new RedisLoginAttemptCounter(client, `${prefix}:gb-register`),
    brokerLink: (selfId) => RedisBrokerLink.open(client, prefix, selfId, (err) => logger.warn({ err }, 'redis broker link error')),
    ready: async () => (await redisCall(client, () => client.ping())) === 'PONG',
    close: async () => {
      await events.close();
      await documents.close();
      await client.close();
    },
  };
}

/** Secrets are generated once and kept in the store, so every broker process of a city shares them. */
async function loadSecrets(store: DocumentStore, config: Config): Promise<Secrets> {
  const fresh = (): Secrets => ({
    token: randomBytes(32).toString('base64url'),
    play: randomBytes(32).toString('base64url'),
    mediaControl: randomBytes(32).toString('base64url'),
  });
  try {
    await store.put('meta', 'secrets', fresh(), { ifAbsent: true });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
  const stored = (await store.get<Secrets>('meta', 'secrets'))!;
  return {
    token: config.tokenSecret ?? stored.token,
    play: config.playSecret ?? stored.play,
    mediaControl: config.mediaControlSecret ?? stored.mediaControl,
  };
}

/**
 * The Ed25519 key that signs audit heads: BROKER_AUDIT_SIGNING_KEY when set (validated by loadConfig),
 * else generated once. Embedded store: a file in the data dir (mode 0600), next to the log it vouches for,
 * where `audit:verify` finds it. Redis: the meta document `auditSigningKey`, created once (ifAbsent) like
 * the other secrets, so every broker of the city signs with one key and a head from any of them verifies
 * with one public key.
 * Trade-off: whoever can read the Redis (or the data dir) can then sign heads too. That does not let them
 * hide a cut: an agency's kept head was signed before and still fails against the cut log. It weakens what
 * a signature proves (that this broker issued the head), so a deployment that wants the key out of reach
 * of the store's operators sets BROKER_AUDIT_SIGNING_KEY from a secret manager; it overrides the stored key.
 */
async function loadAuditSigner(store: DocumentStore, config: Config): Promise<AuditSigner> {
  if (config.auditSigningKey !== undefined) return AuditSigner.fromPem(config.auditSigningKey);
  let pem: string;
  let where: string;
  if (config.store === 'redis') {
    try {
      await store.put('meta', AUDIT_KEY_DOC, { privateKeyPem: generateSigningKeyPem() }, { ifAbsent: true });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
    pem = (await store.get<{ privateKeyPem: string }>('meta', AUDIT_KEY_DOC))!.privateKeyPem;
    where = `the store's meta document ${AUDIT_KEY_DOC}`;
  } else {
    pem = await loadOrCreateAuditKeyFile(config.dataDir);
    where = `${config.dataDir}/${AUDIT_KEY_FILE}`;
  }
  try {
    return AuditSigner.fromPem(pem);
  } catch (err) {
    throw new Error(`the audit signing key in ${where} is unusable: ${(err as Error).message}`);
  }
}

export async function createBroker(config: Config, logger: Logger, overrides: BrokerOverrides = {}): Promise<Broker> {
  const stores = config.store === 'redis' ? await openRedisStores(config, logger) : await openMemoryStores(config, logger, overrides);
  const store = stores.documents;
  const secrets = await loadSecrets(store, config);
  // The media plane starts now (the embedded one is a child process that takes a second to answer), while this
  // process opens the rest; it is awaited where the services need it. If opening fails meanwhile, it is closed.
  const mediaStarting = overrides.media ? Promise.resolve(overrides.media) : createMedia(config, secrets, logger);
  mediaStarting.catch(() => undefined);
  let broker: Broker;
  try {
    // The `none` plane is there at once; the others start while the rest opens (deferred-media.ts).
    const media = overrides.media ?? (config.media === 'none' ? await mediaStarting : deferredMedia(mediaStarting.then(rtpPlane)));
    broker = await assemble(config, logger, stores, secrets, media);
  } catch (err) {
    await mediaStarting.then((media) => (overrides.media ? undefined : media.close()), () => undefined);
    await stores.close().catch(() => undefined);
    throw err;
  }
  if (!overrides.deferMedia) {
    try {
      await broker.mediaStarted;
    } catch (err) {
      await broker.close().catch(() => undefined);
      throw err;
    }
  }
  return broker;
}

/** The embedded and `nodes` planes open RTP ports (GB/T 28181); deferredMedia relies on it. */
function rtpPlane(media: MediaControl): RtpMediaControl {
  if (!supportsRtp(media)) throw new Error('the media plane opens no RTP ports');
  return media;
}

async function assemble(
  config: Config,
  logger: Logger,
  stores: StoreAdapters,
  secrets: Secrets,
  rawMedia: MediaControl,
): Promise<Broker> {
  const { documents: store, auditStore, slots } = stores;
  const signer = await loadAuditSigner(store, config);

  const access = await Authorizer.create({
    modelPath: `${policiesDir}model.conf`,
    policyPath: `${policiesDir}policy.csv`,
    persistence: documentPolicyPersistence(store),
  });
  const audit = new AuditService(auditStore, {
    coalesceWindowMs: config.auditCoalesceSeconds * 1000,
    coalesceMaxKeys: config.auditCoalesceMaxKeys,
    onError: (err) => logger.error({ err }, 'audit: a summary of repeated denials could not be written'),
    signer,
  });
  // Failed logins and failed GB/T 28181 REGISTERs follow the same limits, each in its own counters.
  const loginThrottle = (counter: LoginAttemptCounter | undefined) =>
    new LoginThrottle({
      maxFailuresPerPair: config.loginMaxFailuresPerUser,
      maxFailuresPerAddress: config.loginMaxFailuresPerAddress,
      windowSeconds: config.loginFailureWindowSeconds,
      failureDelayMs: config.loginFailureDelayMs,
      maxFailureDelayMs: config.loginMaxFailureDelayMs,
      counter,
    });
  const accounts = await AccountsService.open({
    store,
    access,
    audit,
    throttle: loginThrottle(stores.loginCounter),
    tokenSecret: secrets.token,
    tokenTtlSeconds: config.tokenTtlSeconds,
    tokenCacheEntries: config.tokenCacheEntries,
  });
  const catalog = await CatalogService.open(store, access, audit);
  // Another broker changed agency grants: re-read them (the Redis store tells us; memory never does).
  store.onRemoteChange(({ collection }) => {
    if (collection === 'policy') access.reload().catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
  });
  const events = stores.events;
  // GB/T 28181 channels play through the media plane's RTP ports and the SIP dialogs (gb-play.ts); `gb` starts below.
  let gb: GbServer | undefined;
  let gbRegistry: GbDeviceRegistry | undefined;
  let gbCalls: GbCalls | undefined;
  let gbLink: BrokerLink | undefined;
  const gbRealm = config.gbRealm ?? config.gbServerId.slice(0, 10);
  const media = withGbPlay(
    rawMedia,
    () =>
      gbCalls && gbRegistry
        ? {
            realm: gbRealm,
            transportOf: (deviceId) => gbRegistry?.get(deviceId)?.mediaTransport,
            invite: (deviceId, channelId, fence, offer) => gbCalls!.invite(deviceId, channelId, fence, offer),
            bye: (call) => gbCalls!.bye(call as GbCall),
            byeForward: (channelId, fence) => gbCalls!.byeForward(channelId, fence),
            onEnded: (listener) => gbCalls!.onEnded((call) => listener(call)),
          }
        : undefined,
    logger,
  );

  let streams: StreamService | undefined;
  const effects = new LeaseEffects({
    slots,
    media,
    audit,
    events,
    onTicketGranted: (ticketId) => streams?.wakeTicket(ticketId),
    log: logger,
  });
  // A narrowed grant (an agency's networks/classes, a channel's class), made here or on another
  // broker: live leases the agency may no longer see end `revoked` (API.md "Agencies").
  const grants = new GrantRevocation({ slots, access, channel: (id) => catalog.channel(id), effects, log: logger });
  access.onChange((change) => grants.changed(change.source === 'local' ? { agencyId: change.agencyId } : 'all'));
  catalog.onClassChange((channelId) => grants.changed({ channelId }));
  const agencies = {
    agency: (id: string) => accounts.agency(id),
    listIds: () => accounts.agencyIds(),
  };
  streams = new StreamService({ slots, media, access, audit, catalog, agencies, events, effects, grants, leaseTtlMs: config.leaseTtlSeconds * 1000 });
  const analytics = new AnalyticsService({ slots, media, access, audit, catalog, agencies, effects, grants });

  accounts.onRevocation(async (principalId, actor) => effects.apply(await slots.endAllOf(principalId, 'revoked'), actor));
  media.onForwardFailed((streamKey, fence) => {
    // A stream is a channel's forward, or one analytics reservation's own relay.
    const reservationId = reservationOfStreamKey(streamKey);
    const ended = reservationId ? slots.endReservation(reservationId, 'source-failed') : slots.failForward(streamKey, fence);
    ended.then(
      (events) => (events ? effects.apply(events) : undefined),
      (err: unknown) => logger.error({ err, streamKey }, 'could not end what a failed relay carried'),
    );
  });

  media.onTranscodeFailed((channelId, sessionIds) => {
    // The H.264 rendition its viewers asked for is gone for good: their sessions end as on a failed source.
    for (const sessionId of sessionIds) {
      slots.endSession(sessionId, 'source-failed').then(
        (events) => (events ? effects.apply(events) : undefined),
        (err: unknown) => logger.error({ err, channelId, sessionId }, 'could not end a session of a failed transcode'),
      );
    }
  });

  gbRegistry = config.gbSipPort === 0 ? undefined : await GbDeviceRegistry.open(store, access, audit, gbRealm);
  gb = gbRegistry === undefined ? undefined : await GbServer.start({
    config: {
      host: config.gbSipHost,
      port: config.gbSipPort,
      advertisedHost: config.gbSipAdvertisedHost ?? config.gbSipHost,
      serverId: config.gbServerId,
      realm: config.gbRealm ?? config.gbServerId.slice(0, 10),
      keepaliveTimeoutMs: config.gbKeepaliveTimeoutSeconds * 1000,
      maxMessageBytes: config.gbSipMaxMessageBytes,
      maxHeaders: config.gbSipMaxHeaders,
      maxTcpConnections: config.gbSipMaxTcpConnections,
      udpReceiveBufferBytes: config.gbSipUdpReceiveBufferBytes,
      catalogTimeoutMs: config.gbCatalogTimeoutSeconds * 1000,
      catalogMaxItems: config.gbCatalogMaxItems,
      subscribeExpiresSeconds: config.gbSubscribeExpiresSeconds,
      inviteTimeoutMs: config.sourceTimeoutSeconds * 1000,
    },
    registry: gbRegistry,
    catalog,
    audit,
    // Failed REGISTERs are throttled like logins (API.md), in their own counters.
    throttle: loginThrottle(stores.gbRegisterCounter),
    log: logger,
    // A device offline: the live sessions on its channels end `source-failed` (API.md).
    failChannels: async (channelIds) => {
      for (const channelId of channelIds) {
        const forward = await slots.forwardOf(channelId);
        if (forward) await effects.apply(await slots.failForward(channelId, forward.fence));
      }
    },
  });

  if (gb && gbRegistry) {
    // With Redis, a device registered with another broker plays through that one (gb-calls.ts).
    gbLink = await stores.brokerLink?.(gb.instanceId);
    gbCalls = new GbCalls({
      selfId: gb.instanceId,
      dialogs: gb.dialogs,
      registry: gbRegistry,
      channelOf: (id) => catalog.channel(id),
      link: gbLink,
      busKey: busKey(secrets.mediaControl),
      rtpHosts: () => (supportsRtp(rawMedia) ? rawMedia.rtpHosts() : []),
      requestTimeoutMs: config.sourceTimeoutSeconds * 1000,
      log: logger,
    });
  }

  const players = new PlayerAudit({
    audit,
    slots,
    // An analytics relay's player (a service account's) stays the media node's.
    roleOf: (id) => accounts.user(id)?.role,
    onError: (err) => logger.error({ err }, 'audit: player events could not be written'),
  });
  media.onPlayerEvents((report) => players.take(report));

  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  const sweep = async () => effects.apply(await slots.sweep());
  const broker: Broker = {
    config,
    store,
    access,
    audit,
    accounts,
    catalog,
    streams,
    analytics,
    effects,
    events,
    slots,
    media,
    secrets,
    gb,
    storeReady: () => stores.ready(),
    mediaStarted: isDeferred(rawMedia) ? rawMedia.started : Promise.resolve(),
    sweep,
    start() {
      sweepTimer = setInterval(() => {
        if (sweeping) return; // a slow sweep (Redis hiccup) is not stacked
        sweeping = sweep()
          .catch((err: unknown) => logger.warn({ err }, 'lease sweep failed; retrying'))
          .finally(() => {
            sweeping = undefined;
          });
      }, config.sweepIntervalMs);
    },
    async close() {
      clearInterval(sweepTimer);
      await sweeping;
      await gbCalls?.close();
      await gb?.close();
      await gbLink?.close();
      await grants.settled();
      effects.close();
      await media.close();
      await players.settled();
      await audit.close();
      await stores.close();
    },
  };
  return broker;
}
