/**
 * Failed-login throttling (API.md "Authentication"; OWASP: throttle, never let a stranger lock an
 * account out). Three counts, each in a fixed window (the first attempt opens it, the count drops to
 * zero when it closes):
 *  - per (username, client address): past `maxFailuresPerPair` that pair gets 429. Guessing one
 *    account from one place stops there, and nobody else is affected;
 *  - per client address: past `maxFailuresPerAddress` that address gets 429 (spraying many accounts);
 *  - per username, from anywhere: it never refuses (that would hand anyone a lockout of `admin`,
 *    issue 8 point 7), it only slows the failed answers, by a delay that doubles past the pair limit
 *    up to `maxFailureDelayMs` (mediamtx `auth/log_and_delay_error.go`, made to grow).
 * An attempt counts when it ARRIVES, in one atomic step that counts and decides together, before
 * the password is checked: checking first and counting the failure after the slow scrypt let 40
 * concurrent guesses all be evaluated (issue 8, point 4). The right password then takes its
 * attempt back: it clears the pair and the username, and gives the address its one attempt back
 * (one valid account must not reset the budget of an address that is spraying others).
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html#protect-against-automated-attacks
 *
 * Counting sits behind `LoginAttemptCounter`: in process here, a Lua script in Redis
 * (src/store/redis/login-attempts.ts) so that every broker of a city shares one budget.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface AttemptWindow {
  count: number;
  /** Epoch ms when the window closes and the count drops to zero. */
  resetAt: number;
}

/** The three keys one attempt is counted under (see `attemptKeys`). */
export interface AttemptKeys {
  address: string;
  pair: string;
  username: string;
}

export interface AttemptLimits {
  /** Attempts an address may make within a window; the next ones are refused. */
  address: number;
  /** Attempts a (username, address) pair may make within a window. */
  pair: number;
}

/**
 * What counting one attempt found. Counting stops at the first count past its limit: an attempt the
 * address limit refuses is not counted on the pair, one the pair refuses not on the username (it was
 * never evaluated, so it must not slow the account down, nor make keys for made-up names).
 */
export interface AttemptCount {
  address: AttemptWindow;
  pair: AttemptWindow | null;
  username: AttemptWindow | null;
}

export interface LoginAttemptCounter {
  /** Counts one arriving attempt, as one atomic step: address, then pair, then username (see AttemptCount). */
  count(keys: AttemptKeys, limits: AttemptLimits, windowMs: number): Promise<AttemptCount>;
  /** The attempt was the right password: clears the pair and the username, takes the attempt back from the address. */
  forgive(keys: AttemptKeys): Promise<void>;
}

/**
 * Fixed windows per key with a hard bound on the number of keys. When full, the window opened
 * longest ago is dropped: memory never grows with the names or addresses an attacker makes up.
 */
export class BoundedWindows {
  // Map iteration order is insertion order; a key is re-inserted when its window reopens, so the
  // first key is always the oldest window.
  private readonly windows = new Map<string, AttemptWindow>();

  constructor(
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new Error('maxKeys must be a positive integer');
  }

  get size(): number {
    return this.windows.size;
  }

  peek(key: string): AttemptWindow | null {
    const window = this.windows.get(key);
    if (!window) return null;
    if (window.resetAt <= this.now()) {
      this.windows.delete(key);
      return null;
    }
    return { ...window };
  }

  increment(key: string, windowMs: number): AttemptWindow {
    const current = this.windows.get(key);
    if (current && current.resetAt > this.now()) {
      current.count += 1;
      return { ...current };
    }
    this.windows.delete(key);
    while (this.windows.size >= this.maxKeys) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
    }
    const opened = { count: 1, resetAt: this.now() + windowMs };
    this.windows.set(key, opened);
    return { ...opened };
  }

  decrement(key: string): void {
    const current = this.windows.get(key);
    if (current && current.resetAt > this.now() && current.count > 0) current.count -= 1;
  }

  reset(key: string): void {
    this.windows.delete(key);
  }
}

/**
 * In-process counter. Atomic because each step is synchronous (no await between counting and
 * deciding). Three separate bounds, so a flood of made-up pairs or addresses cannot evict a
 * username's count or the other way round.
 */
export class MemoryLoginAttemptCounter implements LoginAttemptCounter {
  readonly byAddress: BoundedWindows;
  readonly byPair: BoundedWindows;
  readonly byUsername: BoundedWindows;

  constructor(maxKeys: number, now: () => number = Date.now) {
    this.byAddress = new BoundedWindows(maxKeys, now);
    this.byPair = new BoundedWindows(maxKeys, now);
    this.byUsername = new BoundedWindows(maxKeys, now);
  }

  count(keys: AttemptKeys, limits: AttemptLimits, windowMs: number): Promise<AttemptCount> {
    return Promise.resolve(this.countNow(keys, limits, windowMs));
  }

  forgive(keys: AttemptKeys): Promise<void> {
    this.byAddress.decrement(keys.address);
    this.byPair.reset(keys.pair);
    this.byUsername.reset(keys.username);
    return Promise.resolve();
  }

