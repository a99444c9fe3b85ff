import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import {
  canonicalJson,
  chainEntry,
  chainEntryWithJson,
  linkProblem,
  GENESIS_HASH,
  GENESIS_HEAD,
  nextEntryTime,
  verifyChain,
} from '../../src/core/audit-chain.js';
import type { AuditDraft, AuditEntry } from '../../src/core/model.js';

const draft = (n: number): AuditDraft => ({
  actor: { id: `u${n}`, role: 'operator', agencyId: 'weather' },
  action: 'stream.open',
  target: '44010600001310000001',
  outcome: 'ok',
  purpose: 'flood watch',
  details: { channelId: '44010600001310000001', n },
});

function chain(length: number): AuditEntry[] {
  const entries: AuditEntry[] = [];
  let prev = GENESIS_HEAD;
  for (let n = 1; n <= length; n++) {
    const entry = chainEntry(prev, draft(n), `2024-05-01T00:00:0${n % 10}.000Z`);
    entries.push(entry);
    prev = entry;
  }
  return entries;
}

t.test('canonical JSON sorts keys at every level and has no whitespace', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [1, 'x'], c: null } }), '{"a":{"c":null,"d":[1,"x"]},"b":1}');
  t.equal(canonicalJson({ z: { y: 2, x: 1 }, a: true }), canonicalJson({ a: true, z: { x: 1, y: 2 } }));
});

t.test('canonical JSON omits undefined fields and rejects what JSON cannot carry', async (t) => {
  t.equal(canonicalJson({ a: undefined, b: 'é"' }), '{"b":"é\\""}');
  t.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
  t.throws(() => canonicalJson([Number.POSITIVE_INFINITY]), TypeError);
  t.throws(() => canonicalJson({ a: 1n }), TypeError);
});

t.test('the first entry chains from the genesis hash with sha256(prevHash + canonical JSON)', async (t) => {
  const entry = chainEntry(GENESIS_HEAD, draft(1), '2024-05-01T00:00:00.000Z');
  t.equal(entry.seq, 1);
  t.equal(entry.prevHash, GENESIS_HASH);
  t.equal(GENESIS_HASH, '0'.repeat(64));
  const { hash, ...content } = entry;
  t.equal(hash, createHash('sha256').update(GENESIS_HASH + canonicalJson(content)).digest('hex'));
});

t.test('the hash does not depend on the key order of the draft', async (t) => {
  const reordered: AuditDraft = {
    details: { n: 1, channelId: '44010600001310000001' },
    purpose: 'flood watch',
    outcome: 'ok',
    target: '44010600001310000001',
    action: 'stream.open',
    actor: { agencyId: 'weather', role: 'operator', id: 'u1' },
  };
  const at = '2024-05-01T00:00:00.000Z';
  t.equal(chainEntry(GENESIS_HEAD, reordered, at).hash, chainEntry(GENESIS_HEAD, draft(1), at).hash);
});

t.test('only draft fields enter the entry', async (t) => {
  const actor = { id: 'u1', role: 'operator' as const, agencyId: 'weather', name: 'alice', kind: 'user' };
  const entry = chainEntry(GENESIS_HEAD, { ...draft(1), actor }, '2024-05-01T00:00:00.000Z');
  t.same(Object.keys(entry.actor).sort(), ['agencyId', 'id', 'role']);
});

t.test('an intact chain verifies', async (t) => {
  t.same(await verifyChain(chain(5)), { ok: true, entries: 5, firstBadSeq: null, problem: null });
  t.same(await verifyChain([]), { ok: true, entries: 0, firstBadSeq: null, problem: null });
});

t.test('an async iterable verifies too', async (t) => {
  async function* stream() {
    yield* chain(3);
  }
  t.equal((await verifyChain(stream())).ok, true);
});

t.test('a tampered field is caught at its entry', async (t) => {
  const entries = chain(5);
  entries[2] = { ...entries[2], outcome: 'denied' };
  const verdict = await verifyChain(entries);
  t.equal(verdict.ok, false);
  t.equal(verdict.firstBadSeq, 3);
  t.equal(verdict.entries, 5);
  t.match(verdict.problem, /hash does not match/);
});

t.test('a tampered entry with a recomputed hash breaks the next link', async (t) => {
  const entries = chain(5);
  const { hash: _hash, ...content } = { ...entries[1], reason: 'edited' };
  entries[1] = chainEntry({ seq: 1, hash: entries[0].hash }, content, content.at);
  const verdict = await verifyChain(entries);
  t.equal(verdict.firstBadSeq, 3);
  t.match(verdict.problem, /prevHash/);
});

