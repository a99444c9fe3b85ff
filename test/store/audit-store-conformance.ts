/**
 * What every AuditStore must do, run against each adapter (memory, Redis). See document-store-conformance.ts
 * for the harness contract.
 */
import type { Test } from 'tap';
import { GENESIS_HASH, verifyChain } from '../../src/core/audit-chain.js';
import type { AuditDraft, AuditEntry } from '../../src/core/model.js';
import type { AuditStore } from '../../src/core/ports.js';

export interface AuditStoreHarness<S extends AuditStore> {
  open(): Promise<S>;
  close(store: S): Promise<void>;
}

export const auditDraft = (over: Partial<AuditDraft> = {}): AuditDraft => ({
  actor: { id: 'u-alice', role: 'operator', agencyId: 'weather' },
  action: 'stream.open',
  target: '44010600001310000001',
  outcome: 'ok',
  purpose: 'flood watch',
  ...over,
});

async function collect(entries: AsyncIterable<AuditEntry>): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

export function auditStoreConformance<S extends AuditStore>(t: Test, fresh: (t: Test) => Promise<AuditStoreHarness<S>>): void {
  async function opened(t: Test) {
    const harness = await fresh(t);
    let current = await harness.open();
    t.teardown(() => harness.close(current));
    return {
      store: current,
      reopen: async () => {
        await harness.close(current);
        current = await harness.open();
        return current;
      },
    };
  }

  t.test('an empty log has the genesis head', async (t) => {
    const { store } = await opened(t);
    t.same(await store.head(), { seq: 0, hash: GENESIS_HASH });
    t.same(await store.query({ limit: 10 }), []);
    t.same(await collect(store.scan()), []);
  });

  t.test('append chains entries in order and moves the head', async (t) => {
    const { store } = await opened(t);
    const first = await store.append([auditDraft(), auditDraft({ action: 'stream.release' })]);
    t.same(first.map((e) => e.seq), [1, 2]);
    t.equal(first[0].prevHash, GENESIS_HASH);
    t.equal(first[1].prevHash, first[0].hash);
    t.same(await store.append([]), []);
    const [third] = await store.append([auditDraft({ details: { channelId: 'c', ok: true, n: 1, none: null } })]);
    t.equal(third.prevHash, first[1].hash);
    t.same(await store.head(), { seq: 3, hash: third.hash, at: third.at }, 'the head carries the entry’s time exactly');
    t.same(third.details, { channelId: 'c', ok: true, n: 1, none: null });
    const scanned = await collect(store.scan());
    t.same(scanned, [...first, third]);
    t.same(await verifyChain(scanned), { ok: true, entries: 3, firstBadSeq: null, problem: null });
  });

  t.test('concurrent appends from many callers keep one unbroken chain', async (t) => {
    const { store } = await opened(t);
    const batches = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.append([auditDraft({ target: `a${i}` }), auditDraft({ target: `b${i}` })])),
    );
    for (const batch of batches) t.equal(batch[1].seq, batch[0].seq + 1, 'a batch stays together');
    const scanned = await collect(store.scan());
    t.equal(scanned.length, 100);
    t.ok((await verifyChain(scanned)).ok);
    t.equal((await store.head()).seq, 100);
  });

  t.test('query is newest first, limited, and pages with beforeSeq', async (t) => {
    const { store } = await opened(t);
    await store.append(Array.from({ length: 30 }, (_, i) => auditDraft({ target: `t${i + 1}` })));
    t.same((await store.query({ limit: 3 })).map((e) => e.seq), [30, 29, 28]);
    t.same((await store.query({ limit: 3, beforeSeq: 28 })).map((e) => e.seq), [27, 26, 25]);
    t.same((await store.query({ limit: 5, beforeSeq: 3 })).map((e) => e.seq), [2, 1]);
    t.same((await store.query({ limit: 5, beforeSeq: 1000 })).map((e) => e.seq), [30, 29, 28, 27, 26]);
  });

  t.test('query filters by agency, user, channel, action and time', async (t) => {
    const { store } = await opened(t);
    await store.append([
      auditDraft({ actor: { id: 'u-a', role: 'operator', agencyId: 'weather' }, action: 'stream.open', target: 'ch1' }),
      auditDraft({ actor: { id: 'u-b', role: 'admin', agencyId: 'safety' }, action: 'stream.release', target: 'ch2' }),
      auditDraft({
        actor: { id: 'sys', role: 'system', agencyId: 'platform' },
        action: 'stream.expire',
        target: 'session-9',
        details: { agencyId: 'weather', channelId: 'ch2' },
      }),
      auditDraft({ actor: { id: 'u-a', role: 'operator', agencyId: 'weather' }, action: 'login', target: 'u-a' }),
    ]);
    const seqs = async (q: Parameters<AuditStore['query']>[0]) => (await store.query(q)).map((e) => e.seq);
    t.same(await seqs({ limit: 10, agencyId: 'weather' }), [4, 3, 1], 'actor agency or details.agencyId');
    t.same(await seqs({ limit: 10, userId: 'u-a' }), [4, 1]);
    t.same(await seqs({ limit: 10, channelId: 'ch2' }), [3, 2], 'target or details.channelId');
    t.same(await seqs({ limit: 10, action: 'stream.*' }), [3, 2, 1]);
    t.same(await seqs({ limit: 10, action: 'stream' }), [], 'exact unless it ends in *');
    t.same(await seqs({ limit: 10, action: 'login', agencyId: 'weather' }), [4]);
    t.same(await seqs({ limit: 1, agencyId: 'weather' }), [4]);
    t.same(await seqs({ limit: 10, to: '2000-01-01T00:00:00.000Z' }), []);
    t.same(await seqs({ limit: 10, from: '2999-01-01T00:00:00.000Z' }), []);
    t.same(await seqs({ limit: 10, from: '2000-01-01', to: '2999-01-01' }), [4, 3, 2, 1]);
  });

  t.test('query bounds by time, inclusive', async (t) => {
    const { store } = await opened(t);
    const [early] = await store.append([auditDraft()]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const [late] = await store.append([auditDraft()]);
    t.ok(early.at < late.at, 'distinct times');
    t.same((await store.query({ limit: 10, from: late.at })).map((e) => e.seq), [2]);
    t.same((await store.query({ limit: 10, to: early.at })).map((e) => e.seq), [1]);
    t.same((await store.query({ limit: 10, from: early.at, to: late.at })).map((e) => e.seq), [2, 1]);
  });

  t.test('the chain survives a reopen and continues from its head', async (t) => {
    const { store, reopen } = await opened(t);
    await store.append([auditDraft(), auditDraft()]);
    const head = await store.head();
    const again = await reopen();
    t.same(await again.head(), head);
    const [next] = await again.append([auditDraft()]);
    t.equal(next.seq, 3);
    t.equal(next.prevHash, head.hash);
    t.ok((await verifyChain(again.scan())).ok);
  });
}
