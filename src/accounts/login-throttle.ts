/**
 * Failed-login throttling, per username and per client address (API.md: too many failures → 429).
 * Two limits because each alone is weak: per username stops guessing one account from many
 * addresses; per address stops spraying many accounts from one address. Failures are also slowed by
 * a short delay, as mediamtx does in `auth/log_and_delay_error.go`.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html#protect-against-automated-attacks
 *
 * Counting sits behind `LoginAttemptCounter` (fixed windows: the first failure opens a window, the
 * count drops to zero when it closes), which maps onto Redis as INCR + PEXPIRE NX, so several
 * brokers can later share one counter.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface AttemptWindow {
  count: number;
  /** Epoch ms when the window closes and the count drops to zero. */
  resetAt: number;
}

export interface LoginAttemptCounter {
  /** The current window of `key`, or null when there is none (no failure in the window). */
  peek(key: string): Promise<AttemptWindow | null>;
  /** Counts one failure; opens a window of `windowMs` when none is open. */
  increment(key: string, windowMs: number): Promise<AttemptWindow>;
  reset(key: string): Promise<void>;
}

/**
 * In-process counter with a hard bound on the number of keys. When full, the window opened longest
 * ago is dropped: memory never grows with the number of usernames or addresses an attacker makes up.
 */
export class MemoryLoginAttemptCounter implements LoginAttemptCounter {
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

  async peek(key: string): Promise<AttemptWindow | null> {
    const window = this.windows.get(key);
    if (!window) return null;
    if (window.resetAt <= this.now()) {
      this.windows.delete(key);
      return null;
    }
    return { ...window };
  }

  async increment(key: string, windowMs: number): Promise<AttemptWindow> {
    const now = this.now();
    const current = this.windows.get(key);
    if (current && current.resetAt > now) {
      current.count += 1;
      return { ...current };
    }
    this.windows.delete(key);
    while (this.windows.size >= this.maxKeys) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
    }
    const opened = { count: 1, resetAt: now + windowMs };
    this.windows.set(key, opened);
    return { ...opened };
  }

  async reset(key: string): Promise<void> {
    this.windows.delete(key);
  }
}

export interface LoginThrottleOptions {
  /** Failures per username within the window before logins for it are refused (default 5). */
  maxFailuresPerUsername?: number;
  /** Failures per client address within the window before its logins are refused (default 20). */
  maxFailuresPerAddress?: number;
  /** Window length in seconds (default 900 = 15 min). */
  windowSeconds?: number;
  /** Delay added to every failed attempt, in ms (default 300; 0 in tests). */
  failureDelayMs?: number;
  /** Keys each in-memory counter may hold (default 100,000). Ignored when `counters` is given. */
  maxTrackedKeys?: number;
  /** Replace the in-memory counters (e.g. with Redis-backed ones). */
  counters?: { byUsername: LoginAttemptCounter; byAddress: LoginAttemptCounter };
  /** Clock for the in-memory counters (tests). */
  now?: () => number;
}

export type ThrottleDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

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
  private readonly maxPerUsername: number;
  private readonly maxPerAddress: number;
  private readonly windowMs: number;
  private readonly failureDelayMs: number;
  private readonly byUsername: LoginAttemptCounter;
  private readonly byAddress: LoginAttemptCounter;
  private readonly now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    this.maxPerUsername = options.maxFailuresPerUsername ?? 5;
    this.maxPerAddress = options.maxFailuresPerAddress ?? 20;
    this.windowMs = (options.windowSeconds ?? 900) * 1000;
    this.failureDelayMs = options.failureDelayMs ?? 300;
    this.now = options.now ?? Date.now;
    const maxKeys = options.maxTrackedKeys ?? 100_000;
    // Two separate counters so a flood of made-up addresses cannot evict a username's count.
    this.byUsername = options.counters?.byUsername ?? new MemoryLoginAttemptCounter(maxKeys, this.now);
    this.byAddress = options.counters?.byAddress ?? new MemoryLoginAttemptCounter(maxKeys, this.now);
  }

  /**
   * Ask before verifying the password: a refused attempt must not even be tried.
   * `address` is the client address as Fastify reports it (request.ip).
   */
  async check(username: string, address: string): Promise<ThrottleDecision> {
    const [byUser, byAddress] = await Promise.all([
      this.byUsername.peek(usernameKey(username)),
      this.byAddress.peek(addressKey(address)),
    ]);
    let blockedUntil = 0;
    if (byUser && byUser.count >= this.maxPerUsername) blockedUntil = Math.max(blockedUntil, byUser.resetAt);
    if (byAddress && byAddress.count >= this.maxPerAddress) blockedUntil = Math.max(blockedUntil, byAddress.resetAt);
    if (blockedUntil === 0) return { allowed: true };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((blockedUntil - this.now()) / 1000)) };
  }

  /** Counts a failed attempt (unknown user or wrong password alike), then waits the failure delay. */
  async recordFailure(username: string, address: string): Promise<void> {
    await Promise.all([
      this.byUsername.increment(usernameKey(username), this.windowMs),
      this.byAddress.increment(addressKey(address), this.windowMs),
    ]);
    if (this.failureDelayMs > 0) await sleep(this.failureDelayMs);
  }

  /**
   * A successful login clears the username's failures. The address keeps its count: one valid
   * account must not reset the budget of an address that is spraying others.
   */
  async recordSuccess(username: string): Promise<void> {
    await this.byUsername.reset(usernameKey(username));
  }
}

/** Usernames are lowercase by schema; bound the key so made-up names cannot be huge. */
function usernameKey(username: string): string {
  return username.toLowerCase().slice(0, 64);
}
