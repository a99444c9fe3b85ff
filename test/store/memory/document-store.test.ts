import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryDocumentStore, STATE_FILE } from '../../../src/store/memory/document-store.js';
import { documentStoreConformance } from '../document-store-conformance.js';

t.test('conformance', async (t) => {
  documentStoreConformance<MemoryDocumentStore>(t, async (t) => {
    const dir = t.testdir();
    return { open: () => MemoryDocumentStore.open(dir), close: (store) => store.close() };
  });
});

t.test('creates the data dir private', async (t) => {
  const dir = path.join(t.testdir(), 'data');
  const store = await MemoryDocumentStore.open(dir);
  t.teardown(() => store.close());
  t.equal((await fs.stat(dir)).mode & 0o777, 0o700);
});

t.test('a journal full of superseded records is compacted at open', async (t) => {
  const dir = t.testdir();
  const store = await MemoryDocumentStore.open(dir);
  for (let round = 0; round < 6; round++) {
    await store.putMany('channels', Array.from({ length: 3000 }, (_, i) => ({ id: `c${i}`, doc: { round } })));
  }
  await store.put('users', 'u1', { name: 'erin' }, { unique: { index: 'username', key: 'erin' } });
  await store.close();
  const compactions: Array<{ before: number; after: number }> = [];
  const again = await MemoryDocumentStore.open(dir, { onCompacted: (info) => compactions.push(info) });
  t.teardown(() => again.close());
  t.match(compactions, [{ before: 18_001, after: 3001 }]);
  const lines = (await fs.readFile(path.join(dir, STATE_FILE), 'utf8')).trimEnd().split('\n');
  t.equal(lines.length, 3001);
  t.same(await again.get('channels', 'c7'), { round: 5 });
  await t.rejects(again.put('users', 'u2', {}, { unique: { index: 'username', key: 'erin' } }), { name: 'ConflictError' });
});

t.test('a torn last write is dropped at open and reported', async (t) => {
  const dir = t.testdir();
  const store = await MemoryDocumentStore.open(dir);
  await store.put('agencies', 'a', { name: 'A' });
  await store.close();
  await fs.appendFile(path.join(dir, STATE_FILE), '{"c":"agencies","id":"b","doc":{"na');
  const torn: unknown[] = [];
  const again = await MemoryDocumentStore.open(dir, { onTornTail: (x) => torn.push(x) });
  t.teardown(() => again.close());
  t.equal(torn.length, 1);
  t.same(await again.all('agencies'), [{ name: 'A' }]);
});