t.test('a deleted entry is caught where it is missing', async (t) => {
  const entries = chain(5);
  entries.splice(3, 1);
  const verdict = await verifyChain(entries);
  t.equal(verdict.firstBadSeq, 4);
  t.match(verdict.problem, /expected seq 4, found 5/);
});

t.test('reordered entries are caught', async (t) => {
  const entries = chain(5);
  [entries[1], entries[2]] = [entries[2], entries[1]];
  const verdict = await verifyChain(entries);
  t.equal(verdict.firstBadSeq, 2);
  t.match(verdict.problem, /expected seq 2, found 3/);
});

t.test('entry times never go backwards', async (t) => {
  t.equal(nextEntryTime('2030-01-01T00:00:00.000Z', new Date('2024-01-01T00:00:00Z')), '2030-01-01T00:00:00.000Z');
  t.equal(nextEntryTime('2020-01-01T00:00:00.000Z', new Date('2024-01-01T00:00:00Z')), '2024-01-01T00:00:00.000Z');
  t.equal(nextEntryTime(undefined, new Date('2024-01-01T00:00:00Z')), '2024-01-01T00:00:00.000Z');
});

t.test('chainEntryWithJson: the journal line is the entry, hash included, and verifies as stored', async (t) => {
  const draft = {
    actor: { id: 'u-1', role: 'operator', agencyId: 'weather' },
    action: 'stream.grant',
    target: 'session:s-1',
    outcome: 'ok',
    purpose: '台风 "Mangkhut" \\ 值守\n',
    details: { channelId: '44010600001310000001', count: 2, shared: false, none: null, empty: '', zh: '天河 \u2028' },
  };
  const { entry, json } = chainEntryWithJson(GENESIS_HEAD, draft as AuditDraft, '2026-12-02T00:00:00.000Z');
  t.same(JSON.parse(json), entry, 'the line parses back to the entry');
  t.equal(linkProblem(GENESIS_HEAD, JSON.parse(json) as AuditEntry), null, 'and links and hashes as the first entry');
  t.same(chainEntry(GENESIS_HEAD, draft as AuditDraft, '2026-12-02T00:00:00.000Z'), entry, 'chainEntry gives the same entry');
});

t.test('chainEntryWithJson writes exactly the canonical JSON it hashes, whatever the draft holds', async (t) => {
  // The entry's JSON is written field by field in sorted order (no sort on the request path); it must stay
  // byte for byte what canonicalJson makes of the same entry, or stored lines would not verify.
  const text = fc.string({ unit: 'binary', maxLength: 12 });
  const scalar = fc.oneof(text, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
  const draftArb = fc.record(
    {
      actor: fc.record({ id: text, role: fc.constantFrom('operator', 'admin', 'system'), agencyId: text }, { requiredKeys: ['id', 'role'] }),
      action: text,
      target: text,
      outcome: fc.constantFrom('ok', 'denied', 'error'),
      reason: text,
      purpose: text,
      details: fc.dictionary(fc.oneof(text, fc.constantFrom('10', '9', '__proto__x', 'a"b')), scalar, { maxKeys: 6 }),
    },
    { requiredKeys: ['actor', 'action', 'target', 'outcome'] },
  );
  fc.assert(
    fc.property(draftArb, fc.nat(), (draft, seq) => {
      const prev = { seq, hash: 'f'.repeat(64) };
      const { entry, json } = chainEntryWithJson(prev, draft as AuditDraft, '2026-12-03T00:00:00.000Z');
      const { hash, ...content } = entry;
      const canonical = canonicalJson(content);
      if (json !== `${canonical.slice(0, -1)},"hash":"${hash}"}`) throw new Error(`differs: ${json} vs ${canonical}`);
      if (hash !== createHash('sha256').update(prev.hash).update(canonical).digest('hex')) throw new Error('hash differs');
      return linkProblem(prev, JSON.parse(json) as AuditEntry) === null;
    }),
    { numRuns: 500 },
  );
  t.pass('500 random drafts: line, hash and verification agree');
});

t.test('canonical JSON sorts keys that arrive out of order, integer-like ones included', async (t) => {
  t.equal(canonicalJson({ 10: 'a', 9: 'b', b: [undefined, { y: 1, x: false }], a: 1 }), '{"10":"a","9":"b","a":1,"b":[null,{"x":false,"y":1}]}');
  t.equal(canonicalJson({ a: 1, b: 2 }), '{"a":1,"b":2}');
  t.equal(canonicalJson({ a: undefined }), '{}');
  t.equal(canonicalJson({ b: undefined, a: 1 }), '{"a":1}');
  t.equal(canonicalJson([]), '[]');
});
