import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createClient } from 'redis';
import { RedisSlotStore } from '../../src/store/redis/slot-store.js';
import { runSlotStoreConformance } from './slot-store-conformance.js';
import { deleteKeys, REDIS_URL } from './fixtures/pool-redis.js';

const client = createClient({ url: REDIS_URL });
await client.connect();
t.teardown(() => client.close());

runSlotStoreConformance(t, async (options) => {
  // A prefix per case: the shared Redis also serves other test files running at the same time.
  const prefix = `test-slots-${randomUUID()}`;
  const store = new RedisSlotStore({ client, prefix, ...options });
  return {
    store,
    // Redis TIME is the store's clock: letting time pass means waiting.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: () => deleteKeys(client, prefix),
  };
});

t.test('a flushed script cache is reloaded on NOSCRIPT', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  let loads = 0;
  const counting = {
    scriptLoad: (script: string) => {
      loads++;
      return client.scriptLoad(script);
    },
    // Pretend the server lost the script once, as after a restart.
    evalSha: async (sha: string, options: { keys: string[]; arguments: string[] }) => {
      if (loads === 1) throw new Error('NOSCRIPT No matching script. Please use EVAL.');
      return client.evalSha(sha, options);
    },
  };
  const store = new RedisSlotStore({ client: counting, prefix, forwardingLimit: 5 });
  t.type(await store.now(), 'number');
  t.equal(loads, 2);
});

t.test('a store given a url owns and closes its connection', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const store = new RedisSlotStore({ url: REDIS_URL, prefix });
  t.same((await store.usage()).forwarding, { limit: 3000, used: 0, queued: 0 });
  await store.close();
  await t.rejects(store.usage());
});
