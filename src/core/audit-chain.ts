/**
 * The audit log as a hash chain: each entry's hash covers the previous entry's hash and the entry's own
 * canonical JSON, so changing, removing or reordering any entry breaks every later link.
 * Both stores (memory, Redis) and `audit:verify` use these functions, so they agree byte for byte.
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import type { AuditDraft, AuditEntry } from './model.js';
import { isoTime } from './iso-time.js';

/** The prevHash of entry seq 1. */
export const GENESIS_HASH = '0'.repeat(64);

/** The chain position an entry is appended after: seq 0 + GENESIS_HASH for an empty log. */
export interface ChainHead {
  seq: number;
  hash: string;
}

export const GENESIS_HEAD: ChainHead = Object.freeze({ seq: 0, hash: GENESIS_HASH });

/**
 * JSON with object keys sorted at every level and no whitespace, so the same facts always hash the same
 * whatever order they were written in. Undefined object fields are left out (as JSON.stringify does);
 * NaN and ±Infinity have no JSON form and are rejected rather than silently turned into null.
 * @see https://www.rfc-editor.org/rfc/rfc8785 (the idea of JCS; we rely on ECMAScript number and string output)
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      // String concatenation, no intermediate arrays: this runs for every audit entry on the request path.
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item: unknown = value[i];
          out += item === undefined ? 'null' : canonicalJson(item);
        }
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      // Most objects are written in key order already; sort only those that are not.
      for (let i = 1; i < keys.length; i++) {
        if (keys[i - 1] > keys[i]) {
          keys.sort();
          break;
        }
      }
      let out = '{';
      for (const key of keys) {
        const field = record[key];
        if (field === undefined) continue;
        if (out.length > 1) out += ',';
        out += `${quotedKey(key)}:${canonicalJson(field)}`;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
  }
}

/** JSON.stringify of an object key, remembered: audit entries use the same few dozen keys over and over. */
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 4096;
function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/** sha256 hex of a string: the one-shot crypto.hash (Node >= 20.12) when there is one, it skips the Hash object. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
function sha256Hex(text: string): string {
  return oneShotHash ? oneShotHash('sha256', text, 'hex') : createHash('sha256').update(text).digest('hex');
}

/** sha256 hex of prevHash followed by the canonical JSON of the entry without its hash. */
export function entryHash(entry: Omit<AuditEntry, 'hash'>): string {
  const { hash: _ignored, ...content } = entry as AuditEntry;
  return createHash('sha256').update(entry.prevHash).update(canonicalJson(content)).digest('hex');
}

/**
 * The entry that follows `prev`. Only the fields of AuditDraft are copied, so a caller passing a richer
 * object (a Principal as actor, say) cannot smuggle unhashed-looking extras into the evidence.
 */
export function chainEntry(prev: ChainHead, draft: AuditDraft, at: string): AuditEntry {
  return chainEntryWithJson(prev, draft, at).entry;
}

/**
 * chainEntry, with the entry's JSON for a journal line: the canonical JSON that was hashed, with the hash
 * added as its last field — a store need not serialise the entry a second time.
 */
export function chainEntryWithJson(prev: ChainHead, draft: AuditDraft, at: string): { entry: AuditEntry; json: string } {
  const entry: Omit<AuditEntry, 'hash'> = {
    seq: prev.seq + 1,
    at,
    actor: { id: draft.actor.id, role: draft.actor.role, agencyId: draft.actor.agencyId },
    action: draft.action,
    target: draft.target,
    outcome: draft.outcome,
    ...(draft.reason !== undefined && { reason: draft.reason }),
    ...(draft.purpose !== undefined && { purpose: draft.purpose }),
    ...(draft.details !== undefined && { details: { ...draft.details } }),
    prevHash: prev.hash,
  };
  const content = entryContentJson(entry);
  const hash = sha256Hex(prev.hash + content);
  return { entry: { ...entry, hash }, json: `${content.slice(0, -1)},"hash":"${hash}"}` };
}

