/**
 * `npm run audit:verify -- <data dir>`: checks the embedded audit chain (<dir>/audit.jsonl) entry by entry
 * and names the first bad one. Exit 0 intact, 1 broken, 2 usage or I/O error.
 * Reads the file only; a broker may keep running meanwhile (a torn last line is an append in progress).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { verifyChain, type ChainVerdict } from '../core/audit-chain.js';
import type { AuditEntry } from '../core/model.js';
import { AUDIT_FILE } from '../store/memory/audit-store.js';
import { JournalCorruptError, readJournal } from '../store/memory/journal.js';

async function verifyAuditFile(file: string): Promise<ChainVerdict & { tornTail: boolean }> {
  const entries: AuditEntry[] = [];
  try {
    const { torn } = await readJournal<AuditEntry>(file, (entry) => entries.push(entry));
    return { ...(await verifyChain(entries)), tornTail: torn !== null };
  } catch (error) {
    if (!(error instanceof JournalCorruptError)) throw error;
    // Lines before the damaged one still get checked, so an earlier break is reported first.
    const verdict = await verifyChain(entries.slice(0, error.line - 1));
    if (!verdict.ok) return { ...verdict, tornTail: false };
    return { ok: false, entries: error.line, firstBadSeq: error.line, problem: `line ${error.line} is not valid JSON`, tornTail: false };
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    process.stderr.write('usage: audit-verify <data dir>\n');
    return 2;
  }
  const file = path.join(argv[0], AUDIT_FILE);
  let verdict: Awaited<ReturnType<typeof verifyAuditFile>>;
  try {
    await fs.access(file);
    verdict = await verifyAuditFile(file);
  } catch (error) {
    process.stderr.write(`audit-verify: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  if (verdict.ok) {
    const note = verdict.tornTail ? ' (an incomplete last line was ignored)' : '';
    process.stdout.write(`ok: ${verdict.entries} entries${note}\n`);
    return 0;
  }
  process.stdout.write(`BAD at seq ${verdict.firstBadSeq}: ${verdict.problem}\n`);
  return 1;
}

process.exitCode = await main(process.argv.slice(2));
