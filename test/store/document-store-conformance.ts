/**
 * What every DocumentStore must do, run against each adapter (memory, Redis).
 * `fresh(t)` gives an empty store space for one subtest: `open()` connects to it (again after a close, to
 * prove persistence) and `close(store)` lets go of it; the harness cleans up the space in t.teardown.
 */
import type { Test } from 'tap';
import { ConflictError, type DocumentStore } from '../../src/core/ports.js';

export interface DocumentStoreHarness<S extends DocumentStore> {
  open(): Promise<S>;
  close(store: S): Promise<void>;
}

type Doc = { name: string; n?: number; nested?: { tags: string[] } };

export function documentStoreConformance<S extends DocumentStore>(
  t: Test,
  fresh: (t: Test) => Promise<DocumentStoreHarness<S>>,
): void {
  async function opened(t: Test) {
    const harness = await fresh(t);
    const store = await harness.open();
    let current = store;
    t.teardown(() => harness.close(current));
    return {
      store,
      reopen: async () => {
        await harness.close(current);
        current = await harness.open();
        return current;
      },
    };
  }

  t.test('put then get returns an equal document that cannot change the store; missing ids are undefined', async (t) => {
    const { store } = await opened(t);
    t.equal(await store.get('agencies', 'nobody'), undefined);
    const doc: Doc = { name: 'Weather bureau', nested: { tags: ['a', 'b'] } };
    await store.put('agencies', 'weather', doc);
    const read = await store.get<Doc>('agencies', 'weather');
    t.same(read, doc);
    // A read is either a copy (Redis) or frozen (the embedded store shares one immutable object).
    try {
      read!.nested!.tags.push('mutated');
    } catch (err) {
      t.type(err, TypeError, 'frozen');
    }
    doc.name = 'changed after put';
    t.same(await store.get('agencies', 'weather'), { name: 'Weather bureau', nested: { tags: ['a', 'b'] } });
  });

  t.test('all lists one collection; put overwrites; delete removes', async (t) => {
    const { store } = await opened(t);
    await store.put('agencies', 'a', { name: 'A' });
    await store.put('agencies', 'b', { name: 'B' });
    await store.put('users', 'a', { name: 'user A' });
    await store.put('agencies', 'a', { name: 'A2' });
    await store.delete('agencies', 'b');
    await store.delete('agencies', 'never-existed');
    t.same(await store.all('agencies'), [{ name: 'A2' }]);
    t.same(await store.all('users'), [{ name: 'user A' }]);
    t.same(await store.all('policy'), []);
  });

  t.test('ifAbsent refuses an existing id and writes nothing', async (t) => {
    const { store } = await opened(t);
    await store.put('agencies', 'a', { name: 'first' }, { ifAbsent: true });
    await t.rejects(store.put('agencies', 'a', { name: 'second' }, { ifAbsent: true }), ConflictError);
    t.same(await store.get('agencies', 'a'), { name: 'first' });
  });

  t.test('a unique key is held by one document at a time', async (t) => {
    const { store } = await opened(t);
    const username = (key: string) => ({ unique: { index: 'username', key } });
    await store.put('users', 'u1', { name: 'alice' }, username('alice'));
    await t.rejects(store.put('users', 'u2', { name: 'alice' }, username('alice')), ConflictError);
    t.equal(await store.get('users', 'u2'), undefined, 'the loser wrote nothing');
    await store.put('users', 'u1', { name: 'alice', n: 2 }, username('alice'));
    await store.put('users', 'u1', { name: 'alice', n: 3 });
    await t.rejects(store.put('users', 'u2', { name: 'alice' }, username('alice')), ConflictError, 'kept across plain puts');
    await store.put('users', 'u3', { name: 'alice' }, { unique: { index: 'email', key: 'alice' } });
    await store.put('users', 'u1', { name: 'alicia' }, username('alicia'));
    await store.put('users', 'u2', { name: 'alice' }, username('alice'));
    t.pass('re-keying released the old key');
    await store.delete('users', 'u2');
    await store.put('users', 'u4', { name: 'alice' }, username('alice'));
    t.pass('deleting released the key');
  });

  t.test('concurrent claims of one unique key: exactly one wins', async (t) => {
    const { store } = await opened(t);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.put('users', `u${i}`, { name: 'bob' }, { unique: { index: 'username', key: 'bob' } })),
    );
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    t.ok(results.every((r) => r.status === 'fulfilled' || r.reason instanceof ConflictError));
    t.equal((await store.all('users')).length, 1);
  });

  t.test('putMany writes a large batch', async (t) => {
    const { store } = await opened(t);
    const docs = Array.from({ length: 5000 }, (_, i) => ({ id: `c${i}`, doc: { name: `camera ${i}`, n: i } }));
    await store.putMany('channels', docs);
    const all = await store.all<Doc>('channels');
    t.equal(all.length, 5000);
    t.same(await store.get('channels', 'c4321'), { name: 'camera 4321', n: 4321 });
  });

  t.test('everything survives a reopen, unique keys included', async (t) => {
    const { store, reopen } = await opened(t);
    await store.put('users', 'u1', { name: 'carol' }, { unique: { index: 'username', key: 'carol' } });
    await store.put('users', 'u2', { name: 'dave' }, { unique: { index: 'username', key: 'dave' } });
    await store.put('users', 'u2', { name: 'dave', n: 7 });
    await store.putMany('channels', [{ id: 'c1', doc: { name: 'one' } }, { id: 'c2', doc: { name: 'two' } }]);
    await store.delete('channels', 'c1');
    await store.delete('users', 'u1');
    const again = await reopen();
    t.same(await again.all('channels'), [{ name: 'two' }]);
    t.same(await again.get('users', 'u2'), { name: 'dave', n: 7 });
    await t.rejects(again.put('users', 'u9', { name: 'dave' }, { unique: { index: 'username', key: 'dave' } }), ConflictError);
    await again.put('users', 'u9', { name: 'carol' }, { unique: { index: 'username', key: 'carol' } });
  });
}
