import t from 'tap';
import type { DocumentChange } from '../../../src/core/ports.js';
import type { RedisClient } from '../../../src/store/redis/client.js';
import { RedisDocumentStore } from '../../../src/store/redis/document-store.js';
import { documentStoreConformance } from '../document-store-conformance.js';
import { connectTestRedis, testPrefix } from './harness.js';

const clients = new WeakMap<RedisDocumentStore, RedisClient>();

async function openStore(prefix: string): Promise<RedisDocumentStore> {
  const client = await connectTestRedis();
  const store = await RedisDocumentStore.open(client, { prefix });
  clients.set(store, client);
  return store;
}

async function closeStore(store: RedisDocumentStore): Promise<void> {
  await store.close();
  await clients.get(store)?.close();
}

t.test('conformance', async (t) => {
  documentStoreConformance<RedisDocumentStore>(t, async (t) => {
    const prefix = testPrefix(t);
    return { open: () => openStore(prefix), close: closeStore };
  });
});

/** Resolves with the first `count` changes the store hears. */
function hear(store: RedisDocumentStore, count: number): Promise<DocumentChange[]> {
  const heard: DocumentChange[] = [];
  return new Promise((resolve) =>
    store.onRemoteChange((change) => {
      heard.push(change);
      if (heard.length === count) resolve(heard);
    }),
  );
}

t.test("another broker's writes reach onRemoteChange; our own do not", async (t) => {
  const prefix = testPrefix(t);
  const writer = await openStore(prefix);
  const reader = await openStore(prefix);
  t.teardown(async () => {
    await closeStore(writer);
    await closeStore(reader);
  });
  const ownEchoes: DocumentChange[] = [];
  writer.onRemoteChange((change) => ownEchoes.push(change));
  const changes = hear(reader, 4);
  await writer.put('agencies', 'weather', { name: 'Weather bureau' });
  await writer.putMany('channels', [
    { id: 'c1', doc: { name: 'one' } },
    { id: 'c2', doc: { name: 'two' } },
  ]);
  await writer.delete('agencies', 'weather');
  t.same(await changes, [
    { collection: 'agencies', id: 'weather', doc: { name: 'Weather bureau' } },
    { collection: 'channels', id: 'c1', doc: { name: 'one' } },
    { collection: 'channels', id: 'c2', doc: { name: 'two' } },
    { collection: 'agencies', id: 'weather', doc: null },
  ]);
  // The reader's own write travels the same channel as the writer's did; once the writer hears it, any echo
  // of the writer's own messages would have arrived before it.
  const writerHears = hear(writer, 1);
  await reader.put('meta', 'x', { v: 1 });
  t.same(await writerHears, [{ collection: 'meta', id: 'x', doc: { v: 1 } }]);
  t.same(ownEchoes, [{ collection: 'meta', id: 'x', doc: { v: 1 } }], 'the writer never heard itself');
});

t.test('a rejected write announces nothing', async (t) => {
  const prefix = testPrefix(t);
  const writer = await openStore(prefix);
  const reader = await openStore(prefix);
  t.teardown(async () => {
    await closeStore(writer);
    await closeStore(reader);
  });
  const changes = hear(reader, 2);
  await writer.put('users', 'u1', { name: 'alice' }, { unique: { index: 'username', key: 'alice' } });
  await t.rejects(writer.put('users', 'u2', { name: 'alice' }, { unique: { index: 'username', key: 'alice' } }));
  await writer.put('meta', 'marker', { v: 1 });
  t.same((await changes).map((c) => c.id), ['u1', 'marker']);
});
