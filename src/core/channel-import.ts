/**
 * Streaming parsers for catalog imports (POST /channels/import): NDJSON and CSV bodies are read chunk by chunk
 * and yield one record at a time, so a 100,000-line body is never held whole. A bad line becomes an error record
 * for that line; only a bad CSV header or too many lines stop the whole import.
 * @see ../../../shared/API.md "Channels" (POST /channels/import)
 * @see https://www.rfc-editor.org/rfc/rfc4180 (CSV quoting)
 */
import { DomainError, badRequest } from './errors.js';
import { validateChannel } from './gb-code.js';
import type { Channel } from './model.js';

export interface ImportRecord {
  /** 1-based line of the body where the record starts (the CSV header is line 1). */
  line: number;
  channel?: Channel;
  error?: { code: string; message: string };
}

export interface ImportLimits {
  /** Records per import (blank lines and the CSV header not counted). */
  maxRecords?: number;
  /** Bytes per record; a longer one is rejected alone. */
  maxRecordBytes?: number;
}

export const MAX_IMPORT_RECORDS = 100_000;
export const MAX_IMPORT_RECORD_BYTES = 64 * 1024;

/** CSV columns, in the order the generator writes them (an import may order them freely). */
export const CSV_COLUMNS = [
  'id', 'name', 'class', 'district', 'network', 'lat', 'lon', 'status', 'ownerAgency', 'tags', 'sourceUrl',
] as const;
const REQUIRED_CSV_COLUMNS = ['id', 'name', 'class', 'lat', 'lon', 'sourceUrl'];
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

type RawRecord = { line: number; fields: string[] } | { line: number; problem: { code: string; message: string } };

const tooLong = (max: number) => ({ code: 'LINE_TOO_LONG', message: `a record has at most ${max} bytes` });

function tooManyRecords(max: number): DomainError {
  return new DomainError('PAYLOAD_TOO_LARGE', 413, `an import has at most ${max} lines`);
}

const toBuffer = (chunk: Buffer | string) => (typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);

// ---------------------------------------------------------------------------------------------
// NDJSON
// ---------------------------------------------------------------------------------------------

export async function* parseNdjson(body: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, limits: ImportLimits = {}): AsyncGenerator<ImportRecord> {
  const maxRecords = limits.maxRecords ?? MAX_IMPORT_RECORDS;
  const maxBytes = limits.maxRecordBytes ?? MAX_IMPORT_RECORD_BYTES;
  let records = 0;
  for await (const batch of ndjsonLines(body, maxBytes)) {
    for (const raw of batch) {
      if ('fields' in raw && raw.fields[0].trim() === '') continue;
      if (++records > maxRecords) throw tooManyRecords(maxRecords);
      if ('problem' in raw) {
        yield { line: raw.line, error: raw.problem };
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.fields[0]);
      } catch {
        yield { line: raw.line, error: { code: 'BAD_REQUEST', message: 'the line is not valid JSON' } };
        continue;
      }
      yield checked(raw.line, parsed);
    }
  }
}

/**
 * Physical lines (LF or CRLF) as single-field records, a chunk's worth at a time (one await per chunk, not per
 * line); an overlong line is dropped while it streams past.
 */
