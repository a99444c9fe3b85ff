/**
 * An append-only JSON-lines file with group commit: every append is durable (written and fdatasync'd)
 * when its promise resolves, and appends that arrive while a flush is running share the next write and
 * the next fsync, so thousands of appends per second cost a handful of fsyncs.
 *
 * Crash rules: a torn last line (no newline, or not JSON) is what a crash mid-write leaves behind; it was
 * never acknowledged, so it is cut off with a notice. A bad line anywhere else is not a crash artefact but
 * damage, and opening fails with its line number.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';

const NEWLINE = 0x0a;
const READ_CHUNK_BYTES = 1 << 20;
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export interface TornTail {
  file: string;
  /** 1-based line number of the torn line. */
  line: number;
  bytes: number;
  reason: 'no trailing newline' | 'not JSON';
}

export class JournalCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}: line ${line} is corrupt (${detail}); the journal needs repair by hand`);
    this.name = 'JournalCorruptError';
  }
}

/**
 * Reads every complete record, oldest first, in chunks so a large journal never becomes one giant string.
 * Returns the byte length of the good prefix and the torn tail, if any; never modifies the file.
 */
export async function readJournal<R>(
  file: string,
  onRecord: (record: R, line: number) => void,
): Promise<{ goodBytes: number; lines: number; torn: TornTail | null }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { goodBytes: 0, lines: 0, torn: null };
    throw error;
  }
  try {
    let goodBytes = 0;
    let line = 0;
    let carry: Buffer = Buffer.alloc(0);
    // A line that failed to parse is only damage if another line follows it; hold it until we know.
    let pendingBad: { line: number; bytes: number; detail: string } | null = null;
    const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(NEWLINE, start); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
        line++;
        if (pendingBad) throw new JournalCorruptError(file, pendingBad.line, pendingBad.detail);
        const text = data.toString('utf8', start, nl);
        let record: R;
        try {
          record = JSON.parse(text) as R;
        } catch (error) {
          pendingBad = { line, bytes: nl + 1 - start, detail: (error as Error).message };
          start = nl + 1;
          continue;
        }
        onRecord(record, line);
        goodBytes += nl + 1 - start;
        start = nl + 1;
      }
      // Copy: `chunk` is reused by the next read.
      carry = Buffer.from(data.subarray(start));
    }
    if (carry.length > 0) {
      if (pendingBad) throw new JournalCorruptError(file, pendingBad.line, pendingBad.detail);
      return { goodBytes, lines: line, torn: { file, line: line + 1, bytes: carry.length, reason: 'no trailing newline' } };
    }
    if (pendingBad) {
      return { goodBytes, lines: line - 1, torn: { file, line: pendingBad.line, bytes: pendingBad.bytes, reason: 'not JSON' } };
    }
    return { goodBytes, lines: line, torn: null };
  } finally {
    await handle.close();
  }
}

/** Makes a rename or a new file in `dir` durable. */
async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function ensureDataDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
}

interface PendingBatch {
  lines: string[];
  waiters: Array<{ resolve: () => void; reject: (error: Error) => void }>;
}

export interface JournalOptions {
  /** Told about a torn last line that was cut off at open (log it; it was never acknowledged). */
  onTornTail?: (torn: TornTail) => void;
}

export class Journal<R> {
  private pending: PendingBatch = { lines: [], waiters: [] };
  private flushScheduled = false;
  /** Every disk operation runs on this chain, one after the other. */
  private diskQueue: Promise<void> = Promise.resolve();
  /** Set by the first failed write or fsync; after it nothing more is accepted. */
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    readonly file: string,
    private handle: fs.FileHandle,
  ) {}

  /**
   * Opens (creating the directory and file as needed), replays every record into `onRecord`, cuts off a
   * torn tail, and returns the journal ready for appends.
   */
  static async open<R>(
    file: string,
    onRecord: (record: R, line: number) => void,
    options: JournalOptions = {},
  ): Promise<{ journal: Journal<R>; records: number }> {
    await ensureDataDir(path.dirname(file));
    const { goodBytes, lines, torn } = await readJournal<R>(file, onRecord);
    if (torn) {
      await fs.truncate(file, goodBytes);
      options.onTornTail?.(torn);
    }
    const handle = await fs.open(file, 'a', FILE_MODE);
    if (torn) await handle.sync();
    await fsyncDirectory(path.dirname(file));
    return { journal: new Journal<R>(file, handle), records: lines };
  }

  /** Resolves once the record is on disk. */
  append(record: R): Promise<void> {
    return this.appendMany([record]);
  }

  /** Appends records in order in one write; resolves once all are on disk. */
  appendMany(records: readonly R[]): Promise<void> {
    return this.appendSerialized(records.map((record) => JSON.stringify(record)));
  }

  /** Like appendMany, for callers that already hold each record's JSON.stringify output (one line each). */
  appendSerialized(jsonLines: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.file}: journal is closed`));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      for (const line of jsonLines) this.pending.lines.push(`${line}\n`);
      this.pending.waiters.push({ resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Replaces the file with `records`, the full state as of this call: appends made before the call are
   * assumed to be in `records` (and resolve when the new file is durable), appends made after it land
   * after the compacted content. Temp file + fsync + rename + directory fsync, so a crash leaves either
   * the old or the new file, whole.
   */
  compact(records: Iterable<R>): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.file}: journal is closed`));
    if (this.failure) return Promise.reject(this.failure);
    const covered = this.pending;
    this.pending = { lines: [], waiters: [] };
    const snapshot = [...records];
    const done = this.onDisk(async () => {
      const temp = `${this.file}.compact-${process.pid}`;
      const out = await fs.open(temp, 'w', FILE_MODE);
      try {
        let buffer: string[] = [];
        let size = 0;
        for (const record of snapshot) {
          const line = `${JSON.stringify(record)}\n`;
          buffer.push(line);
          size += line.length;
          if (size >= READ_CHUNK_BYTES) {
            await writeAll(out, buffer.join(''));
            buffer = [];
            size = 0;
          }
        }
        await writeAll(out, buffer.join(''));
        await out.sync();
      } finally {
        await out.close();
      }
      await fs.rename(temp, this.file);
      await fsyncDirectory(path.dirname(this.file));
      const previous = this.handle;
      this.handle = await fs.open(this.file, 'a', FILE_MODE);
      await previous.close();
    });
    done.then(
      () => covered.waiters.forEach((w) => w.resolve()),
      (error: Error) => covered.waiters.forEach((w) => w.reject(error)),
    );
    return done;
  }

  /** Waits for queued writes, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.diskQueue;
    await this.handle.close();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.onDisk(async () => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = { lines: [], waiters: [] };
      if (batch.waiters.length === 0) return;
      try {
        await writeAll(this.handle, batch.lines.join(''));
        await this.handle.datasync();
      } catch (error) {
        batch.waiters.forEach((w) => w.reject(error as Error));
        throw error;
      }
      batch.waiters.forEach((w) => w.resolve());
    }).catch(() => {
      // The failure is recorded in onDisk and already handed to this batch's waiters.
    });
  }

  /**
   * Runs a disk operation after the previous one. A failed write or fsync poisons the journal: after an
   * fsync error the kernel may have dropped the dirty pages, so retrying could report success for data
   * that is gone. The process must restart and replay.
   * @see https://wiki.postgresql.org/wiki/Fsync_Errors
   */
  private onDisk(operation: () => Promise<void>): Promise<void> {
    const run = this.diskQueue.then(() => {
      if (this.failure) throw this.failure;
      return operation();
    });
    this.diskQueue = run.catch((error: Error) => {
      this.failure ??= error;
      for (const w of this.pending.waiters) w.reject(this.failure);
      this.pending = { lines: [], waiters: [] };
    });
    return run;
  }
}

async function writeAll(handle: fs.FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, null);
    offset += bytesWritten;
  }
}
