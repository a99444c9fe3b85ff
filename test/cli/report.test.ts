/**
 * `npm run report` as a child process over an embedded data dir and over a Redis audit stream: the same
 * report as GET /reports/usage, as an aligned table or CSV, ending with the month's signed audit head;
 * usage errors exit 2.
 */
import t, { type Test } from 'tap';
import { runScript } from '../helper.js';
import type { AuditDraft } from '../../src/core/model.js';
import type { AuditStore } from '../../src/core/ports.js';
import { MemoryAuditStore } from '../../src/store/memory/audit-store.js';
import { RedisAuditStore } from '../../src/store/redis/audit-store.js';
import { connectTestRedis, REDIS_URL, testPrefix } from '../store/redis/harness.js';
import { createPublicKey, verify } from 'node:crypto';
import { AUDIT_KEY_DOC, AuditSigner, generateSigningKeyPem, headMessage, type SignedAuditHead } from '../../src/core/audit-head.js';
import { loadOrCreateAuditKeyFile } from '../../src/store/memory/audit-key.js';
import { RedisDocumentStore } from '../../src/store/redis/document-store.js';

const runCli = (...args: string[]) => runScript('src/cli/report.ts', args);
const month = new Date().toISOString().slice(0, 7);

const actor = (agencyId: string) => ({ id: `u-${agencyId}`, role: 'operator' as const, agencyId });
const media = { id: 'media:embedded', role: 'system' as const, agencyId: 'agency-a' };
const scenario: AuditDraft[] = [
  { actor: actor('agency-a'), action: 'stream.grant', target: 'session:s-1', outcome: 'ok', details: { channelId: 'c1', agencyId: 'agency-a' } },
  { actor: actor('agency-a'), action: 'stream.grant', target: 'session:s-2', outcome: 'ok', details: { channelId: 'c1', agencyId: 'agency-a' } },
  // Viewing is the players' connected time (issue 9), not the lease's: two players, 500 s + 254 s.
  { actor: media, action: 'play.end', target: 'session:s-1', outcome: 'ok', details: { sessionId: 's-1', kind: 'stream', channelId: 'c1', agencyId: 'agency-a', userId: 'u-agency-a', seconds: 500, bytes: 1000 } },
  { actor: media, action: 'play.end', target: 'session:s-1', outcome: 'ok', details: { sessionId: 's-1', kind: 'stream', channelId: 'c1', agencyId: 'agency-a', userId: 'u-agency-a', seconds: 254, bytes: 1000 } },
  { actor: actor('agency-a'), action: 'stream.release', target: 'session:s-1', outcome: 'ok', reason: 'released', details: { agencyId: 'agency-a', durationMs: 900_000 } },
  { actor: actor('agency-long-name'), action: 'stream.deny', target: 'channel:c2', outcome: 'denied', reason: 'capacity', details: { channelId: 'c2', agencyId: 'agency-long-name' } },
  { actor: actor('agency-long-name'), action: 'analytics.grant', target: 'reservation:r-1', outcome: 'ok', details: { channelId: 'c2', agencyId: 'agency-long-name' } },
];

const table =
  'month    agencyId          sessions  distinctChannels  viewingMinutes  analyticsReservations  denied\n' +
  `${month}  agency-a                 2                 1            12.6                      0       0\n` +
  `${month}  agency-long-name         0                 0             0.0                      1       1\n` +
  '\n' +
  'month    userId      agencyId  sessions  viewingMinutes  channels\n' +
  `${month}  u-agency-a  agency-a         2            12.6  c1:12.6\n`;

async function fill(store: AuditStore) {
  return store.append(scenario);
}

/** The table's last line: the month's last entry, signed with the stored key. */
const headLine = (head: SignedAuditHead | null) => `\nauditHead: ${JSON.stringify(head)}\n`;

function verifies(t: Test, head: SignedAuditHead, publicKeyPem: string) {
  t.ok(verify(null, headMessage(head), createPublicKey(publicKeyPem), Buffer.from(head.signature, 'base64')), `head seq ${head.seq} verifies with the public key`);
}

t.test('embedded data dir: aligned table, or CSV with --csv, with the signed head', async (t) => {
  const dir = t.testdir();
  const store = await MemoryAuditStore.open(dir);
  const entries = await fill(store);
  await store.close();
  const signer = AuditSigner.fromPem(await loadOrCreateAuditKeyFile(dir));
  const head = signer.sign(entries.at(-1)!);
  verifies(t, head, signer.publicKeyPem);
  t.same(await runCli('--month', month, '--data-dir', dir), { code: 0, stdout: table + headLine(head), stderr: '' });
  const csv = await runCli('--month', month, '--data-dir', dir, '--csv');
  t.equal(csv.code, 0);
  t.equal(csv.stdout.split('\r\n')[2], `${month},agency-long-name,0,0,0,1,1`);
  t.equal(csv.stdout.split('\r\n')[3], `auditHead,seq=${head.seq},hash=${head.hash},at=${head.at},keyId=${head.keyId},signature=${head.signature}`, 'CSV footer');
  t.same(await runCli('--month', '2001-01', '--data-dir', dir), {
    code: 0,
    stdout: 'month  agencyId  sessions  distinctChannels  viewingMinutes  analyticsReservations  denied\n' + headLine(null),
    stderr: '',
  });
});

t.test('BROKER_AUDIT_SIGNING_KEY signs instead of the stored key; no key at all: no head, a note', async (t) => {
  const dir = t.testdir();
  const store = await MemoryAuditStore.open(dir);
  const entries = await fill(store);
  await store.close();
  const unsigned = await runCli('--month', month, '--data-dir', dir);
  t.same(unsigned, { code: 0, stdout: table, stderr: unsigned.stderr });
  t.match(unsigned.stderr, /no audit signing key in .*audit-signing-key\.pem/);
  const pem = generateSigningKeyPem();
  const fromEnv = await runScript('src/cli/report.ts', ['--month', month, '--data-dir', dir], { ...process.env, BROKER_AUDIT_SIGNING_KEY: pem });
  t.same(fromEnv, { code: 0, stdout: table + headLine(AuditSigner.fromPem(pem).sign(entries.at(-1)!)), stderr: '' });
});

t.test('Redis audit stream, signed with the key the brokers share', async (t: Test) => {
  const prefix = testPrefix(t);
  const client = await connectTestRedis();
  t.teardown(() => client.close());
  const entries = await fill(new RedisAuditStore(client, { prefix }));
  const pem = generateSigningKeyPem();
  const documents = await RedisDocumentStore.open(client, { prefix });
  await documents.put('meta', AUDIT_KEY_DOC, { privateKeyPem: pem });
  await documents.close();
  const head = AuditSigner.fromPem(pem).sign(entries.at(-1)!);
  t.same(await runCli('--month', month, '--redis', REDIS_URL, '--prefix', prefix), { code: 0, stdout: table + headLine(head), stderr: '' });
});

t.test('usage errors exit 2', async (t) => {
  const dir = t.testdir();
  for (const args of [[], ['--month', '2026-13'], ['--month', month, '--bogus'], ['--month', month, '--data-dir', dir, '--redis', REDIS_URL]]) {
    const res = await runCli(...args);
    t.equal(res.code, 2, `exit 2 for ${JSON.stringify(args)}`);
    t.match(res.stderr, /usage: report/);
  }
  const missing = await runCli('--month', month, '--data-dir', `${dir}/nowhere`);
  t.equal(missing.code, 2, 'a data dir without an audit log is an error, not an empty report');
  t.match(missing.stderr, /cannot read the audit log/);
});
