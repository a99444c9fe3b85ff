/**
 * `npm run audit:verify -- <data dir> [--head <file> [--public-key <pem file>]]`: checks the embedded audit
 * chain (<dir>/audit.jsonl) entry by entry and names the first bad one. With `--head`, also a kept head (the
 * JSON GET /audit/head answered, or a usage report's JSON with its auditHead): its signature, with the public
 * key from --public-key or else from the data dir's key file (audit-signing-key.pem), and that the log still
 * holds entry seq with that hash; a log cut or changed since names the head's seq. Exit 0 intact, 1 broken (or a bad signature), 2 usage or I/O error.
 * Reads the files only; a broker may keep running meanwhile (a torn last line is an append in progress).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { KeyObject } from 'node:crypto';
import { verifyChain, type ChainHead, type ChainVerdict } from '../core/audit-chain.js';
import { headSignatureValid, keyIdOf, parsePublicKey, parseSignedHead, verifyExtension, type SignedAuditHead } from '../core/audit-head.js';
import type { AuditEntry } from '../core/model.js';
import { AUDIT_FILE } from '../store/memory/audit-store.js';
import { AUDIT_KEY_FILE } from '../store/memory/audit-key.js';
import { JournalCorruptError, readJournal } from '../store/memory/journal.js';

const USAGE = 'usage: audit-verify <data dir> [--head <head.json> [--public-key <public key .pem>]]\n';

type FileVerdict = ChainVerdict & { tornTail: boolean; extendsProblem?: string | null };

async function verifyAuditFile(file: string, kept?: ChainHead): Promise<FileVerdict> {
  const entries: AuditEntry[] = [];
  const check = async (list: AuditEntry[]): Promise<ChainVerdict & { extendsProblem?: string | null }> => (kept ? verifyExtension(list, kept) : verifyChain(list));
  try {
    const { torn } = await readJournal<AuditEntry>(file, (entry) => entries.push(entry));
    return { ...(await check(entries)), tornTail: torn !== null };
  } catch (error) {
    if (!(error instanceof JournalCorruptError)) throw error;
    // Lines before the damaged one still get checked, so an earlier break is reported first.
    const verdict = await check(entries.slice(0, error.line - 1));
    if (!verdict.ok) return { ...verdict, tornTail: false };
    const problem = `line ${error.line} is not valid JSON`;
    // Entries before the damaged line decide a kept head that is older than it.
    const extendsProblem = kept && (kept.seq < error.line ? verdict.extendsProblem : `the chain breaks at seq ${error.line} (${problem}), before the kept head's seq ${kept.seq}`);
    return { ok: false, entries: error.line, firstBadSeq: error.line, problem, tornTail: false, ...(kept && { extendsProblem }) };
  }
}

class UsageError extends Error {}

/** The kept head and the key to check it with; UsageError/IO errors exit 2. */
async function loadHead(headFile: string, publicKeyFile: string | undefined, dataDir: string): Promise<{ head: SignedAuditHead; key: KeyObject; keySource: string }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(headFile, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read the head ${headFile}: ${(error as Error).message}`);
  }
  // A filed usage report (GET /reports/usage JSON) carries its month's head: accept it as it is.
  const isReport = parsed !== null && typeof parsed === 'object' && 'auditHead' in parsed && 'month' in parsed;
  const head = parseSignedHead(isReport ? (parsed as { auditHead: unknown }).auditHead : parsed);
  if (head instanceof Error) throw new UsageError(`${headFile} is not a signed head: ${head.message}`);
  const keySource = publicKeyFile ?? path.join(dataDir, AUDIT_KEY_FILE);
  let pem: string;
  try {
    pem = await fs.readFile(keySource, 'utf8');
  } catch (error) {
    const hint = publicKeyFile ? '' : ' (pass --public-key <pem file>, e.g. what GET /audit/public-key answered)';
    throw new UsageError(`cannot read the public key ${keySource}: ${(error as Error).message}${hint}`);
  }
  const key = parsePublicKey(pem);
  if (key instanceof Error) throw new UsageError(`${keySource}: ${key.message}`);
  return { head, key, keySource };
}

async function main(argv: string[]): Promise<number> {
  let dirs: string[];
  let values: { head?: string; 'public-key'?: string };
  try {
    ({ values, positionals: dirs } = parseArgs({ args: argv, options: { head: { type: 'string' }, 'public-key': { type: 'string' } }, allowPositionals: true, strict: true }));
  } catch (error) {
    process.stderr.write(`audit-verify: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (dirs.length !== 1 || (values['public-key'] !== undefined && values.head === undefined)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const dir = dirs[0]!;
  let kept: Awaited<ReturnType<typeof loadHead>> | undefined;
  if (values.head !== undefined) {
    try {
      kept = await loadHead(values.head, values['public-key'], dir);
    } catch (error) {
      process.stderr.write(`audit-verify: ${(error as Error).message}\n`);
      return 2;
    }
  }
  const file = path.join(dir, AUDIT_FILE);
  let verdict: FileVerdict;
  try {
    await fs.access(file);
    verdict = await verifyAuditFile(file, kept?.head);
  } catch (error) {
    process.stderr.write(`audit-verify: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  if (kept) return headVerdict(kept, verdict);
  if (verdict.ok) {
    const note = verdict.tornTail ? ' (an incomplete last line was ignored)' : '';
    process.stdout.write(`ok: ${verdict.entries} entries${note}\n`);
    return 0;
  }
  process.stdout.write(`BAD at seq ${verdict.firstBadSeq}: ${verdict.problem}\n`);
  return 1;
}

/** One line per finding, the head's seq named in each; exit 1 when any fails. */
function headVerdict(kept: { head: SignedAuditHead; key: KeyObject; keySource: string }, verdict: FileVerdict): number {
  const { head, key, keySource } = kept;
  const lines: string[] = [];
  let bad = false;
  const keyId = keyIdOf(key);
  if (!headSignatureValid(head, key)) {
    bad = true;
    const which = head.keyId === keyId ? `key ${keyId}` : `key ${keyId} (the head names key ${head.keyId})`;
    lines.push(`BAD head seq ${head.seq}: the signature does not verify with ${which} from ${keySource}`);
  } else {
    lines.push(`ok: head seq ${head.seq} is signed by key ${keyId}`);
  }
  if (!verdict.ok) {
    bad = true;
    lines.push(`BAD at seq ${verdict.firstBadSeq}: ${verdict.problem}`);
  }
  if (verdict.extendsProblem) {
    bad = true;
    lines.push(`BAD head seq ${head.seq}: the log does not extend the kept head: ${verdict.extendsProblem}`);
  } else if (verdict.extendsProblem === null) {
    lines.push(`ok: the log extends the kept head: entry ${head.seq} still has hash ${head.hash}`);
  }
  if (verdict.ok) lines.push(`ok: ${verdict.entries} entries${verdict.tornTail ? ' (an incomplete last line was ignored)' : ''}`);
  lines.push(bad ? `verdict: BAD (kept head seq ${head.seq})` : `verdict: ok (kept head seq ${head.seq})`);
  process.stdout.write(lines.join('\n') + '\n');
  return bad ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
