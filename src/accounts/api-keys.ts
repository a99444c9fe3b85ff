/**
 * API keys for service accounts: `sk_` + 32 random bytes (base64url). Only sha256(key) is stored.
 * A fast hash is enough because the key has 256 bits of entropy: no dictionary to guess from, so a
 * slow password hash would only cost CPU on every request. The lookup by hash needs no constant-time
 * compare either: an attacker learning a prefix of a sha256 learns nothing about a key.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html (hashing vs. high-entropy secrets)
 */
import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'sk_';
const KEY_BYTES = 32;
/** The exact shape of a key we issue: 32 bytes are 43 base64url characters. */
const API_KEY_SHAPE = /^sk_[A-Za-z0-9_-]{43}$/;

export interface GeneratedApiKey {
  /** Shown to the caller once, never stored. */
  key: string;
  /** sha256 hex of the key: what the service account document keeps. */
  keyHash: string;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function generateApiKey(): GeneratedApiKey {
  const key = API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
  return { key, keyHash: hashApiKey(key) };
}

/** True when `key` has the shape of a key we issue (cheap filter before any store lookup). */
export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_SHAPE.test(key);
}
