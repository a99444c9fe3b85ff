/**
 * Login-attempt counters shared by every broker of a city: with per-process counters an attacker
 * spread over N brokers would get N times the budget. Each attempt is one Lua call that counts and
 * decides together (no check-then-count race between brokers either); Redis expires each window.
 */
import type { AttemptCount, AttemptKeys, AttemptLimits, AttemptWindow, LoginAttemptCounter } from '../../accounts/login-throttle.js';
import { LuaScript, type RedisClient } from './client.js';

const attemptScript = LuaScript.load('login-attempt');
const forgiveScript = LuaScript.load('login-forgive');

export class RedisLoginAttemptCounter implements LoginAttemptCounter {
  constructor(
    private readonly client: RedisClient,
    /** e.g. `se:login`; keys are `<prefix>:addr:…`, `<prefix>:pair:…`, `<prefix>:user:…`. */
    private readonly prefix: string,
  ) {}

  async count(keys: AttemptKeys, limits: AttemptLimits, windowMs: number): Promise<AttemptCount> {
    const reply = (await attemptScript.run(this.client, this.redisKeys(keys), [String(windowMs), String(limits.address), String(limits.pair)])) as number[];
    const now = Date.now();
    const window = (i: number): AttemptWindow | null =>
      reply.length > i + 1 ? { count: Number(reply[i]), resetAt: now + Math.max(0, Number(reply[i + 1])) } : null;
    return { address: window(0)!, pair: window(2), username: window(4) };
  }

  async forgive(keys: AttemptKeys): Promise<void> {
    await forgiveScript.run(this.client, this.redisKeys(keys), []);
  }

  private redisKeys(keys: AttemptKeys): string[] {
    return [`${this.prefix}:addr:${keys.address}`, `${this.prefix}:pair:${keys.pair}`, `${this.prefix}:user:${keys.username}`];
  }
}
