/**
 * Shared Redis at 127.0.0.1:6379 for tests: every test space gets its own random key prefix and deletes
 * its keys afterwards (other tests use the same Redis at the same time; never FLUSHDB).
 */
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { connectRedis, type RedisClient } from '../../../src/store/redis/client.js';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export function connectTestRedis(url = REDIS_URL): Promise<RedisClient> {
  return connectRedis({ url, name: 'sharp-eyes-test', initialConnectAttempts: 2 });
}

/** A fresh prefix whose keys are removed at teardown. */
export function testPrefix(t: Test): string {
  const prefix = `test-${randomBytes(6).toString('hex')}`;
  t.teardown(async () => {
    const client = await connectTestRedis();
    try {
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) keys.push(...batch);
      if (keys.length > 0) await client.unlink(keys);
    } finally {
      await client.close();
    }
  });
  return prefix;
}
