/**
 * Every write the store acknowledged must survive a SIGKILL: a child writes concurrently and prints each
 * acknowledgement; we kill it mid-stream, reopen the data dir and look for every acknowledged record.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { verifyChain } from '../../../src/core/audit-chain.js';
import type { AuditEntry } from '../../../src/core/model.js';
import { MemoryAuditStore } from '../../../src/store/memory/audit-store.js';
import { MemoryDocumentStore } from '../../../src/store/memory/document-store.js';

const writer = fileURLToPath(new URL('../fixtures/durable-writer.ts', import.meta.url));
const ACKS_BEFORE_KILL = 2000;

t.test('acknowledged writes survive SIGKILL and the audit chain still verifies', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const child = spawn(process.execPath, ['--import', 'tsx', writer, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const ackedDocs: string[] = [];
  const ackedAudit = new Map<number, string>();
  let acks = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const [kind, a, b] = line.split(' ');
    if (kind === 'doc') ackedDocs.push(a);
    else if (kind === 'audit') ackedAudit.set(Number(a), b);
    else continue;
    if (++acks === ACKS_BEFORE_KILL) child.kill('SIGKILL');
  }
  const [, signal] = await exited;
  t.equal(signal, 'SIGKILL', 'the writer was killed, not finished');
  t.ok(ackedDocs.length > 100 && ackedAudit.size > 100, `acknowledged ${ackedDocs.length} docs, ${ackedAudit.size} entries`);

  const tornTails: unknown[] = [];
  const documents = await MemoryDocumentStore.open(dataDir, { onTornTail: (x) => tornTails.push(x) });
  const audit = await MemoryAuditStore.open(dataDir, { onTornTail: (x) => tornTails.push(x) });
  t.teardown(() => Promise.all([documents.close(), audit.close()]));
  t.comment(`torn tails repaired at reopen: ${tornTails.length}`);

  const missingDocs = [];
  for (const id of ackedDocs) if ((await documents.get('channels', id)) === undefined) missingDocs.push(id);
  t.same(missingDocs, [], 'every acknowledged document is there');

  const entries: AuditEntry[] = [];
  for await (const entry of audit.scan()) entries.push(entry);
  const missingEntries = [...ackedAudit].filter(([seq, target]) => entries[seq - 1]?.target !== target);
  t.same(missingEntries, [], 'every acknowledged audit entry is there, at its seq');
  t.same(await verifyChain(entries), { ok: true, entries: entries.length, firstBadSeq: null, problem: null });
});
