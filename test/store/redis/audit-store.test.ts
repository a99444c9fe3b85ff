import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { verifyChain } from '../../../src/core/audit-chain.js';
import type { AuditEntry } from '../../../src/core/model.js';
import type { RedisClient } from '../../../src/store/redis/client.js';
import { RedisAuditStore } from '../../../src/store/redis/audit-store.js';
import { auditDraft, auditStoreConformance } from '../audit-store-conformance.js';
import { connectTestRedis, testPrefix } from './harness.js';

const clients = new WeakMap<RedisAuditStore, RedisClient>();

async function openStore(prefix: string): Promise<RedisAuditStore> {
  const client = await connectTestRedis();
  const store = new RedisAuditStore(client, { prefix });
  clients.set(store, client);
  return store;
}

async function collect(store: RedisAuditStore): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for await (const entry of store.scan()) entries.push(entry);
  return entries;
}

t.test('conformance', async (t) => {
  auditStoreConformance<RedisAuditStore>(t, async (t) => {
    const prefix = testPrefix(t);
    return { open: () => openStore(prefix), close: (store) => clients.get(store)!.close() };
  });
});

t.test('three clients appending to one chain lose nothing and keep it intact', async (t) => {
  const prefix = testPrefix(t);
  const stores = await Promise.all([openStore(prefix), openStore(prefix), openStore(prefix)]);
  t.teardown(() => Promise.all(stores.map((store) => clients.get(store)!.close())));
  await Promise.all(
    stores.flatMap((store, s) => Array.from({ length: 40 }, (_, i) => store.append([auditDraft({ target: `s${s}-${i}` })]))),
  );
  const entries = await collect(stores[0]);
  t.equal(entries.length, 120);
  t.same(await verifyChain(entries), { ok: true, entries: 120, firstBadSeq: null, problem: null });
  t.equal(new Set(entries.map((e) => e.target)).size, 120, 'every append is there once');
});

t.test('three broker processes appending to one chain lose nothing and keep it intact', async (t) => {
  const prefix = testPrefix(t);
  const appender = fileURLToPath(new URL('../fixtures/redis-audit-appender.ts', import.meta.url));
  const perProcess = 300;
  const children = ['p0', 'p1', 'p2'].map((name) => {
    const child = spawn(process.execPath, ['--import', 'tsx', appender, prefix, name, String(perProcess)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    return once(child, 'exit').then(([code]) => ({ code, stdout }));
  });
  const results = await Promise.all(children);
  t.same(results, [0, 1, 2].map(() => ({ code: 0, stdout: `done ${perProcess}\n` })));

  const store = await openStore(prefix);
  t.teardown(() => clients.get(store)!.close());
  const entries = await collect(store);
  t.equal(entries.length, 3 * perProcess);
  t.same(await verifyChain(entries), { ok: true, entries: 3 * perProcess, firstBadSeq: null, problem: null });
  const expected = ['p0', 'p1', 'p2'].flatMap((name) => Array.from({ length: perProcess }, (_, i) => `${name}-${i}`));
  t.same(entries.map((e) => e.target).sort(), expected.sort(), 'every acknowledged append is there once');
  t.same(await store.head(), { seq: 3 * perProcess, hash: entries.at(-1)!.hash, at: entries.at(-1)!.at });
});
