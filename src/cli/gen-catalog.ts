/**
 * Writes the demo catalog as an import body:
 *   tsx src/cli/gen-catalog.ts [--out file] [--total N] [--seed S] [--format ndjson|csv]
 * Output goes to stdout unless --out is given; the counts go to stderr.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { DEMO_SEED, DEMO_TOTAL, generateDemoCatalog } from '../core/demo-catalog.js';
import { CSV_COLUMNS, formatCsvRow } from '../core/channel-import.js';
import type { Channel } from '../core/model.js';

const USAGE = 'usage: gen-catalog [--out file] [--total N] [--seed S] [--format ndjson|csv]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      total: { type: 'string', default: String(DEMO_TOTAL) },
      seed: { type: 'string', default: String(DEMO_SEED) },
      format: { type: 'string', default: 'ndjson' },
    },
  });
  const total = Number(values.total);
  const seed = Number(values.seed);
  if (!Number.isInteger(total) || total < 1 || total > 1_000_000) throw new Error(`--total must be 1..1000000\n${USAGE}`);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer\n${USAGE}`);
  if (values.format !== 'ndjson' && values.format !== 'csv') throw new Error(`--format must be ndjson or csv\n${USAGE}`);

  const catalog = generateDemoCatalog({ total, seed });
  const out: Writable = values.out ? createWriteStream(values.out) : process.stdout;
  if (values.format === 'csv') await write(out, CSV_COLUMNS.join(',') + '\n');
  for (const channel of catalog) {
    await write(out, (values.format === 'csv' ? formatCsvRow(channel) : JSON.stringify(channel)) + '\n');
  }
  if (values.out) {
    out.end();
    await once(out, 'finish');
  }
  process.stderr.write(summary(catalog) + '\n');
}

/** Honours backpressure so a large catalog piped to a slow reader does not pile up in memory. */
async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

function summary(catalog: readonly Channel[]): string {
  const tally = (key: (c: Channel) => string) => {
    const counts: Record<string, number> = {};
    for (const channel of catalog) counts[key(channel)] = (counts[key(channel)] ?? 0) + 1;
    return JSON.stringify(counts);
  };
  return [
    `channels: ${catalog.length}`,
    `by class: ${tally((c) => String(c.class))}`,
    `by network: ${tally((c) => c.network)}`,
    `by status: ${tally((c) => c.status)}`,
    `by district: ${tally((c) => c.district)}`,
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`gen-catalog: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
