import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { verifyChain } from '../../../src/core/audit-chain.js';
import type { AuditEntry } from '../../../src/core/model.js';
import { AUDIT_FILE, MemoryAuditStore } from '../../../src/store/memory/audit-store.js';
import { auditDraft, auditStoreConformance } from '../audit-store-conformance.js';

t.test('conformance', async (t) => {
  auditStoreConformance<MemoryAuditStore>(t, async (t) => {
    const dir = t.testdir();
    return { open: () => MemoryAuditStore.open(dir), close: (store) => store.close() };
  });
});

t.test('audit.jsonl is the chain itself, one entry per line', async (t) => {
  const dir = t.testdir();
  const store = await MemoryAuditStore.open(dir);
  const appended = await store.append([auditDraft(), auditDraft({ outcome: 'denied', reason: 'quota' })]);
  await store.close();
  const lines = (await fs.readFile(path.join(dir, AUDIT_FILE), 'utf8')).trimEnd().split('\n');
  const entries = lines.map((line) => JSON.parse(line) as AuditEntry);
  t.same(entries, appended);
  t.ok((await verifyChain(entries)).ok);
});

t.test('entries handed out cannot alter the stored log', async (t) => {
  const store = await MemoryAuditStore.open(t.testdir());
  t.teardown(() => store.close());
  const [entry] = await store.append([auditDraft({ details: { channelId: 'c1' } })]);
  t.throws(() => {
    (entry as { outcome: string }).outcome = 'denied';
  });
  t.throws(() => {
    (entry.details as Record<string, string>).channelId = 'c2';
  });
  const [queried] = await store.query({ limit: 1 });
  t.equal(queried.outcome, 'ok');
});
