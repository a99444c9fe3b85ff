/**
 * Pub/sub does not replay messages sent while a broker was disconnected: after a reconnect the Redis
 * document store re-reads the access-relevant collections and tells its listeners.
 */
import t from 'tap';
import { connectRedis } from '../../../src/store/redis/client.js';
import { RedisDocumentStore } from '../../../src/store/redis/document-store.js';
import type { DocumentChange } from '../../../src/core/ports.js';
import { privateRedis } from '../../process/helpers.js';

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
  await raw.close();
  await new Promise((r) => setTimeout(r, 200));
  t.same(heard, [], 'nothing heard: the notice was never sent');

  await redis.kill();
  await redis.start();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !heard.some((c) => c.id === 'u_1')) await new Promise((r) => setTimeout(r, 100));
  const change = heard.find((c) => c.id === 'u_1');
  t.ok(change, 'heard after the reconnect');
  t.same(change?.doc, { id: 'u_1', username: 'wx.op', disabled: true });
  t.equal(change?.collection, 'users');
});
