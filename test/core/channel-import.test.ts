import t from 'tap';
import { CSV_COLUMNS, formatCsvRow, parseCsv, parseNdjson, type ImportRecord } from '../../src/core/channel-import.js';
import { generateDemoCatalog } from '../../src/core/demo-catalog.js';

const sample = generateDemoCatalog({ total: 30, seed: 3 });

/** Feeds the body in small chunks, so records, quotes and multi-byte characters straddle chunk borders. */
async function* chunked(text: string, size = 7): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text, 'utf8');
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(records: AsyncIterable<ImportRecord>): Promise<ImportRecord[]> {
  const all: ImportRecord[] = [];
  for await (const record of records) all.push(record);
  return all;
}

t.test('NDJSON: good lines kept, bad lines rejected with their line numbers', async (t) => {
  const lines = [
    JSON.stringify(sample[0]),
    '',
    '{not json',
    JSON.stringify({ ...sample[1], colour: 'red' }),
    '   ',
    JSON.stringify(sample[2]) + '\r',
    JSON.stringify({ ...sample[3], network: 'police' }),
    JSON.stringify(sample[4]),
  ];
  const records = await collect(parseNdjson(chunked(lines.join('\n'))));
  t.same(records.map((r) => [r.line, r.channel?.id ?? r.error?.code]), [
    [1, sample[0].id], [3, 'BAD_REQUEST'], [4, 'BAD_REQUEST'], [6, sample[2].id], [7, 'BAD_REQUEST'], [8, sample[4].id],
  ]);
  t.same(records[0].channel, sample[0], 'the channel comes back whole');
  t.match(records[2].error?.message, /unknown field "colour"/);
  t.match(records[4].error?.message, /disagrees/);
});

t.test('NDJSON: an overlong line is rejected alone', async (t) => {
  const huge = JSON.stringify({ ...sample[0], name: 'x'.repeat(70_000) });
  const body = [JSON.stringify(sample[0]), huge, JSON.stringify(sample[1])].join('\n') + '\n';
  const records = await collect(parseNdjson(chunked(body, 4096)));
  t.same(records.map((r) => [r.line, r.channel?.id ?? r.error?.code]), [[1, sample[0].id], [2, 'LINE_TOO_LONG'], [3, sample[1].id]]);
});

t.test('NDJSON: more than 100,000 lines is PAYLOAD_TOO_LARGE', async (t) => {
  async function* many(n: number) {
    for (let i = 0; i < n; i += 1000) yield '{}\n'.repeat(Math.min(1000, n - i));
  }
  await t.rejects(collect(parseNdjson(many(100_001))), { code: 'PAYLOAD_TOO_LARGE', status: 413 });
  t.equal((await collect(parseNdjson(many(10), { maxRecords: 10 }))).length, 10, 'the limit itself is allowed');
  await t.rejects(collect(parseNdjson(many(11), { maxRecords: 10 })), { code: 'PAYLOAD_TOO_LARGE' });
});

const header = CSV_COLUMNS.join(',');

t.test('CSV: round trip of generated rows, in tiny chunks', async (t) => {
  const body = [header, ...sample.map(formatCsvRow)].join('\r\n') + '\r\n';
  const records = await collect(parseCsv(chunked(body, 5)));
  t.same(records.map((r) => r.channel), sample);
  t.same(records.map((r) => r.line), sample.map((_, i) => i + 2));
});

