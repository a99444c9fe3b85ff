/**
 * `npm run report -- --month YYYY-MM [--data-dir DIR | --redis URL --prefix P] [--csv]`: the monthly usage
 * report (GET /reports/usage) from the audit log, printed as an aligned table (or CSV with --csv).
 * Reads the embedded store's <data dir>/audit.jsonl (default ./data), or the Redis audit stream.
 * The report ends with the signed audit head at the month's end (its last entry; API.md "Audit"): the line
 * `auditHead: {…}` holds the JSON `audit:verify --head` takes (CSV: the `auditHead,seq=…` footer). The key is
 * BROKER_AUDIT_SIGNING_KEY when set, else the one the brokers keep (<data dir>/audit-signing-key.pem, or the
 * Redis meta document); with none, the report is printed without a head and a note on stderr.
 * Read-only: a broker may keep running meanwhile. Exit 0 printed, 2 usage or I/O error.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AuditEntry } from '../core/model.js';
import { MONTH, USAGE_CSV_HEADER, USAGE_CSV_USER_HEADER, usageReport, usageReportCsv, type UsageReport } from '../core/usage-report.js';
import { AUDIT_FILE } from '../store/memory/audit-store.js';
import { readJournal } from '../store/memory/journal.js';
import { connectRedis } from '../store/redis/client.js';
import { RedisAuditStore } from '../store/redis/audit-store.js';
import { RedisDocumentStore } from '../store/redis/document-store.js';
import { AUDIT_KEY_DOC, AuditSigner } from '../core/audit-head.js';
import { AUDIT_KEY_FILE, readAuditKeyFile } from '../store/memory/audit-key.js';

const USAGE = 'usage: report --month YYYY-MM [--data-dir DIR | --redis redis://HOST:PORT --prefix P] [--csv]\n';

/** Columns padded to their widest cell; numbers right-aligned, ids left-aligned. */
function usageTable(report: UsageReport): string {
  const rows = report.agencies.map((a) => [report.month, a.agencyId, a.sessions, a.distinctChannels, a.viewingMinutes.toFixed(1), a.analyticsReservations, a.denied].map(String));
  const all = [[...USAGE_CSV_HEADER], ...rows];
  const widths = USAGE_CSV_HEADER.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  const footer = report.auditHead === undefined ? '' : `\nauditHead: ${JSON.stringify(report.auditHead)}\n`;
  return all.map(line).join('\n') + '\n' + userTable(report) + footer;
}

/** Who watched most (issue 9): a second table after a blank line, when any user is in the month. */
function userTable(report: UsageReport): string {
  if (!report.users || report.users.length === 0) return '';
  const header = [...USAGE_CSV_USER_HEADER] as string[];
  const rows = report.users.map((u) => [report.month, u.userId, u.agencyId, String(u.sessions), u.viewingMinutes.toFixed(1), u.channels.map((c) => `${c.channelId}:${c.viewingMinutes}`).join(' ')]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 3 || i === 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return '\n' + all.map(line).join('\n') + '\n';
}

interface AuditSource {
  entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>;
  /** The signing key's PEM the brokers keep, or undefined when there is none. */
  storedKey: () => Promise<string | undefined>;
  keyPlace: string;
}

/** The key that signs the head: BROKER_AUDIT_SIGNING_KEY, else the stored one; undefined when neither exists. */
async function signerFor(source: AuditSource): Promise<AuditSigner | undefined> {
  const fromEnv = process.env.BROKER_AUDIT_SIGNING_KEY;
  if (fromEnv !== undefined && fromEnv !== '') {
    try {
      return AuditSigner.fromPem(fromEnv.includes('\n') ? fromEnv : fromEnv.replace(/\\n/g, '\n'));
    } catch (error) {
      throw new Error(`BROKER_AUDIT_SIGNING_KEY: ${(error as Error).message}`);
    }
  }
  const pem = await source.storedKey();
  if (pem === undefined) return undefined;
  try {
    return AuditSigner.fromPem(pem);
  } catch (error) {
    throw new Error(`the audit signing key in ${source.keyPlace}: ${(error as Error).message}`);
  }
}

async function withAuditEntries<T>(options: { dataDir: string; redis?: string; prefix?: string }, use: (source: AuditSource) => Promise<T>): Promise<T> {
  if (options.redis) {
    const client = await connectRedis({ url: options.redis, name: 'sharp-eyes-report' });
    const prefix = options.prefix ?? 'se';
    try {
      const storedKey = async () => {
        const documents = await RedisDocumentStore.open(client, { prefix });
        try {
          return (await documents.get<{ privateKeyPem: string }>('meta', AUDIT_KEY_DOC))?.privateKeyPem;
        } finally {
          await documents.close();
        }
      };
      return await use({ entries: new RedisAuditStore(client, { prefix }).scan(), storedKey, keyPlace: `the meta document ${AUDIT_KEY_DOC} under prefix ${prefix}` });
    } finally {
      await client.close();
    }
  }
  const file = path.join(options.dataDir, AUDIT_FILE);
  // readJournal treats a missing file as an empty log; here a wrong directory must not print an empty report.
  await access(file);
  const entries: AuditEntry[] = [];
  await readJournal<AuditEntry>(file, (entry) => entries.push(entry));
  return use({ entries, storedKey: () => readAuditKeyFile(options.dataDir), keyPlace: path.join(options.dataDir, AUDIT_KEY_FILE) });
}

async function main(argv: string[]): Promise<number> {
  let values: { month?: string; 'data-dir'?: string; redis?: string; prefix?: string; csv?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { month: { type: 'string' }, 'data-dir': { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' }, csv: { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`report: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!values.month || !MONTH.test(values.month) || (values.redis && values['data-dir'])) {
    process.stderr.write(USAGE);
    return 2;
  }
  const month = values.month;
  try {
    const report = await withAuditEntries({ dataDir: values['data-dir'] ?? './data', redis: values.redis, prefix: values.prefix }, async (source) => {
      const signer = await signerFor(source);
      if (!signer) process.stderr.write(`report: no audit signing key in ${source.keyPlace} (nor BROKER_AUDIT_SIGNING_KEY): the report carries no signed head\n`);
      return usageReport(source.entries, month, signer ? { signHead: (head) => signer.sign(head) } : {});
    });
    process.stdout.write(values.csv ? usageReportCsv(report) : usageTable(report));
    return 0;
  } catch (error) {
    process.stderr.write(`report: cannot read the audit log: ${(error as Error).message}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
