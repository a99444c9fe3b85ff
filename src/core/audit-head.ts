/**
 * Signed audit heads: checkpoints of the hash chain an agency can keep (API.md "Audit"). A hash chain
 * catches an edited entry but not a cut end; a head the broker signed — "entry N had hash H at time T" —
 * catches that too, because a log that no longer holds entry N with hash H does not extend it.
 * Model: transparency logs' signed checkpoints (RFC 6962 signed tree heads, Sigstore Rekor); our chain is
 * linear, so consistency with a kept head is "entry N still has hash H".
 *
 * The signature is Ed25519 over the UTF-8 bytes of `${seq}\n${hash}\n${at}` (at exactly as in the entry),
 * base64. keyId is the first 16 hex digits of sha256 over the public key's SPKI DER, so a kept head names
 * the key it needs. node:crypto only.
 * @see ../../shared/API.md "Audit"
 * @see https://www.rfc-editor.org/rfc/rfc6962#section-3.5
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { GENESIS_HASH, linkProblem, type ChainHead } from './audit-chain.js';
import type { AuditEntry } from './model.js';

/** A chain position with the time of its entry. */
export interface AuditHead {
  seq: number;
  hash: string;
  at: string;
}

export interface SignedAuditHead extends AuditHead {
  keyId: string;
  signature: string;
}

/** Id of the meta document where a Redis deployment keeps the signing key (broker.ts loadAuditSigner). */
export const AUDIT_KEY_DOC = 'auditSigningKey';

/** The `at` of the empty log's head (seq 0, the genesis hash): no entry has a time yet. */
export const GENESIS_AT = new Date(0).toISOString();

const HASH = /^[0-9a-f]{64}$/;

/** The bytes a head's signature covers. */
export function headMessage(head: AuditHead): Buffer {
  return Buffer.from(`${head.seq}\n${head.hash}\n${head.at}`, 'utf8');
}

/** First 16 hex digits of sha256(SPKI DER of the public key). */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/**
 * The private key of a PEM text, or an Error saying why it is not an Ed25519 private key. The message
 * never quotes the text (it is a secret).
 */
export function parseSigningKey(pem: string): KeyObject | Error {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return new Error('not a private key in PEM form');
  }
  if (key.asymmetricKeyType !== 'ed25519') return new Error(`an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

/** A public key from PEM (SPKI, or a private key it is derived from), or an Error when it is not Ed25519. */
export function parsePublicKey(pem: string): KeyObject | Error {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    return new Error('not a public key in PEM form');
  }
  if (key.asymmetricKeyType !== 'ed25519') return new Error(`an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

/** A fresh Ed25519 private key as PKCS#8 PEM. */
export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Signs heads with one Ed25519 key. */
export class AuditSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;
  private readonly privateKey: KeyObject;

  constructor(privateKey: KeyObject) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('AuditSigner needs an Ed25519 private key');
    this.privateKey = privateKey;
    this.publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    this.keyId = keyIdOf(privateKey);
  }

  static fromPem(pem: string): AuditSigner {
    const key = parseSigningKey(pem);
    if (key instanceof Error) throw key;
    return new AuditSigner(key);
  }

  sign(head: AuditHead): SignedAuditHead {
    const signature = sign(null, headMessage(head), this.privateKey).toString('base64');
    return { seq: head.seq, hash: head.hash, at: head.at, keyId: this.keyId, signature };
  }
}

/** What a store's head() answers, as a head: the empty log is seq 0, the genesis hash, GENESIS_AT. */
export function headOf(position: ChainHead & { at?: string }): AuditHead {
  return { seq: position.seq, hash: position.hash, at: position.seq === 0 ? GENESIS_AT : position.at! };
}

/** A kept head read back from JSON (as GET /audit/head returned it), or an Error naming what is wrong. */
export function parseSignedHead(value: unknown): SignedAuditHead | Error {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return new Error('a head is a JSON object {seq, hash, at, keyId, signature}');
  const head = value as Record<string, unknown>;
  if (!Number.isSafeInteger(head.seq) || (head.seq as number) < 0) return new Error('seq must be an integer ≥ 0');
  if (typeof head.hash !== 'string' || !HASH.test(head.hash)) return new Error('hash must be 64 hex digits');
  if (typeof head.at !== 'string' || head.at.length === 0) return new Error('at must be the entry’s ISO time');
  if (typeof head.keyId !== 'string') return new Error('keyId must be a string');
  if (typeof head.signature !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(head.signature)) return new Error('signature must be base64');
  return { seq: head.seq as number, hash: head.hash, at: head.at, keyId: head.keyId, signature: head.signature };
}

/** Does the signature of `head` verify with `publicKey`? */
export function headSignatureValid(head: SignedAuditHead, publicKey: KeyObject): boolean {
  try {
    return verify(null, headMessage(head), publicKey, Buffer.from(head.signature, 'base64'));
  } catch {
    return false;
  }
}

export interface ExtensionVerdict {
  /** The whole chain links and hashes (what GET /audit/verify has always answered). */
  ok: boolean;
  entries: number;
  firstBadSeq: number | null;
  problem: string | null;
  /** The log still holds entry `seq` with `hash`, and the chain is intact up to it. */
  extends: boolean;
  /** Why it does not, for people (CLI); null when it does. */
  extendsProblem: string | null;
}

/**
 * Walks the log oldest first, as verifyChain does (positions count: the n-th entry must be seq n), and
 * also checks the kept position `{seq, hash}`: extends when the chain is intact through entry `seq` and
 * that entry's hash is `hash`. Seq 0 is the empty log's head: extended by every log when the hash is
 * the genesis hash.
 */
export async function verifyExtension(entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>, kept: ChainHead): Promise<ExtensionVerdict> {
  let prev: ChainHead = { seq: 0, hash: GENESIS_HASH };
  let count = 0;
  let firstBadSeq: number | null = null;
  let problem: string | null = null;
  let extendsProblem: string | null = null;
  let reached = kept.seq === 0;
  if (reached && kept.hash !== GENESIS_HASH) extendsProblem = 'seq 0 is the empty log, whose hash is the genesis hash';
  for await (const entry of entries) {
    count++;
    if (firstBadSeq !== null) continue;
    problem = linkProblem(prev, entry);
    if (problem !== null) {
      firstBadSeq = count;
      if (!reached) extendsProblem = `the chain breaks at seq ${count}, before the kept head's seq ${kept.seq}`;
      continue;
    }
    prev = { seq: entry.seq, hash: entry.hash };
    if (count === kept.seq) {
      reached = true;
      if (entry.hash !== kept.hash) extendsProblem = `entry ${kept.seq} has hash ${entry.hash}, the kept head says ${kept.hash} (the log was changed)`;
    }
  }
  if (!reached && extendsProblem === null) extendsProblem = `the log ends at seq ${count}, before the kept head's seq ${kept.seq} (the log was cut)`;
  return { ok: firstBadSeq === null, entries: count, firstBadSeq, problem, extends: extendsProblem === null, extendsProblem };
}
