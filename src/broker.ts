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
import { boundedScriptClient, connectRedis, redisCall } from './store/redis/client.js';
import { RedisDocumentStore } from './store/redis/document-store.js';
import { RedisAuditStore } from './store/redis/audit-store.js';
import { RedisSlotStore } from './store/redis/slot-store.js';
import { RedisEventBus } from './store/redis/event-bus.js';
import { RedisLoginAttemptCounter } from './store/redis/login-attempts.js';
import { createMedia } from './media/create-media.js';

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
  storeReady(): Promise<boolean>;
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
  const { documents: store, auditStore, slots } = stores;
  const secrets = await loadSecrets(store, config);
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
  const accounts = await AccountsService.open({
    store,
    access,
    audit,
    throttle: new LoginThrottle({
      maxFailuresPerPair: config.loginMaxFailuresPerUser,
      maxFailuresPerAddress: config.loginMaxFailuresPerAddress,
      windowSeconds: config.loginFailureWindowSeconds,
      failureDelayMs: config.loginFailureDelayMs,
      maxFailureDelayMs: config.loginMaxFailureDelayMs,
      counter: stores.loginCounter,
    }),
    tokenSecret: secrets.token,
    tokenTtlSeconds: config.tokenTtlSeconds,
  });
  const catalog = await CatalogService.open(store, access, audit);
  // Another broker changed agency grants: re-read them (the Redis store tells us; memory never does).
  store.onRemoteChange(({ collection }) => {
    if (collection === 'policy') access.reload().catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
  });
  const events = stores.events;
  const media = overrides.media ?? (await createMedia(config, secrets, logger));

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
    storeReady: () => stores.ready(),
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