  private countNow(keys: AttemptKeys, limits: AttemptLimits, windowMs: number): AttemptCount {
    const address = this.byAddress.increment(keys.address, windowMs);
    if (address.count > limits.address) return { address, pair: null, username: null };
    const pair = this.byPair.increment(keys.pair, windowMs);
    if (pair.count > limits.pair) return { address, pair, username: null };
    return { address, pair, username: this.byUsername.increment(keys.username, windowMs) };
  }
}

export interface LoginThrottleOptions {
  /** Attempts per (username, address) within the window before that pair is refused (default 5). */
  maxFailuresPerPair?: number;
  /** Attempts per client address within the window before its logins are refused (default 20). */
  maxFailuresPerAddress?: number;
  /** Window length in seconds (default 900 = 15 min). */
  windowSeconds?: number;
  /** Delay added to every failed attempt, in ms (default 300; 0 in tests). */
  failureDelayMs?: number;
  /** Cap of the delay once a username's failures pass the pair limit and it doubles (default 5000). */
  maxFailureDelayMs?: number;
  /** Keys each in-memory count may hold (default 100,000). Ignored when `counter` is given. */
  maxTrackedKeys?: number;
  /** Replace the in-memory counter (e.g. with the Redis one). */
  counter?: LoginAttemptCounter;
  /** Clock for the in-memory counter (tests). */
  now?: () => number;
}

/** An attempt the throttle let through: settle it with `failed` or `succeeded` once the password is checked. */
export interface AdmittedAttempt {
  allowed: true;
  keys: AttemptKeys;
  /** Attempts on this username within the window, from any address, this one included. */
  usernameAttempts: number;
}
export type LoginAttempt = AdmittedAttempt | { allowed: false; retryAfterSeconds: number };

/**
 * The key an address is counted under. IPv6 clients usually hold a whole /64, so counting single
 * addresses would let one client rotate through 2^64 of them; IPv4-mapped IPv6 counts as IPv4.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIPv4(mapped[1])) return mapped[1];
  if (!isIPv6(address)) return address.slice(0, 64);
  const [head, tail] = address.split('%')[0].split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class LoginThrottle {
  private readonly limits: AttemptLimits;
  private readonly windowMs: number;
  private readonly failureDelayMs: number;
  private readonly maxFailureDelayMs: number;
  private readonly counter: LoginAttemptCounter;
  private readonly now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    this.limits = { pair: options.maxFailuresPerPair ?? 5, address: options.maxFailuresPerAddress ?? 20 };
    this.windowMs = (options.windowSeconds ?? 900) * 1000;
    this.failureDelayMs = options.failureDelayMs ?? 300;
    this.maxFailureDelayMs = options.maxFailureDelayMs ?? 5000;
    this.now = options.now ?? Date.now;
    this.counter = options.counter ?? new MemoryLoginAttemptCounter(options.maxTrackedKeys ?? 100_000, this.now);
  }

  /**
   * Counts an attempt as it arrives, before the password is checked, and says whether it may be
   * evaluated. `address` is the client address as Fastify reports it (request.ip).
   */
  async arrive(username: string, address: string): Promise<LoginAttempt> {
    const keys = attemptKeys(username, address);
    const count = await this.counter.count(keys, this.limits, this.windowMs);
    let blockedUntil = 0;
    if (count.address.count > this.limits.address) blockedUntil = count.address.resetAt;
    else if (count.pair && count.pair.count > this.limits.pair) blockedUntil = count.pair.resetAt;
    if (blockedUntil > 0 || !count.username) {
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((blockedUntil - this.now()) / 1000)) };
    }
    return { allowed: true, keys, usernameAttempts: count.username.count };
  }

  /** The password was wrong (or the user unknown): the attempt stays counted; the answer waits the delay. */
  async failed(attempt: AdmittedAttempt): Promise<void> {
    const delayMs = this.failureDelay(attempt.usernameAttempts);
    if (delayMs > 0) await sleep(delayMs);
  }

  /** The password was right: the attempt was no failure. */
  async succeeded(attempt: AdmittedAttempt): Promise<void> {
    await this.counter.forgive(attempt.keys);
  }

  /**
   * How long a failed answer waits: the base delay while the username has had no more attempts
   * than one pair may make, then doubling with each one, up to the cap. Many addresses guessing
   * one account so slow down each other, never the password's owner (a success is not delayed).
   */
  failureDelay(usernameAttempts: number): number {
    const grown = this.failureDelayMs * 2 ** Math.max(0, usernameAttempts - this.limits.pair);
    return Math.min(grown, Math.max(this.failureDelayMs, this.maxFailureDelayMs));
  }
}

/** Usernames are lowercase by schema; bound the key so made-up names cannot be huge. */
function usernameKey(username: string): string {
  return username.toLowerCase().slice(0, 64);
}

/** The keys an attempt is counted under; the pair is JSON so no username can collide with another pair. */
export function attemptKeys(username: string, address: string): AttemptKeys {
  const user = usernameKey(username);
  const addr = addressKey(address);
  return { address: addr, pair: JSON.stringify([user, addr]), username: user };
}
