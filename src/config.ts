/**
 * Configuration: config/default.json < config/<NODE_ENV>.json < BROKER_* environment variables.
 * Validated against a schema at boot; a bad value stops the process with a message naming it.
 * @see ../shared/API.md "Configuration"
 */
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseSigningKey } from './core/audit-head.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const Seconds = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });

export const ConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 255 }),
    port: Port,
    store: Type.Union([Type.Literal('memory'), Type.Literal('redis')]),
    redisUrl: Type.String({ pattern: '^rediss?://' }),
    redisPrefix: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,32}$' }),
    dataDir: Type.String({ minLength: 1 }),
    forwardingSlots: Type.Integer({ minimum: 1, maximum: 100000 }),
    analyticsSlots: Type.Integer({ minimum: 1, maximum: 100000 }),
    leaseTtlSeconds: Seconds(1, 3600),
    idleCloseSeconds: Seconds(0, 3600),
    adminPassword: Type.Optional(Type.String({ minLength: 10, maxLength: 128 })),
    tokenSecret: Type.Optional(Type.String({ minLength: 32, maxLength: 512 })),
    /** Shared with every media node (MEDIA_PLAY_SECRET) in BROKER_MEDIA=nodes; generated otherwise. */
    playSecret: Type.Optional(Type.String({ minLength: 32, maxLength: 512 })),
    /** Shared with every media node (MEDIA_CONTROL_SECRET) in BROKER_MEDIA=nodes; generated otherwise. */
    mediaControlSecret: Type.Optional(Type.String({ minLength: 32, maxLength: 512 })),
    demo: Type.Union([Type.Literal('auto'), Type.Literal('0'), Type.Literal('1')]),
    demoCameras: Type.Integer({ minimum: 0, maximum: 200 }),
    media: Type.Union([Type.Literal('embedded'), Type.Literal('nodes'), Type.Literal('none')]),
    mediaRtmpPort: Port,
    mediaHttpPort: Port,
    mediaControlPort: Port,
    simulatorRtmpPort: Port,
    sourceTimeoutSeconds: Seconds(1, 120),
    publicMediaUrl: Type.String({ maxLength: 512 }),
    logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 }),
    importBodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 512 * 1024 * 1024 }),
    tokenTtlSeconds: Seconds(60, 7 * 24 * 3600),
    /** Verified bearer tokens each broker remembers (their expiry still checked on every use); 0: none. */
    tokenCacheEntries: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    /** Attempts per (username, client address) pair in a window (API.md keeps the name `..._PER_USER`). */
    loginMaxFailuresPerUser: Type.Integer({ minimum: 1, maximum: 1000 }),
    loginMaxFailuresPerAddress: Type.Integer({ minimum: 1, maximum: 10000 }),
    loginFailureWindowSeconds: Seconds(1, 86400),
    loginFailureDelayMs: Type.Integer({ minimum: 0, maximum: 5000 }),
    /** Cap of the growing delay on a username guessed from many addresses (it slows, never locks). */
    loginMaxFailureDelayMs: Type.Integer({ minimum: 0, maximum: 60000 }),
    sweepIntervalMs: Type.Integer({ minimum: 50, maximum: 5000 }),
    wsMaxPayloadBytes: Type.Integer({ minimum: 256, maximum: 1048576 }),
    wsMaxConnectionsPerToken: Type.Integer({ minimum: 1, maximum: 100 }),
    wsMaxBufferedBytes: Type.Integer({ minimum: 4096, maximum: 64 * 1048576 }),
    /** How often each events socket's credentials are checked again (API.md: closed 4401 "within a few seconds"). */
    wsAuthRecheckSeconds: Seconds(1, 10),
    shutdownGraceSeconds: Seconds(1, 300),
    /** A request (headers and body) must arrive in full within this; a trickled body is cut with 408. */
    requestTimeoutSeconds: Seconds(1, 600),
    /** An idle keep-alive connection is closed after this. */
    keepaliveTimeoutSeconds: Seconds(1, 600),
    /** The headers of a request, and the first request of a new connection, must arrive within this (at most the request timeout). */
    headersTimeoutSeconds: Seconds(1, 600),
    /**
     * A connection with no traffic either way for this long is closed, even mid-request (a client that
     * stopped reading its answer). Longer than any answer may take to start: the longest queued wait
     * (30 s) plus the source timeout.
     */
    socketIdleTimeoutSeconds: Seconds(1, 3600),
    /** Open connections the HTTP server accepts at once (events WebSockets included); more are refused. */
    maxConnections: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Size of a request's headers (request line included) beyond which it is answered 431. */
    maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1048576 }),
    /** Bearer token /metrics requires when set; unset: loopback clients only (API.md "Operations"). */
    metricsToken: Type.Optional(Type.String({ minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' })),
    /** Repeated denials of one caller are counted into one audit entry per window (API.md "Audit"). */
    auditCoalesceSeconds: Seconds(1, 3600),
    /** Callers whose denials are counted at once; beyond it they are merged into one entry per window. */
    auditCoalesceMaxKeys: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /**
     * Ed25519 private key (PEM) that signs audit heads (API.md "Audit"); unset: generated once and kept in
     * the data dir (memory store) or the shared store (Redis). `\n` written as two characters is read as a
     * line break, for environments that cannot hold one.
     */
    auditSigningKey: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
    /** Players one session's URLs admit at once (API.md "Streams"); passed to the embedded media node. */
    maxPlayersPerSession: Type.Integer({ minimum: 1, maximum: 100 }),
    /**
     * H.265 → H.264 transcodes the embedded media node runs at once (API.md Streams `codec: "h264"`); each is
     * a libx264 encoder. 0 turns them off. Nodes of BROKER_MEDIA=nodes have their own
     * MEDIA_MAX_TRANSCODES.
     */
    mediaMaxTranscodes: Type.Integer({ minimum: 0, maximum: 256 }),
    /** GB/T 28181 SIP, UDP and TCP on one port (API.md "GB/T 28181 access"); port 0 turns it off. */
    gbSipHost: Type.String({ minLength: 1, maxLength: 255 }),
    gbSipPort: Port,
    /** The address devices are told to reach us at (Via, Contact); unset: gbSipHost. */
    gbSipAdvertisedHost: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    /** The broker's SIP id: 20 digits, device type 200 (digits 11-13). */
    gbServerId: Type.String({ pattern: '^[0-9]{10}200[0-9]{7}$' }),
    /** Digest realm; unset: the first 10 digits of the server id. */
    gbRealm: Type.Optional(Type.String({ pattern: '^[0-9]{10}$' })),
    gbKeepaliveTimeoutSeconds: Seconds(10, 3600),
    /** Bytes of one SIP message (UDP datagram or TCP frame); bigger ones are dropped / end the connection. */
    gbSipMaxMessageBytes: Type.Integer({ minimum: 1024, maximum: 1048576 }),
    gbSipMaxHeaders: Type.Integer({ minimum: 8, maximum: 256 }),
    gbSipMaxTcpConnections: Type.Integer({ minimum: 1, maximum: 100000 }),
    /**
     * Kernel receive buffer of the SIP UDP socket. The default (~208 KB, a few hundred REGISTERs) overflows
     * when a thousand devices register at once after a restart, and their synchronized retransmissions
     * overflow it again (bench gb-devices). Linux caps it at net.core.rmem_max.
     */
    gbSipUdpReceiveBufferBytes: Type.Integer({ minimum: 65536, maximum: 268435456 }),
    /** How long a Catalog answer split over many MESSAGEs may take to arrive in full. */
    gbCatalogTimeoutSeconds: Seconds(1, 600),
    /** Items one device's catalog may bring (a lower platform's whole catalog). */
    gbCatalogMaxItems: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Life of the catalog subscription (SUBSCRIBE Expires); refreshed at two thirds of it. */
    gbSubscribeExpiresSeconds: Seconds(60, 86400),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const rootDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `forwardingSlots` → `BROKER_FORWARDING_SLOTS`. */
export const envName = (key: string) => 'BROKER_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

function coerce(key: string, raw: string): unknown {
  const schema = (ConfigSchema.properties as Record<string, { type?: string }>)[key];
  if (schema?.type === 'integer') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${envName(key)} must be an integer, got "${raw}"`);
    return Number(raw);
  }
  return raw;
}

/**
 * Loads and validates the configuration. Throws ConfigError naming the first bad setting.
 * `env` and `overrides` are parameters so tests build the app with exactly the process's rules.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const merged: Record<string, unknown> = { ...readJson(join(rootDir, 'config', 'default.json')) };
  const profile = env.NODE_ENV && join(rootDir, 'config', `${env.NODE_ENV}.json`);
  if (profile && existsSync(profile)) Object.assign(merged, readJson(profile));

  const known = new Map(Object.keys(ConfigSchema.properties).map((k) => [envName(k), k]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('BROKER_') || raw === undefined) continue;
    const key = known.get(name);
    if (!key) throw new ConfigError(`unknown setting ${name} (known: ${[...known.keys()].join(', ')})`);
    merged[key] = coerce(key, raw);
  }
  Object.assign(merged, overrides);

  const firstError = Value.Errors(ConfigSchema, merged).First();
  if (firstError) {
    const key = firstError.path.replace(/^\//, '');
    const where = key ? `${key} (${envName(key)})` : 'configuration';
    throw new ConfigError(`invalid ${where}: ${firstError.message}`);
  }
  const config = merged as Config;
  if (config.media === 'nodes' && config.store !== 'redis') {
    throw new ConfigError('invalid media (BROKER_MEDIA): "nodes" needs BROKER_STORE=redis (media nodes register in Redis)');
  }
  // The longest a request's answer may take to start: a queued stream request (waitSeconds ≤ 30) whose source then starts.
  if (config.socketIdleTimeoutSeconds <= 30 + config.sourceTimeoutSeconds) {
    throw new ConfigError(
      `invalid socketIdleTimeoutSeconds (BROKER_SOCKET_IDLE_TIMEOUT_SECONDS): must exceed 30 + BROKER_SOURCE_TIMEOUT_SECONDS (${30 + config.sourceTimeoutSeconds}), or slow answers are cut`,
    );
  }
  if (config.auditSigningKey !== undefined) {
    if (!config.auditSigningKey.includes('\n')) config.auditSigningKey = config.auditSigningKey.replace(/\\n/g, '\n');
    const key = parseSigningKey(config.auditSigningKey);
    // The message names the setting and the reason, never the value (it is a secret).
    if (key instanceof Error) throw new ConfigError(`invalid auditSigningKey (BROKER_AUDIT_SIGNING_KEY): ${key.message}`);
  }
  config.dataDir = resolve(config.dataDir);
  config.gbRealm ??= config.gbServerId.slice(0, 10);
  return config;
}
