/**
 * The broker's Redis connection (node-redis 5) and its Lua scripts.
 *
 * Failing fast is the point: with the offline queue off, a command issued while the socket is down is
 * rejected at once instead of waiting for a reconnect, and every call through `redisCall` (or a LuaScript)
 * has a deadline, so a hung or partitioned Redis turns into a 503 within ~1.5 s rather than a request that
 * never answers. node-redis 5's own `commandOptions.timeout` is set too, but it only covers the wait to be
 * written: once a command is on the socket its timer is removed (commands-queue.js `commandsToWrite`), so
 * a frozen Redis would hold the reply forever without our deadline.
 * @see https://github.com/redis/node-redis/blob/master/docs/client-configuration.md
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createClient, ErrorReply, type RedisClientType } from 'redis';
import { DomainError, unavailable } from '../../core/errors.js';

export type RedisClient = RedisClientType;

export const DEFAULT_COMMAND_TIMEOUT_MS = 1500;
/** A deadline timer later than this was held up by this process's own load, not by Redis. */
const LATE_TIMER_MS = 100;

/** The deadline of each connected client, read by redisCall. */
const deadlines = new WeakMap<object, number>();

export interface RedisConnectionOptions {
  /** redis://host:port[/db]; credentials may be part of it and are never logged here. */
  url: string;
  /** Per-command timeout. Default 1500 ms. */
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
    commandOptions: { timeout: commandTimeoutMs },
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
  deadlines.set(client, commandTimeoutMs);
  await client.connect();
  return client;
}

/** Replies by which Redis says "not now" rather than "wrong": worth a 503 and a retry. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

/**
 * Runs one Redis operation on `client` and turns "Redis is not there" (offline, closed, past the deadline,
 * or a transient reply) into the 503 of the public contract, so no caller mistakes an outage for an answer.
 * Other error replies are bugs (a bad script, a wrong type) and pass through as they are. A command past
 * its deadline may still run later; callers that must know (the audit append) check afterwards.
 */
export async function redisCall<T>(client: RedisClient, operation: () => Promise<T>): Promise<T> {
  const deadlineMs = deadlines.get(client) ?? DEFAULT_COMMAND_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    const armedAt = performance.now();
    let extended = false;
    const expire = () => {
      // A timer that fires late says this process, not Redis, was too busy to hear the reply:
      // grant the lost time once (an idle broker facing a frozen Redis still gives up on time).
      const late = performance.now() - armedAt - deadlineMs;
      if (!extended && late > LATE_TIMER_MS) {
        extended = true;
        timer = setTimeout(expire, Math.min(late, deadlineMs));
        return;
      }
      // The timer and Redis's reply can be due in the same loop turn, and timers run first: let the
      // I/O phase go once more (setImmediate runs after it) so a reply that already arrived wins.
      setImmediate(() => reject(new Error(`no reply from Redis within ${deadlineMs} ms`)));
    };
    timer = setTimeout(expire, deadlineMs);
  });
  try {
    return await Promise.race([operation(), deadline]);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    if (error instanceof ErrorReply && !TRANSIENT_REPLY.test(error.message)) throw error;
    throw Object.assign(unavailable(), { cause: error });
  } finally {
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
