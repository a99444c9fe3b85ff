/**
 * `npm run report` as a child process over an embedded data dir and over a Redis audit stream: the same
 * report as GET /reports/usage, as an aligned table or CSV; usage errors exit 2.
 */
import t, { type Test } from 'tap';
import { runScript } from '../helper.js';
import type { AuditDraft } from '../../src/core/model.js';
import type { AuditStore } from '../../src/core/ports.js';
import { MemoryAuditStore } from '../../src/store/memory/audit-store.js';
import { RedisAuditStore } from '../../src/store/redis/audit-store.js';
import { connectTestRedis, REDIS_URL, testPrefix } from '../store/redis/harness.js';

const runCli = (...args: string[]) => runScript('src/cli/report.ts', args);
const month = new Date().toISOString().slice(0, 7);

const actor = (agencyId: string) => ({ id: `u-${agencyId}`, role: 'operator' as const, agencyId });
const scenario: AuditDraft[] = [
  { actor: actor('agency-a'), action: 'stream.grant', target: 'session:s-1', outcome: 'ok', details: { channelId: 'c1', agencyId: 'agency-a' } },
  { actor: actor('agency-a'), action: 'stream.grant', target: 'session:s-2', outcome: 'ok', details: { channelId: 'c1', agencyId: 'agency-a' } },
  { actor: actor('agency-a'), action: 'stream.release', target: 'session:s-1', outcome: 'ok', reason: 'released', details: { agencyId: 'agency-a', durationMs: 754_000 } },
  { actor: actor('agency-long-name'), action: 'stream.deny', target: 'channel:c2', outcome: 'denied', reason: 'capacity', details: { channelId: 'c2', agencyId: 'agency-long-name' } },
  { actor: actor('agency-long-name'), action: 'analytics.grant', target: 'reservation:r-1', outcome: 'ok', details: { channelId: 'c2', agencyId: 'agency-long-name' } },
];

const table =
  'month    agencyId          sessions  distinctChannels  viewingMinutes  analyticsReservations  denied\n' +
  `${month}  agency-a                 2                 1            12.6                      0       0\n` +
  `${month}  agency-long-name         0                 0             0.0                      1       1\n`;

async function fill(store: AuditStore) {
  await store.append(scenario);
}

t.test('embedded data dir: aligned table, or CSV with --csv', async (t) => {
  const dir = t.testdir();
  const store = await MemoryAuditStore.open(dir);
  await fill(store);
  await store.close();
  t.same(await runCli('--month', month, '--data-dir', dir), { code: 0, stdout: table, stderr: '' });
  const csv = await runCli('--month', month, '--data-dir', dir, '--csv');
  t.equal(csv.code, 0);
  t.equal(csv.stdout.split('\r\n')[2], `${month},agency-long-name,0,0,0,1,1`);
  t.same(await runCli('--month', '2001-01', '--data-dir', dir), {
    code: 0,
    stdout: 'month  agencyId  sessions  distinctChannels  viewingMinutes  analyticsReservations  denied\n',
    stderr: '',
  });
});

t.test('Redis audit stream', async (t: Test) => {
  const prefix = testPrefix(t);
  const client = await connectTestRedis();
  t.teardown(() => client.close());
  await fill(new RedisAuditStore(client, { prefix }));
  t.same(await runCli('--month', month, '--redis', REDIS_URL, '--prefix', prefix), { code: 0, stdout: table, stderr: '' });
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
