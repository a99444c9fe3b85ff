import t, { type Test } from 'tap';
import { runScript } from '../helper.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AUDIT_FILE, MemoryAuditStore } from '../../src/store/memory/audit-store.js';
import { auditDraft } from '../store/audit-store-conformance.js';

const runCli = (...args: string[]) => runScript('src/cli/audit-verify.ts', args);

async function dataDirWith(t: Test, entries: number): Promise<string> {
  const dir = t.testdir();
  const store = await MemoryAuditStore.open(dir);
  await store.append(Array.from({ length: entries }, (_, i) => auditDraft({ target: `t${i + 1}` })));
  await store.close();
  return dir;
}

async function editLines(dir: string, edit: (lines: string[]) => string[]): Promise<void> {
  const file = path.join(dir, AUDIT_FILE);
  const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
  await fs.writeFile(file, `${edit(lines).join('\n')}\n`);
}

t.test('an intact log: ok with the count, exit 0', async (t) => {
  const dir = await dataDirWith(t, 12);
  t.same(await runCli(dir), { code: 0, stdout: 'ok: 12 entries\n', stderr: '' });
});

t.test('a tampered entry: names its seq, exit 1', async (t) => {
  const dir = await dataDirWith(t, 12);
  await editLines(dir, (lines) => lines.map((line, i) => (i === 6 ? line.replace('"outcome":"ok"', '"outcome":"denied"') : line)));
  const result = await runCli(dir);
  t.equal(result.code, 1);
  t.match(result.stdout, /^BAD at seq 7: hash does not match/);
});

t.test('a deleted entry: names the missing seq, exit 1', async (t) => {
  const dir = await dataDirWith(t, 12);
  await editLines(dir, (lines) => lines.filter((_, i) => i !== 9));
  const result = await runCli(dir);
  t.equal(result.code, 1);
  t.match(result.stdout, /^BAD at seq 10: expected seq 10, found 11/);
});

t.test('a line that is not JSON: names it, exit 1', async (t) => {
  const dir = await dataDirWith(t, 5);
  await editLines(dir, (lines) => lines.map((line, i) => (i === 2 ? line.slice(0, 20) : line)));
  const result = await runCli(dir);
  t.equal(result.code, 1);
  t.match(result.stdout, /^BAD at seq 3: line 3 is not valid JSON/);
});

t.test('usage errors exit 2', async (t) => {
  t.match(await runCli(), { code: 2, stderr: /usage/ });
  t.match(await runCli(path.join(t.testdir(), 'no-such-dir')), { code: 2, stderr: /cannot read/ });
});
