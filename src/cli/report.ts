/**
 * `npm run report -- --month YYYY-MM [--data-dir DIR | --redis URL --prefix P] [--csv]`: the monthly usage
 * report (GET /reports/usage) from the audit log, printed as an aligned table (or CSV with --csv).
 * Reads the embedded store's <data dir>/audit.jsonl (default ./data), or the Redis audit stream.
 * Read-only: a broker may keep running meanwhile. Exit 0 printed, 2 usage or I/O error.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AuditEntry } from '../core/model.js';
import { MONTH, USAGE_CSV_HEADER, usageReport, usageReportCsv, type UsageReport } from '../core/usage-report.js';
import { AUDIT_FILE } from '../store/memory/audit-store.js';
import { readJournal } from '../store/memory/journal.js';
import { connectRedis } from '../store/redis/client.js';
import { RedisAuditStore } from '../store/redis/audit-store.js';

const USAGE = 'usage: report --month YYYY-MM [--data-dir DIR | --redis redis://HOST:PORT --prefix P] [--csv]\n';

/** Columns padded to their widest cell; numbers right-aligned, ids left-aligned. */
function usageTable(report: UsageReport): string {
  const rows = report.agencies.map((a) => [report.month, a.agencyId, a.sessions, a.distinctChannels, a.viewingMinutes.toFixed(1), a.analyticsReservations, a.denied].map(String));
  const all = [[...USAGE_CSV_HEADER], ...rows];
  const widths = USAGE_CSV_HEADER.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  return all.map(line).join('\n') + '\n';
}

async function withAuditEntries<T>(options: { dataDir: string; redis?: string; prefix?: string }, use: (entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>) => Promise<T>): Promise<T> {
  if (options.redis) {
    const client = await connectRedis({ url: options.redis, name: 'sharp-eyes-report' });
    try {
      return await use(new RedisAuditStore(client, { prefix: options.prefix ?? 'se' }).scan());
    } finally {
      await client.close();
    }
  }
  const file = path.join(options.dataDir, AUDIT_FILE);
  // readJournal treats a missing file as an empty log; here a wrong directory must not print an empty report.
  await access(file);
  const entries: AuditEntry[] = [];
  await readJournal<AuditEntry>(file, (entry) => entries.push(entry));
  return use(entries);
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
    const report = await withAuditEntries({ dataDir: values['data-dir'] ?? './data', redis: values.redis, prefix: values.prefix }, (entries) => usageReport(entries, month));
    process.stdout.write(values.csv ? usageReportCsv(report) : usageTable(report));
    return 0;
  } catch (error) {
    process.stderr.write(`report: cannot read the audit log: ${(error as Error).message}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
