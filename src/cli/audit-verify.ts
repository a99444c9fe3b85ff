/**
 * `npm run audit:verify -- <data dir> [--head <file> [--public-key <pem file>]]`: checks the embedded audit
 * chain (<dir>/audit.jsonl) entry by entry and names the first bad one. With `--head`, also a kept head (the
 * JSON GET /audit/head answered, or a usage report's JSON with its auditHead): its signature, with the public
 * key from --public-key or else from the data dir's key file (audit-signing-key.pem), and that the log still
 * holds entry seq with that hash; a log cut or changed since names the head's seq. Exit 0 intact, 1 broken (or a bad signature), 2 usage or I/O error.
 * Reads the files only; a broker may keep running meanwhile (a torn last line is an append in progress).
 *
 * `npm run audit:verify -- --redis <url> [--prefix P] [--head <file> [--public-key <pem file>]]` does the same
 * on the Redis chain every broker of a city appends to (the audit stream under prefix P, default `se`); the
 * key, without --public-key, is the public half of the one the brokers keep in the meta document
 * auditSigningKey. Whoever can write that Redis can also replace that key, so an agency checks with the
 * public key it fetched (GET /audit/public-key) when it kept the head. Read-only.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { KeyObject } from 'node:crypto';
import { verifyChain, type ChainHead, type ChainVerdict } from '../core/audit-chain.js';
import { AUDIT_KEY_DOC, headSignatureValid, keyIdOf, parsePublicKey, parseSignedHead, verifyExtension, type SignedAuditHead } from '../core/audit-head.js';
import type { AuditEntry } from '../core/model.js';
import { AUDIT_FILE } from '../store/memory/audit-store.js';
import { AUDIT_KEY_FILE } from '../store/memory/audit-key.js';
import { JournalCorruptError, readJournal } from '../store/memory/journal.js';
import { connectRedis, type RedisClient } from '../store/redis/client.js';
import { RedisAuditStore } from '../store/redis/audit-store.js';
import { RedisDocumentStore } from '../store/redis/document-store.js';

const USAGE =
  'usage: audit-verify <data dir> [--head <head.json> [--public-key <public key .pem>]]\n' +
  '       audit-verify --redis redis://HOST:PORT [--prefix P] [--head <head.json> [--public-key <public key .pem>]]\n';

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

/** Where the brokers keep the signing key, when no --public-key is given: its PEM (or undefined) and a name for messages. */
interface StoredKey {
  place: string;
  read(): Promise<string | undefined>;
}

const keyFileOf = (dataDir: string): StoredKey => {
  const place = path.join(dataDir, AUDIT_KEY_FILE);
  return { place, read: () => fs.readFile(place, 'utf8') };
};

/** The kept head and the key to check it with; UsageError/IO errors exit 2. */
async function loadHead(headFile: string, publicKeyFile: string | undefined, stored: StoredKey): Promise<{ head: SignedAuditHead; key: KeyObject; keySource: string }> {
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
  const keySource = publicKeyFile ?? stored.place;
  let pem: string | undefined;
  try {
    pem = publicKeyFile ? await fs.readFile(publicKeyFile, 'utf8') : await stored.read();
    if (pem === undefined) throw new Error('no key is stored there');
  } catch (error) {
    const hint = publicKeyFile ? '' : ' (pass --public-key <pem file>, e.g. what GET /audit/public-key answered)';
    throw new UsageError(`cannot read the public key ${keySource}: ${(error as Error).message}${hint}`);
  }
  const key = parsePublicKey(pem);
  if (key instanceof Error) throw new UsageError(`${keySource}: ${key.message}`);
  return { head, key, keySource };
}

/** Every entry of the Redis chain, oldest first (it is what the brokers' GET /audit/verify walks too). */
async function verifyRedisLog(client: RedisClient, prefix: string, kept?: ChainHead): Promise<FileVerdict> {
  const entries = new RedisAuditStore(client, { prefix }).scan();
  return { ...(await (kept ? verifyExtension(entries, kept) : verifyChain(entries))), tornTail: false };
}

/** The signing key the brokers keep in Redis (broker.ts loadAuditSigner); its public half checks heads. */
const redisKeyOf = (client: RedisClient, prefix: string): StoredKey => ({
  place: `the meta document ${AUDIT_KEY_DOC} under prefix ${prefix}`,
  async read() {
    const documents = await RedisDocumentStore.open(client, { prefix });
    try {
      return (await documents.get<{ privateKeyPem: string }>('meta', AUDIT_KEY_DOC))?.privateKeyPem;
    } finally {
      await documents.close();
    }
  },
});

async function main(argv: string[]): Promise<number> {
  let dirs: string[];
  let values: { head?: string; 'public-key'?: string; redis?: string; prefix?: string };
  try {
    ({ values, positionals: dirs } = parseArgs({
      args: argv,
      options: { head: { type: 'string' }, 'public-key': { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`audit-verify: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const onRedis = values.redis !== undefined;
  if (dirs.length !== (onRedis ? 0 : 1) || (values['public-key'] !== undefined && values.head === undefined) || (!onRedis && values.prefix !== undefined)) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (onRedis) return verifyOnRedis(values.redis!, values.prefix ?? 'se', values.head, values['public-key']);
  const dir = dirs[0]!;
  let kept: Awaited<ReturnType<typeof loadHead>> | undefined;
  if (values.head !== undefined) {
    try {
      kept = await loadHead(values.head, values['public-key'], keyFileOf(dir));
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
  return report(verdict, kept);
}

async function verifyOnRedis(url: string, prefix: string, headFile: string | undefined, publicKeyFile: string | undefined): Promise<number> {
  let client: RedisClient;
  try {
    client = await connectRedis({ url, name: 'sharp-eyes-audit-verify' });
  } catch (error) {
    process.stderr.write(`audit-verify: cannot connect to ${url}: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    let kept: Awaited<ReturnType<typeof loadHead>> | undefined;
    if (headFile !== undefined) {
      try {
        kept = await loadHead(headFile, publicKeyFile, redisKeyOf(client, prefix));
      } catch (error) {
        process.stderr.write(`audit-verify: ${(error as Error).message}\n`);
        return 2;
      }
    }
    let verdict: FileVerdict;
    try {
      verdict = await verifyRedisLog(client, prefix, kept?.head);
    } catch (error) {
      process.stderr.write(`audit-verify: cannot read the audit log under prefix ${prefix}: ${(error as Error).message}\n`);
      return 2;
    }
    return report(verdict, kept);
  } finally {
    await client.close();
  }
}

function report(verdict: FileVerdict, kept?: { head: SignedAuditHead; key: KeyObject; keySource: string }): number {
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
