/**
 * Failed-login counters shared by every broker of a city: with per-process counters an attacker
 * spread over N brokers would get N times the budget. Redis expires each window by itself.
 */
import type { AttemptWindow, LoginAttemptCounter } from '../../accounts/login-throttle.js';
import { LuaScript, redisCall, type RedisClient } from './client.js';

const attemptScript = LuaScript.load('login-attempt');

export class RedisLoginAttemptCounter implements LoginAttemptCounter {
  constructor(
    private readonly client: RedisClient,
    /** e.g. `se:login:user` — one counter family per prefix. */
    private readonly prefix: string,
  ) {}

  async peek(key: string): Promise<AttemptWindow | null> {
    const k = this.key(key);
    const [count, ttl] = await redisCall(this.client, () => this.client.multi().get(k).pTTL(k).exec());
    if (count == null || Number(ttl) <= 0) return null;
    return { count: Number(count), resetAt: Date.now() + Number(ttl) };
  }

  async increment(key: string, windowMs: number): Promise<AttemptWindow> {
    const [count, ttl] = (await attemptScript.run(this.client, [this.key(key)], [String(windowMs)])) as [number, number];
    return { count: Number(count), resetAt: Date.now() + Math.max(0, Number(ttl)) };
  }

  async reset(key: string): Promise<void> {
    const k = this.key(key);
    await redisCall(this.client, () => this.client.del(k));
  }

  private key(key: string): string {
    return `${this.prefix}:${key}`;
  }
}
