/**
 * Password hashing with scrypt from node:crypto (no native addon, see DESIGN.md "Decisions").
 *
 * Stored form: `scrypt$N$r$p$saltB64$keyB64`. The parameters travel with each hash, so raising the
 * cost later keeps old hashes verifiable; `needsRehash` tells the login path when to upgrade one.
 * N = 2^14, r = 8 takes about 40 ms on the 2-core reference machine (2^15 already costs ~90 ms),
 * which is the OWASP minimum for scrypt.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#scrypt
 * @see https://www.rfc-editor.org/rfc/rfc7914 (scrypt)
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParameters {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelisation. */
  p: number;
}

export const PASSWORD_HASH_PARAMETERS: Readonly<ScryptParameters> = Object.freeze({ N: 2 ** 14, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/**
 * Bounds for parameters read back from a stored hash. A stored string is data: one with an absurd N
 * would make every login against it allocate gigabytes, so it is refused rather than computed.
 */
const LIMITS = { minLog2N: 14, maxLog2N: 17, maxR: 16, maxP: 4, minSalt: 16, maxSalt: 64, minKey: 16, maxKey: 64 };

interface ParsedHash extends ScryptParameters {
  salt: Buffer;
  key: Buffer;
}

function derive(password: string, salt: Buffer, keyLength: number, params: ScryptParameters): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    // scrypt needs 128 * N * r * p bytes; Node's default ceiling (32 MiB) is below the bounds above.
    maxmem: 128 * params.N * params.r * params.p + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    // NFC so that the same password typed on different systems (composed vs decomposed) matches.
    scrypt(password.normalize('NFC'), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const DECIMAL = /^[1-9][0-9]{0,9}$/;

function decodeBase64(text: string): Buffer | null {
  if (!B64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Refuse non-canonical encodings, so a hash string has exactly one spelling.
  return bytes.toString('base64') === text ? bytes : null;
}

function parseStoredHash(stored: string): ParsedHash | null {
  if (typeof stored !== 'string' || stored.length > 512) return null;
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [, nText, rText, pText, saltText, keyText] = parts;
  if (!DECIMAL.test(nText) || !DECIMAL.test(rText) || !DECIMAL.test(pText)) return null;
  const N = Number(nText);
  const r = Number(rText);
  const p = Number(pText);
  const log2N = Math.log2(N);
  if (!Number.isInteger(log2N) || log2N < LIMITS.minLog2N || log2N > LIMITS.maxLog2N) return null;
  if (r > LIMITS.maxR || p > LIMITS.maxP) return null;
  const salt = decodeBase64(saltText);
  const key = decodeBase64(keyText);
  if (!salt || salt.length < LIMITS.minSalt || salt.length > LIMITS.maxSalt) return null;
  if (!key || key.length < LIMITS.minKey || key.length > LIMITS.maxKey) return null;
  return { N, r, p, salt, key };
}

/** Hashes a password with a fresh random salt and the current parameters. */
export async function hashPassword(password: string): Promise<string> {
  const params = PASSWORD_HASH_PARAMETERS;
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * True when `password` matches `stored`. A malformed or out-of-bounds stored hash never matches
 * (and still costs one derivation, so it answers in the usual time).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseStoredHash(stored);
  if (!parsed) {
    await dummyVerify();
    return false;
  }
  const candidate = await derive(password, parsed.salt, parsed.key.length, parsed);
  return timingSafeEqual(candidate, parsed.key);
}

/**
 * Spends the time of one verification with the current parameters and answers false. Call it when
 * the username does not exist, so that "no such user" and "wrong password" take the same time
 * (API.md: the same INVALID_CREDENTIALS answer for both).
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html#authentication-responses
 */
export async function dummyVerify(): Promise<false> {
  const key = await derive('dummy-password', randomBytes(SALT_BYTES), KEY_BYTES, PASSWORD_HASH_PARAMETERS);
  timingSafeEqual(key, randomBytes(KEY_BYTES));
  return false;
}

/** True when a stored hash uses weaker parameters than today's (rehash it after a successful login). */
export function needsRehash(stored: string): boolean {
  const parsed = parseStoredHash(stored);
  if (!parsed) return true;
  const current = PASSWORD_HASH_PARAMETERS;
  return parsed.N < current.N || parsed.r < current.r || parsed.p < current.p || parsed.key.length < KEY_BYTES;
}
