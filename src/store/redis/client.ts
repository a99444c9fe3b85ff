/**
 * The broker's Redis connection (node-redis 5) and its Lua scripts.
 *
 * Failing fast on an outage is the point, without mistaking this process's own backlog for one. With the
 * offline queue off, a command issued while the socket is down is rejected at once instead of waiting for a
 * reconnect. Every call through `redisCall` (or a LuaScript) is watched: Redis is unavailable when it has
 * answered nothing on this connection for the deadline (~1.5 s) while our command was waiting — a hung or
 * partitioned Redis turns into a 503 rather than a request that never answers. A command that merely waits
 * its turn behind thousands of others (a burst: node-redis writes 16 KiB at a time and waits for 'drain',
 * and replies are read only when the event loop gets to them) is not an outage while replies keep coming:
 * Redis answers one connection in order, so ours comes. node-redis 5's own `commandOptions.timeout` is not
 * used for that reason: it times the wait to be written, which is our own queue, not Redis.
 * @see https://github.com/redis/node-redis/blob/master/docs/client-configuration.md
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createClient, ErrorReply, type RedisClientType } from 'redis';
import { DomainError, unavailable } from '../../core/errors.js';

export type RedisClient = RedisClientType;

export const DEFAULT_COMMAND_TIMEOUT_MS = 1500;
/**
 * However steadily Redis answers, one call gives up after this long: a queue that deep is a broker far beyond
 * its load (the HTTP request it serves has timed out by then, BROKER_REQUEST_TIMEOUT_SECONDS).
 */
const MAX_WAIT_MS = 30_000;

/** Load shed, not an outage: Redis answers, this broker is too far behind to use the answer. */
const tooBusy = () => new DomainError('UNAVAILABLE', 503, 'the broker is too busy, try again', { 'retry-after': '1' });

/**
 * This process's own stalls: a ticker that notes how late it runs. While the event loop is busy elsewhere
 * (a burst of requests, a long synchronous task, GC), commands wait to be written and replies wait to be
 * read; that time is ours, so it is not counted as Redis's silence.
 */
const TICK_MS = 20;
const stalls = { total: 0, lastTick: 0, ticker: undefined as NodeJS.Timeout | undefined };

function stalledMs(): number {
  const now = performance.now();
  if (!stalls.ticker) {
    stalls.lastTick = now;
    stalls.ticker = setInterval(() => {
      const at = performance.now();
      stalls.total += Math.max(0, at - stalls.lastTick - TICK_MS);
      stalls.lastTick = at;
    }, TICK_MS).unref();
  }
  // Lateness of the tick that is due but has not run yet counts too.
  return stalls.total + Math.max(0, now - stalls.lastTick - TICK_MS);
}

/** What redisCall knows of each connected client: its deadline, and when Redis last answered on it. */
interface Liveness {
  deadlineMs: number;
  /** performance.now() of the latest reply (or error reply) to any call through redisCall, and stalledMs() then. */
  lastAnswerAt: number;
  stalledAtAnswer: number;
}
const liveness = new WeakMap<object, Liveness>();

function livenessOf(client: object): Liveness {
  let known = liveness.get(client);
  if (!known) {
    known = { deadlineMs: DEFAULT_COMMAND_TIMEOUT_MS, lastAnswerAt: -Infinity, stalledAtAnswer: 0 };
    liveness.set(client, known);
  }
  return known;
}

export interface RedisConnectionOptions {
  /** redis://host:port[/db]; credentials may be part of it and are never logged here. */
  url: string;
  /** How long Redis may stay silent on the connection while a command waits, before that command fails. Default 1500 ms. */
  commandTimeoutMs?: number;
  /** TCP connect timeout. Default 1000 ms. */
  connectTimeoutMs?: number;
  /** Backoff between reconnect attempts grows to this cap. Default 2000 ms. */
  maxReconnectDelayMs?: number;
  /** Attempts at the first connect before giving up (a broker that cannot reach Redis at boot stops). Default 5. */
  initialConnectAttempts?: number;
  /** Connection errors and reconnects, for the operator log. Without it they are dropped (never thrown). */
  onError?: (error: Error) => void;
  /** CLIENT SETNAME, shows up in CLIENT LIST. */
  name?: string;
}

/**
 * Connects and resolves once the client is ready. Before the first success, reconnects are bounded by
 * `initialConnectAttempts` so a wrong URL fails the boot; after it, the client keeps retrying with capped
 * exponential backoff and jitter for as long as the process lives (commands fail fast meanwhile).
 */