t.test('CSV: quoting, column order, tags, bad lines', async (t) => {
  const c = sample[0];
  const body = [
    'sourceUrl,lon,lat,name,id,class,tags,status',
    `${c.sourceUrl},113.3,23.1,"路口, ""东""",${c.id},${c.class},a|b;c,online`,
    `${c.sourceUrl},113.3,23.1,"两行
名字",${c.id},${c.class},,`,
    `${c.sourceUrl},113.3,23.1,x,${c.id},9,,online`,
    `${c.sourceUrl},abc,23.1,x,${c.id},1,,online`,
    `${c.sourceUrl},113.3,23.1,x,${c.id},1`,
    `${c.sourceUrl},113.3,23.1,"x"y,${c.id},1,,online`,
    '',
    `${c.sourceUrl},113.3,23.1,ok,${c.id},${c.class},,fault`,
  ].join('\n');
  const records = await collect(parseCsv(chunked(body, 3)));
  t.same(records.map((r) => [r.line, r.error?.code ?? 'ok']), [
    [2, 'ok'], [3, 'BAD_REQUEST'], [5, 'BAD_REQUEST'], [6, 'BAD_REQUEST'], [7, 'BAD_REQUEST'], [8, 'BAD_REQUEST'], [10, 'ok'],
  ]);
  t.match(records[0].channel, { name: '路口, "东"', tags: ['a', 'b', 'c'], location: { lat: 23.1, lon: 113.3 }, status: 'online' });
  t.match(records[1].error?.message, /name has leading|control characters/, 'a quoted newline stays in the field (and names may not hold one)');
  t.match(records[2].error?.message, /class/);
  t.match(records[3].error?.message, /lon/);
  t.match(records[4].error?.message, /expected 8 fields, found 6/);
  t.match(records[5].error?.message, /after a closing quote/);
  t.match(records[6].channel, { name: 'ok', status: 'fault' });
});

t.test('CSV: a quoted field may hold a newline', async (t) => {
  const c = sample[0];
  const body = `id,name,class,lat,lon,sourceUrl,tags\n${c.id},x,1,23,113,${c.sourceUrl},"a\nb"\n${c.id},y,1,23,113,${c.sourceUrl},\n`;
  const records = await collect(parseCsv(chunked(body)));
  t.match(records[0], { line: 2, error: { message: /tag/ } }, 'newline kept inside the quoted tags field');
  t.match(records[1], { line: 4, channel: { name: 'y' } }, 'line numbers count physical lines');
});

t.test('CSV: header errors reject the whole import before any line', async (t) => {
  const row = formatCsvRow(sample[0]);
  await t.rejects(collect(parseCsv(chunked(`${header},colour\n${row},red\n`))), { code: 'BAD_REQUEST', message: /unknown CSV column "colour"/ });
  await t.rejects(collect(parseCsv(chunked(`id,name,class,lat,lon\n`))), { code: 'BAD_REQUEST', message: /lacks sourceUrl/ });
  await t.rejects(collect(parseCsv(chunked(`id,id,name,class,lat,lon,sourceUrl\n`))), { message: /appears twice/ });
  await t.rejects(collect(parseCsv(chunked(''))), { message: /no header/ });
  t.ok((await collect(parseCsv(chunked(`\uFEFF${header}\n${row}\n`))))[0].channel, 'a byte-order mark is ignored');
});

t.test('CSV: an overlong record and an unclosed quote are rejected alone', async (t) => {
  const row = formatCsvRow(sample[1]);
  const long = `"${'x'.repeat(70_000)}\n${'y'.repeat(10)}",` + row;
  const body = `${header}\n${long}\n${row}\n${row.replace(sample[1].name, '"never closed')}`;
  const records = await collect(parseCsv(chunked(body, 1000)));
  t.same(records.map((r) => [r.line, r.error?.code ?? 'ok']), [[2, 'LINE_TOO_LONG'], [4, 'ok'], [5, 'BAD_REQUEST']]);
  t.match(records[2].error?.message, /not closed/);
});

t.test('CSV: more than 100,000 records is PAYLOAD_TOO_LARGE', async (t) => {
  async function* many(n: number) {
    yield header + '\n';
    for (let i = 0; i < n; i += 1000) yield ',,,,,,,,,,\n'.repeat(Math.min(1000, n - i));
  }
  await t.rejects(collect(parseCsv(many(100_001))), { code: 'PAYLOAD_TOO_LARGE', status: 413 });
  t.equal((await collect(parseCsv(many(10), { maxRecords: 10 }))).length, 10, 'the limit itself is allowed');
  await t.rejects(collect(parseCsv(many(11), { maxRecords: 10 })), { code: 'PAYLOAD_TOO_LARGE' });
});
