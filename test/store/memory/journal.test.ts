import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Journal, JournalCorruptError, type TornTail } from '../../../src/store/memory/journal.js';

type Rec = { n: number };

async function openJournal(file: string, torn: TornTail[] = []) {
  const records: Rec[] = [];
  const { journal } = await Journal.open<Rec>(file, (r) => records.push(r), { onTornTail: (x) => torn.push(x) });
  return { journal, records };
}

t.test('appends are durable lines, replayed in order on reopen', async (t) => {
  const file = path.join(t.testdir(), 'j.jsonl');
  const { journal } = await openJournal(file);
  await Promise.all(Array.from({ length: 500 }, (_, n) => journal.append({ n })));
  await journal.appendMany([{ n: 500 }, { n: 501 }]);
  await journal.close();
  const { journal: again, records } = await openJournal(file);
  t.teardown(() => again.close());
  t.same(records.map((r) => r.n), Array.from({ length: 502 }, (_, n) => n));
});

t.test('a torn last line without newline is cut off, reported, and the file repaired', async (t) => {
  const file = path.join(t.testdir(), 'j.jsonl');
  await fs.writeFile(file, '{"n":1}\n{"n":2}\n{"n":3');
  const torn: TornTail[] = [];
  const { journal, records } = await openJournal(file, torn);
  t.same(records, [{ n: 1 }, { n: 2 }]);
  t.equal(torn.length, 1);
  t.match(torn[0], { line: 3, reason: 'no trailing newline', bytes: 6 });
  t.equal(await fs.readFile(file, 'utf8'), '{"n":1}\n{"n":2}\n');
  await journal.append({ n: 4 });
  await journal.close();
  t.equal(await fs.readFile(file, 'utf8'), '{"n":1}\n{"n":2}\n{"n":4}\n');
});

t.test('an unparsable last line (e.g. zero bytes after a crash) is cut off too', async (t) => {
  const file = path.join(t.testdir(), 'j.jsonl');
  await fs.writeFile(file, '{"n":1}\n\0\0\0\0\n');
  const torn: TornTail[] = [];
  const { journal, records } = await openJournal(file, torn);
  t.teardown(() => journal.close());
  t.same(records, [{ n: 1 }]);
  t.match(torn, [{ line: 2, reason: 'not JSON' }]);
  t.equal(await fs.readFile(file, 'utf8'), '{"n":1}\n');
});

t.test('a corrupt line in the middle refuses to open and names the line', async (t) => {
  const file = path.join(t.testdir(), 'j.jsonl');
  await fs.writeFile(file, '{"n":1}\n{"n":2}\n{"n"::3}\n{"n":4}\n');
  const error = await openJournal(file).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(error instanceof JournalCorruptError, 'a JournalCorruptError');
  t.equal((error as JournalCorruptError).line, 3);
  t.match((error as Error).message, /line 3/);
  t.equal(await fs.readFile(file, 'utf8'), '{"n":1}\n{"n":2}\n{"n"::3}\n{"n":4}\n', 'nothing was cut');
});

t.test('records spanning read chunks replay whole', async (t) => {
  const file = path.join(t.testdir(), 'j.jsonl');
  const big = 'x'.repeat(700_000);
  const { journal } = await openJournal(file);
  await journal.appendMany([{ n: 1, big } as Rec, { n: 2, big } as Rec, { n: 3 }]);
  await journal.close();
  const { journal: again, records } = await openJournal(file);
  t.teardown(() => again.close());
  t.same(records.map((r) => r.n), [1, 2, 3]);
});

t.test('compact replaces the content; appends made after it follow it', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'j.jsonl');
  const { journal } = await openJournal(file);
  await journal.appendMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
  const compacted = journal.compact([{ n: 3 }]);
  const after = journal.append({ n: 4 });
  await Promise.all([compacted, after]);
  await journal.close();
  t.equal(await fs.readFile(file, 'utf8'), '{"n":3}\n{"n":4}\n');
  t.same(await fs.readdir(dir), ['j.jsonl'], 'no temp file left');
});

t.test('the data directory is created private', async (t) => {
  const dir = path.join(t.testdir(), 'nested', 'data');
  const { journal } = await openJournal(path.join(dir, 'j.jsonl'));
  t.teardown(() => journal.close());
  t.equal((await fs.stat(dir)).mode & 0o777, 0o700);
});