export async function connectRedis(options: RedisConnectionOptions): Promise<RedisClient> {
  const maxDelay = options.maxReconnectDelayMs ?? 2000;
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const initialAttempts = options.initialConnectAttempts ?? 5;
  let everReady = false;
  const client: RedisClient = createClient({
    url: options.url,
    name: options.name,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 1000,
      reconnectStrategy: (retries, cause) => {
        if (!everReady && retries >= initialAttempts) return new Error(`cannot connect to Redis: ${cause.message}`);
        const backoff = Math.min(maxDelay, 50 * 2 ** Math.min(retries, 10));
        return Math.round(backoff / 2 + Math.random() * (backoff / 2));
      },
    },
  });
  // An EventEmitter 'error' with no listener would crash the process; reconnects are handled above.
  client.on('error', (error: Error) => options.onError?.(error));
  client.on('ready', () => {
    everReady = true;
  });
  livenessOf(client).deadlineMs = commandTimeoutMs;
  await client.connect();
  return client;
}

/** Replies by which Redis says "not now" rather than "wrong": worth a 503 and a retry. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

/**
 * Runs one Redis operation on `client` and turns "Redis is not there" (offline, closed, silent past the
 * deadline, or a transient reply) into the 503 of the public contract, so no caller mistakes an outage for an
 * answer. Other error replies are bugs (a bad script, a wrong type) and pass through as they are.
 *
 * The deadline is Redis's silence, not this call's age: when it passes, the call fails only if no call on the
 * same client was answered meanwhile. A command past its deadline may still run later; callers that must know
 * (the audit append, the slot grants) check or compensate afterwards.
 */
export async function redisCall<T>(client: RedisClient, operation: () => Promise<T>): Promise<T> {
  const live = livenessOf(client);
  const { deadlineMs } = live;
  const issuedAt = performance.now();
  const stalledAtIssue = stalledMs();
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const deadline = new Promise<never>((_, reject) => {
    // The timer and Redis's replies can be due in the same loop turn, and timers run first: let the I/O
    // phase go once more (setImmediate runs after it) so replies that already arrived count.
    const expire = () =>
      setImmediate(() => {
        if (settled) return; // answered in the I/O phase just let through
        const at = performance.now();
        // Silent since our call or since the last answer on this connection, whichever is later, less the
        // time this process was too busy to write or read.
        const answeredSince = live.lastAnswerAt > issuedAt;
        const since = answeredSince ? live.lastAnswerAt : issuedAt;
        const silence = at - since - (stalledMs() - (answeredSince ? live.stalledAtAnswer : stalledAtIssue));
        if (silence < deadlineMs) {
          // Redis is answering this connection, ours is further down the line: wait on, up to a point.
          if (at - issuedAt >= MAX_WAIT_MS) return reject(tooBusy());
          timer = setTimeout(expire, Math.max(TICK_MS, deadlineMs - silence));
          return;
        }
        reject(new Error(`no reply from Redis within ${Math.round(at - since)} ms`));
      });
    timer = setTimeout(expire, deadlineMs);
  });
  const answered = () => {
    live.lastAnswerAt = performance.now();
    live.stalledAtAnswer = stalledMs();
  };
  try {
    return await Promise.race([
      operation().then(
        (reply) => {
          answered();
          return reply;
        },
        (error: unknown) => {
          if (error instanceof ErrorReply) answered();
          throw error;
        },
      ),
      deadline,
    ]);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    if (error instanceof ErrorReply && !TRANSIENT_REPLY.test(error.message)) throw error;
    throw Object.assign(unavailable(), { cause: error });
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

/**
 * Script calls bounded like every other call, for a store that manages its own scripts (the slot
 * pools load their two-file forwarding script themselves).
 */
export function boundedScriptClient(client: RedisClient) {
  return {
    scriptLoad: (source: string) => redisCall(client, () => client.scriptLoad(source)),
    evalSha: (sha: string, options: { keys: string[]; arguments: string[] }) => redisCall(client, () => client.evalSha(sha, options)),
  };
}

/** The error Redis sends when a script's SHA is not in its cache (after a restart or SCRIPT FLUSH). */
function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * A script under ./lua, called by SHA1 (EVALSHA) so its source crosses the wire only when Redis does not
 * know it yet: on NOSCRIPT it is loaded once (SCRIPT LOAD) and the call repeated.
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Reads `lua/<name>.lua` next to this module. */
  static load(name: string): LuaScript {
    return new LuaScript(name, readFileSync(luaFile(name), 'utf8'));
  }

  /** Runs the script; outages become 503 DomainErrors (see redisCall). */
  run(client: RedisClient, keys: string[], args: string[]): Promise<unknown> {
    return redisCall(client, async () => {
      try {
        return await client.evalSha(this.sha, { keys, arguments: args });
      } catch (error) {
        if (!isNoScript(error)) throw error;
        await client.scriptLoad(this.source);
        return client.evalSha(this.sha, { keys, arguments: args });
      }
    });
  }
}

/**
 * Lua sources live in src/store/redis/lua. tsc does not copy them to dist/, so a built broker
 * (dist/store/redis) falls back to the source tree it was built from.
 */
function luaFile(name: string): string {
  const beside = fileURLToPath(new URL(`./lua/${name}.lua`, import.meta.url));
  if (existsSync(beside)) return beside;
  return fileURLToPath(new URL(`../../../src/store/redis/lua/${name}.lua`, import.meta.url));
}
