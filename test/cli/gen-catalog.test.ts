import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsv, parseNdjson, type ImportRecord } from '../../src/core/channel-import.js';
import { generateDemoCatalog } from '../../src/core/demo-catalog.js';
import { runScript } from '../helper.js';

const run = (args: string[]) => runScript('src/cli/gen-catalog.ts', args);

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
