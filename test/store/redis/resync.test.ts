/**
 * Pub/sub does not replay messages sent while a broker was disconnected: after a reconnect the Redis
 * document store re-reads the access-relevant collections and tells its listeners.
 */
import t from 'tap';
import { connectRedis } from '../../../src/store/redis/client.js';
import { RedisDocumentStore } from '../../../src/store/redis/document-store.js';
import type { DocumentChange } from '../../../src/core/ports.js';
import { privateRedis } from '../../process/helpers.js';
import { until } from '../../helper.js';

t.test('a change missed while disconnected is heard after the reconnect', async (t) => {
  const redis = await privateRedis(t);
  const client = await connectRedis({ url: redis.url, name: 'resync-test', initialConnectAttempts: 2 });
  const store = await RedisDocumentStore.open(client, { prefix: 'rs' });
  t.teardown(async () => {
    await store.close().catch(() => undefined);
    await client.close().catch(() => undefined);
  });
  const heard: DocumentChange[] = [];
  store.onRemoteChange((change) => heard.push(change));

  // Another broker's write whose notice this one never got (written without the pub/sub message).
  const raw = await connectRedis({ url: redis.url, name: 'resync-writer', initialConnectAttempts: 2 });
  await raw.hSet('rs:doc:{users}', 'u_1', JSON.stringify({ id: 'u_1', username: 'wx.op', disabled: true }));
  // A notified write after it: once its notice is heard, the silent write's would have been too (one channel, in order).
  const other = await RedisDocumentStore.open(raw, { prefix: 'rs' });
  await other.put('users', 'u_sentinel', { id: 'u_sentinel' });
  await until(t, 'the notified write to be heard', () => heard.some((c) => c.id === 'u_sentinel'));
  await other.close();
  await raw.close();
  t.notOk(heard.some((c) => c.id === 'u_1'), 'the silent write was not heard: its notice was never sent');

  await redis.kill();
  await redis.start();
  await until(t, 'the silent write to be heard after the reconnect', () => heard.some((c) => c.id === 'u_1'), 15_000);
  const change = heard.find((c) => c.id === 'u_1');
  t.ok(change, 'heard after the reconnect');
  t.same(change?.doc, { id: 'u_1', username: 'wx.op', disabled: true });
  t.equal(change?.collection, 'users');
});
