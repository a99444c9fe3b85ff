import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsv, parseNdjson, type ImportRecord } from '../../src/core/channel-import.js';
import { generateDemoCatalog } from '../../src/core/demo-catalog.js';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/gen-catalog.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function collect(records: AsyncIterable<ImportRecord>): Promise<ImportRecord[]> {
  const all: ImportRecord[] = [];
  for await (const record of records) all.push(record);
  return all;
}

t.test('NDJSON to stdout imports back to the same catalog', async (t) => {
  const { code, stdout, stderr } = await run(['--total', '300', '--seed', '4']);
  t.equal(code, 0);
  t.match(stderr, /channels: 300/);
  const records = await collect(parseNdjson([stdout]));
  t.same(records.map((r) => r.channel), generateDemoCatalog({ total: 300, seed: 4 }));
});

t.test('CSV to a file imports back to the same catalog', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gen-catalog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'catalog.csv');
  const { code, stdout } = await run(['--total', '200', '--format', 'csv', '--out', out]);
  t.equal(code, 0);
  t.equal(stdout, '', 'nothing on stdout');
  const records = await collect(parseCsv([await readFile(out)]));
  t.same(records.map((r) => r.channel), generateDemoCatalog({ total: 200 }));
});

t.test('bad arguments fail with a message', async (t) => {
  const { code, stderr } = await run(['--format', 'xml']);
  t.equal(code, 1);
  t.match(stderr, /--format must be ndjson or csv/);
});
