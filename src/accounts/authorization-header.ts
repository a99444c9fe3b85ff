/**
 * Parses the Authorization header: `Bearer <token>` for people, `ApiKey <key>` for services
 * (API.md "Authentication"). Anything else, or anything oversized, is "no credentials": the caller
 * answers 401 without telling which part was wrong.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-11.4 (scheme is case-insensitive)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (b64token syntax of Bearer)
 */
import { isWellFormedApiKey } from './api-keys.js';

export type Credentials = { kind: 'bearer'; token: string } | { kind: 'api-key'; key: string };

const MAX_HEADER_LENGTH = 4200;
const CREDENTIALS = /^([A-Za-z]+) +(\S+)$/;
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function parseAuthorization(header: string | string[] | undefined): Credentials | null {
  // A repeated header is ambiguous: refuse rather than pick one.
  if (typeof header !== 'string' || header.length > MAX_HEADER_LENGTH) return null;
  const match = CREDENTIALS.exec(header.trim());
  if (!match) return null;
  const scheme = match[1].toLowerCase();
  const value = match[2];
  if (scheme === 'bearer') return B64TOKEN.test(value) ? { kind: 'bearer', token: value } : null;
  if (scheme === 'apikey') return isWellFormedApiKey(value) ? { kind: 'api-key', key: value } : null;
  return null;
}

/** The key of an `ApiKey <key>` header, or null. */
export function parseApiKeyHeader(header: string | string[] | undefined): string | null {
  const credentials = parseAuthorization(header);
  return credentials?.kind === 'api-key' ? credentials.key : null;
}
