/**
 * `npm run import -- <file> [--url URL] [--user NAME] [--password-file FILE]`
 *
 * Sends an NDJSON or CSV channel file to a running broker's POST /api/v1/channels/import, so the
 * import is authorised, validated and audited like any other (never written behind the broker's
 * back). Files over the per-request limit of 100,000 lines go in several requests; progress is
 * shown as lines are sent. Credentials: BROKER_TOKEN, or a platform-admin's password (from
 * BROKER_ADMIN_PASSWORD, --password-file, or <data dir>/admin-password.txt).
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const LINES_PER_REQUEST = 100_000;

interface Totals {
  created: number;
  updated: number;
  rejected: Array<{ line: number; code: string; message: string }>;
}

function usage(message?: string): never {
  if (message) process.stderr.write(`import: ${message}\n`);
  process.stderr.write('usage: npm run import -- <file.ndjson|file.csv> [--url http://127.0.0.1:8080] [--user admin] [--password-file FILE]\n');
  process.exit(2);
}

async function token(base: string, user: string, passwordFile: string | undefined): Promise<string> {
  if (process.env.BROKER_TOKEN) return process.env.BROKER_TOKEN;
  const file = passwordFile ?? join(process.env.BROKER_DATA_DIR ?? './data', 'admin-password.txt');
  const password = process.env.BROKER_ADMIN_PASSWORD ?? (existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined);
  if (!password) usage(`no credentials: set BROKER_TOKEN or BROKER_ADMIN_PASSWORD, or give --password-file (looked for ${file})`);
  const res = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user, password }),
  });
  const body = (await res.json()) as { token?: string; error?: { message: string } };
  if (!res.ok || !body.token) throw new Error(`login as ${user} failed: ${res.status} ${body.error?.message ?? ''}`);
  return body.token;
}

/** Sends one chunk of lines (with the CSV header repeated) and returns the broker's answer. */
async function send(base: string, bearer: string, contentType: string, lines: string[]): Promise<Totals> {
  const res = await fetch(`${base}/api/v1/channels/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': contentType },
    body: lines.join('\n') + '\n',
  });
  const body = (await res.json()) as Totals & { error?: { code: string; message: string } };
  if (!res.ok) throw new Error(`import refused: ${res.status} ${body.error?.code}: ${body.error?.message}`);
  return body;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { url: { type: 'string' }, user: { type: 'string' }, 'password-file': { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) usage();
  if (!existsSync(file)) usage(`no such file: ${file}`);
  const base = (values.url ?? process.env.BROKER_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const csv = file.toLowerCase().endsWith('.csv');
  const contentType = csv ? 'text/csv' : 'application/x-ndjson';
  const bearer = await token(base, values.user ?? 'admin', values['password-file']);

  const totals: Totals = { created: 0, updated: 0, rejected: [] };
  let header: string | undefined;
  let chunk: string[] = [];
  let firstLineOfChunk = 1;
  let lineNo = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const lines = csv ? [header!, ...chunk] : chunk;
    const answer = await send(base, bearer, contentType, lines);
    totals.created += answer.created;
    totals.updated += answer.updated;
    // Line numbers in the answer count within the request: map them back to the file.
    const offset = firstLineOfChunk - 1 - (csv ? 1 : 0);
    for (const r of answer.rejected) totals.rejected.push({ ...r, line: r.line + offset });
    process.stderr.write(`\r${lineNo} lines sent: ${totals.created} created, ${totals.updated} updated, ${totals.rejected.length} rejected`);
    chunk = [];
  };
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    lineNo++;
    if (csv && header === undefined) {
      header = line;
      firstLineOfChunk = lineNo + 1;
      continue;
    }
    if (chunk.length === 0) firstLineOfChunk = lineNo;
    chunk.push(line);
    if (chunk.length >= LINES_PER_REQUEST) await flush();
  }
  await flush();
  process.stderr.write('\n');
  for (const r of totals.rejected.slice(0, 50)) process.stdout.write(`line ${r.line}: ${r.code} ${r.message}\n`);
  if (totals.rejected.length > 50) process.stdout.write(`… and ${totals.rejected.length - 50} more rejected lines\n`);
  process.stdout.write(`${totals.created} created, ${totals.updated} updated, ${totals.rejected.length} rejected\n`);
  process.exit(totals.rejected.length > 0 ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`import: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