/**
 * canonicalJson(entry) for an entry as chainEntryWithJson builds it, byte for byte: its fields written in
 * sorted key order directly (no key listing or sorting at the top level and in `actor`), undefined ones
 * left out, every value through canonicalJson. test/core/audit-chain.test.ts checks the two agree.
 */
function entryContentJson(entry: Omit<AuditEntry, 'hash'>): string {
  const { actor } = entry;
  let actorJson = '{';
  actorJson = member(actorJson, '"agencyId":', actor.agencyId);
  actorJson = member(actorJson, '"id":', actor.id);
  actorJson = member(actorJson, '"role":', actor.role);
  let out = '{';
  out = member(out, '"action":', entry.action);
  out += `${out.length > 1 ? ',' : ''}"actor":${actorJson}}`;
  out = member(out, '"at":', entry.at);
  out = member(out, '"details":', entry.details);
  out = member(out, '"outcome":', entry.outcome);
  out = member(out, '"prevHash":', entry.prevHash);
  out = member(out, '"purpose":', entry.purpose);
  out = member(out, '"reason":', entry.reason);
  out = member(out, '"seq":', entry.seq);
  out = member(out, '"target":', entry.target);
  return `${out}}`;
}

/** `out` (an object's JSON so far, from its `{`) with one more member, unless the value is undefined. */
function member(out: string, quotedKeyAndColon: string, value: unknown): string {
  if (value === undefined) return out;
  return `${out}${out.length > 1 ? ',' : ''}${quotedKeyAndColon}${canonicalJson(value)}`;
}

export interface ChainVerdict {
  ok: boolean;
  /** How many entries the log holds (all of them, also those after the first bad one). */
  entries: number;
  /** The seq at which the chain first breaks: the position (1-based) of the first bad entry. */
  firstBadSeq: number | null;
  /** What is wrong with that entry, for people (CLI, logs); null when ok. */
  problem: string | null;
}

/** The problem with `entry` as the successor of `prev`, or null when it links and hashes correctly. */
export function linkProblem(prev: ChainHead, entry: AuditEntry): string | null {
  if (entry === null || typeof entry !== 'object') return 'not an entry object';
  if (entry.seq !== prev.seq + 1) {
    return `expected seq ${prev.seq + 1}, found ${JSON.stringify(entry.seq)} (missing, inserted or reordered entry)`;
  }
  if (entry.prevHash !== prev.hash) return 'prevHash does not match the hash of the previous entry';
  let expected: string;
  try {
    expected = entryHash(entry);
  } catch (error) {
    return `content cannot be hashed: ${(error as Error).message}`;
  }
  if (entry.hash !== expected) return 'hash does not match the content (entry was altered)';
  return null;
}

/**
 * Walks the whole log oldest first. Positions are what count: the n-th entry must carry seq n, link to the
 * (n-1)-th entry's hash and hash to its own content.
 */
export async function verifyChain(entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>): Promise<ChainVerdict> {
  let prev: ChainHead = GENESIS_HEAD;
  let count = 0;
  let firstBadSeq: number | null = null;
  let problem: string | null = null;
  for await (const entry of entries) {
    count++;
    if (firstBadSeq !== null) continue;
    problem = linkProblem(prev, entry);
    if (problem !== null) firstBadSeq = count;
    else prev = { seq: entry.seq, hash: entry.hash };
  }
  return { ok: firstBadSeq === null, entries: count, firstBadSeq, problem };
}

/**
 * The time for a new entry: the clock, but never earlier than the entry before it, so the log is ordered
 * by `at` as well as by seq (queries by time can then stop early) even if a clock steps back.
 */
export function nextEntryTime(previousAt: string | undefined, now?: Date): string {
  const at = now === undefined ? isoTime() : now.toISOString();
  return previousAt !== undefined && previousAt > at ? previousAt : at;
}