async function* ndjsonLines(body: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, maxBytes: number): AsyncGenerator<RawRecord[]> {
  let parts: Buffer[] = [];
  let bytes = 0;
  let line = 1;
  const finish = (): RawRecord => {
    const record: RawRecord =
      bytes > maxBytes
        ? { line, problem: tooLong(maxBytes) }
        : { line, fields: [Buffer.concat(parts).toString('utf8').replace(/^\uFEFF/, '').replace(/\r$/, '')] };
    parts = [];
    bytes = 0;
    return record;
  };
  for await (const chunk of body) {
    const buffer = toBuffer(chunk);
    const lines: RawRecord[] = [];
    let start = 0;
    for (;;) {
      const newline = buffer.indexOf(LF, start);
      const end = newline < 0 ? buffer.length : newline;
      bytes += end - start;
      if (bytes <= maxBytes && end > start) parts.push(buffer.subarray(start, end));
      else if (bytes > maxBytes) parts = [];
      if (newline < 0) break;
      lines.push(finish());
      line++;
      start = newline + 1;
    }
    if (lines.length > 0) yield lines;
  }
  if (bytes > 0) yield [finish()];
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

export async function* parseCsv(body: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, limits: ImportLimits = {}): AsyncGenerator<ImportRecord> {
  const maxRecords = limits.maxRecords ?? MAX_IMPORT_RECORDS;
  const maxBytes = limits.maxRecordBytes ?? MAX_IMPORT_RECORD_BYTES;
  let columns: string[] | undefined;
  let records = 0;
  for await (const batch of csvRecords(body, maxBytes)) {
    for (const raw of batch) {
      if ('fields' in raw && raw.fields.length === 1 && raw.fields[0] === '') continue;
      if (!columns) {
        if ('problem' in raw) throw badRequest(`CSV header: ${raw.problem.message}`);
        columns = csvHeader(raw.fields);
        continue;
      }
      if (++records > maxRecords) throw tooManyRecords(maxRecords);
      if ('problem' in raw) {
        yield { line: raw.line, error: raw.problem };
        continue;
      }
      if (raw.fields.length !== columns.length) {
        const message = `expected ${columns.length} fields, found ${raw.fields.length}`;
        yield { line: raw.line, error: { code: 'BAD_REQUEST', message } };
        continue;
      }
      yield checked(raw.line, csvChannelRecord(columns, raw.fields));
    }
  }
  if (!columns) throw badRequest('the CSV body has no header row');
}

function csvHeader(fields: string[]): string[] {
  const columns = fields.map((name, i) => (i === 0 ? name.replace(/^\uFEFF/, '') : name).trim());
  const known = new Set<string>(CSV_COLUMNS);
  const seen = new Set<string>();
  for (const column of columns) {
    if (!known.has(column)) throw badRequest(`unknown CSV column ${JSON.stringify(column)}`);
    if (seen.has(column)) throw badRequest(`CSV column ${JSON.stringify(column)} appears twice`);
    seen.add(column);
  }
  const missing = REQUIRED_CSV_COLUMNS.filter((c) => !seen.has(c));
  if (missing.length > 0) throw badRequest(`CSV header lacks ${missing.join(', ')}`);
  return columns;
}

/** A CSV row as the same record shape an NDJSON line has; empty cells count as absent. */
function csvChannelRecord(columns: readonly string[], fields: readonly string[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  const location: Record<string, unknown> = {};
  for (let i = 0; i < columns.length; i++) {
    const value = fields[i].trim();
    if (value === '') continue;
    const column = columns[i];
    if (column === 'lat' || column === 'lon') location[column] = NUMBER.test(value) ? Number(value) : value;
    else if (column === 'class') record.class = /^\d+$/.test(value) ? Number(value) : value;
    else if (column === 'tags') record.tags = value.split(/[|;]/).map((tag) => tag.trim()).filter((tag) => tag !== '');
    else record[column] = value;
  }
  record.location = { lat: location.lat, lon: location.lon };
  return record;
}

const enum CsvState {
  FieldStart,
  Unquoted,
  Quoted,
  /** A quote inside a quoted field: the closing one, or the first of a doubled pair. */
  QuoteInQuoted,
  /** Dropping the rest of a bad record up to its end (tracking quotes so a quoted newline does not end it). */
  Skip,
  SkipQuoted,
}

/**
 * RFC 4180 records from a byte stream. Delimiters are ASCII, so splitting bytes is safe for UTF-8 and each field
 * is decoded once whole. The records completed by a chunk are yielded together: memory stays per chunk.
 */
async function* csvRecords(body: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, maxBytes: number): AsyncGenerator<RawRecord[]> {
  let state = CsvState.FieldStart;
  let fields: string[] = [];
  let parts: Buffer[] = [];
  let problem: { code: string; message: string } | null = null;
  let recordBytes = 0;
  let line = 1;
  let recordLine = 1;
  let ready: RawRecord[] = [];

  const endField = () => {
    fields.push(parts.length === 1 ? parts[0].toString('utf8') : Buffer.concat(parts).toString('utf8'));
    parts = [];
  };
  const endRecord = () => {
    ready.push(problem ? { line: recordLine, problem } : { line: recordLine, fields });
    fields = [];
    parts = [];
    problem = null;
    recordBytes = 0;
    state = CsvState.FieldStart;
  };
  const fail = (reason: { code: string; message: string }, inQuotes: boolean) => {
    problem = reason;
    fields = [];
    parts = [];
    state = inQuotes ? CsvState.SkipQuoted : CsvState.Skip;
  };

  for await (const chunk of body) {
    const buffer = toBuffer(chunk);
    let segmentStart = 0;
    for (let i = 0; i < buffer.length; i++) {
      const byte = buffer[i];
      if (problem === null && ++recordBytes > maxBytes) {
        fail(tooLong(maxBytes), state === CsvState.Quoted);
      }
      switch (state) {
        case CsvState.FieldStart:
          if (byte === QUOTE) {
            state = CsvState.Quoted;
            segmentStart = i + 1;
          } else if (byte === COMMA) fields.push('');
          else if (byte === LF) {
            fields.push('');
            endRecord();
          } else if (byte !== CR) {
            state = CsvState.Unquoted;
            segmentStart = i;
          }
          break;
        case CsvState.Unquoted:
          if (byte === COMMA || byte === LF || byte === CR) {
            parts.push(buffer.subarray(segmentStart, i));
            segmentStart = i + 1;
            if (byte === COMMA) {
              endField();
              state = CsvState.FieldStart;
            } else if (byte === LF) {
              endField();
              endRecord();
            }
          }
          break;
        case CsvState.Quoted:
          if (byte === QUOTE) {
            parts.push(buffer.subarray(segmentStart, i));
            state = CsvState.QuoteInQuoted;
          }
          break;
        case CsvState.QuoteInQuoted:
          if (byte === QUOTE) {
            // Doubled quote: the second one starts the next piece of content.
            segmentStart = i;
            state = CsvState.Quoted;
          } else if (byte === COMMA) {
            endField();
            state = CsvState.FieldStart;
          } else if (byte === LF) {
            endField();
            endRecord();
          } else if (byte !== CR) {
            fail({ code: 'BAD_REQUEST', message: 'text after a closing quote' }, false);
          }
          break;
        case CsvState.Skip:
          if (byte === QUOTE) state = CsvState.SkipQuoted;
          else if (byte === LF) endRecord();
          break;
        case CsvState.SkipQuoted:
          if (byte === QUOTE) state = CsvState.Skip;
          break;
      }
      if (byte === LF) {
        line++;
        if (state === CsvState.FieldStart && fields.length === 0) recordLine = line;
      }
    }
    if (state === CsvState.Unquoted || state === CsvState.Quoted) parts.push(buffer.subarray(segmentStart));
    if (ready.length > 0) {
      yield ready;
      ready = [];
    }
  }
  // The last record may lack its line break. (The cast: TypeScript does not see the closures' assignments.)
  const finalState = state as CsvState;
  if (finalState === CsvState.Quoted || finalState === CsvState.SkipQuoted) {
    fail(problem ?? { code: 'BAD_REQUEST', message: 'a quoted field is not closed' }, true);
    endRecord();
  } else if (finalState === CsvState.Unquoted || finalState === CsvState.QuoteInQuoted) {
    endField();
    endRecord();
  } else if (finalState === CsvState.Skip || fields.length > 0) {
    if (finalState === CsvState.FieldStart) fields.push('');
    endRecord();
  }
  if (ready.length > 0) yield ready;
}

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

function checked(line: number, record: unknown): ImportRecord {
  const result = validateChannel(record, { requireSourceUrl: true });
  return result.ok ? { line, channel: result.channel } : { line, error: { code: result.code, message: result.message } };
}

/** One CSV line (no line break) of a channel, quoting where RFC 4180 requires; tags joined with `|`. */
export function formatCsvRow(channel: Channel): string {
  const cells: Record<(typeof CSV_COLUMNS)[number], string> = {
    id: channel.id,
    name: channel.name,
    class: String(channel.class),
    district: channel.district,
    network: channel.network,
    lat: String(channel.location.lat),
    lon: String(channel.location.lon),
    status: channel.status,
    ownerAgency: channel.ownerAgency ?? '',
    tags: (channel.tags ?? []).join('|'),
    sourceUrl: channel.sourceUrl ?? '',
  };
  return CSV_COLUMNS.map((column) => quoteCsv(cells[column])).join(',');
}

const quoteCsv = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
