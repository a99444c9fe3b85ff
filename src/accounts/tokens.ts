/**
 * Access tokens for people: JWT (RFC 7519) signed with HMAC-SHA256 (JWS HS256, RFC 7515), written
 * with node:crypto only. The verifier accepts exactly one algorithm, so `alg: none`, algorithm
 * confusion (RS256 with the HMAC secret) and downgrade/upgrade games are refused before any crypto.
 * @see https://www.rfc-editor.org/rfc/rfc8725 (JWT best current practices, §3.1 and §3.2)
 *
 * `ver` is the user's tokenVersion at signing time: the caller compares it with the stored user so
 * that a password change or a disable makes older tokens stop working.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { unauthenticated } from '../core/errors.js';
import { ROLES, type Role } from '../core/model.js';

export interface TokenClaims {
  /** User id. */
  sub: string;
  role: Role;
  agencyId: string;
  /** The user's tokenVersion when the token was signed. */
  ver: number;
}

export interface VerifiedTokenClaims extends TokenClaims {
  /** Issued at, epoch seconds. */
  iat: number;
  /** Expires at, epoch seconds. */
  exp: number;
  /** Token id, for audit. */
  jti: string;
  /** Not before, epoch seconds (absent in tokens we sign; honoured when present). */
  nbf?: number;
}

export interface SignedToken {
  token: string;
  /** ISO-8601 UTC. */
  expiresAt: string;
  jti: string;
}

export type TokenSecret = string | Buffer;

/** HS256 keys must be at least as long as the hash output (RFC 7518 §3.2). */
export const MIN_TOKEN_SECRET_BYTES = 32;
/** Longer inputs are refused before any parsing. */
const MAX_TOKEN_LENGTH = 4096;
/** Tolerated clock difference between brokers for iat / nbf (exp is strict). */
const CLOCK_TOLERANCE_SECONDS = 5;

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function secretBytes(secret: TokenSecret): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (bytes.length < MIN_TOKEN_SECRET_BYTES) {
    throw new Error(`token secret must be at least ${MIN_TOKEN_SECRET_BYTES} bytes`);
  }
  return bytes;
}

function hmac(secret: Buffer, signingInput: string): Buffer {
  return createHmac('sha256', secret).update(signingInput).digest();
}

/** Signs claims for `ttlSeconds`. `now` (epoch ms) is for tests. */
export function signToken(claims: TokenClaims, secret: TokenSecret, ttlSeconds: number, now = Date.now()): SignedToken {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error('ttlSeconds must be a positive integer');
  const key = secretBytes(secret);
  const iat = Math.floor(now / 1000);
  const exp = iat + ttlSeconds;
  const jti = randomUUID();
  const body: VerifiedTokenClaims = { sub: claims.sub, role: claims.role, agencyId: claims.agencyId, ver: claims.ver, iat, exp, jti };
  const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
  const token = `${signingInput}.${hmac(key, signingInput).toString('base64url')}`;
  return { token, expiresAt: new Date(exp * 1000).toISOString(), jti };
}

const invalid = () => unauthenticated('invalid token');

/** Decodes one base64url segment, refusing non-canonical spellings (a token has one form only). */
function decodeSegment(segment: string): Buffer {
  if (!BASE64URL.test(segment)) throw invalid();
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw invalid();
  return bytes;
}

function decodeJsonObject(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment).toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid();
  return value as Record<string, unknown>;
}

const isEpochSeconds = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNonEmptyString = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

/**
 * Verifies a token and returns its claims, or throws DomainError UNAUTHENTICATED (401). Order: shape,
 * header (exactly HS256 / JWT, no `crit`), signature (constant time), then claims and times.
 * `now` (epoch ms) is for tests.
 */
export function verifyToken(token: string, secret: TokenSecret, now = Date.now()): VerifiedTokenClaims {
  const key = secretBytes(secret);
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw invalid();
  const segments = token.split('.');
  if (segments.length !== 3) throw invalid();
  const [headerSegment, payloadSegment, signatureSegment] = segments;

  const header = decodeJsonObject(headerSegment);
  // RFC 8725 §3.1: use one algorithm and reject every other, whatever the header says.
  if (header.alg !== 'HS256' || header.typ !== 'JWT' || 'crit' in header) throw invalid();

  const signature = decodeSegment(signatureSegment);
  const expected = hmac(key, `${headerSegment}.${payloadSegment}`);
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) throw invalid();

  const claims = decodeJsonObject(payloadSegment);
  const { sub, role, agencyId, ver, iat, exp, jti, nbf } = claims;
  if (!isNonEmptyString(sub) || !isNonEmptyString(agencyId) || !isNonEmptyString(jti)) throw invalid();
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw invalid();
  if (!Number.isSafeInteger(ver) || (ver as number) < 0) throw invalid();
  if (!isEpochSeconds(iat) || !isEpochSeconds(exp) || (nbf !== undefined && !isEpochSeconds(nbf))) throw invalid();

  const nowSeconds = now / 1000;
  if (exp <= nowSeconds) throw unauthenticated('token expired');
  if (iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) throw invalid();
  if (nbf !== undefined && nbf > nowSeconds + CLOCK_TOLERANCE_SECONDS) throw unauthenticated('token not yet valid');

  const verified: VerifiedTokenClaims = { sub, role: role as Role, agencyId, ver: ver as number, iat, exp, jti };
  if (nbf !== undefined) verified.nbf = nbf;
  return verified;
}

/**
 * verifyToken with a memory of the tokens it accepted: a console sends the same token with every
 * request, and its HMAC and two JSON decodings were a quarter of a catalog query's CPU. A token's text
 * is its signature, so the same text verifies the same way for ever but for the clock: a kept token is
 * checked against `exp` on every use. Only tokens that verified are kept (a stranger's garbage costs
 * the full check every time and takes no room); the oldest is dropped beyond `maxEntries` (0: keep none).
 * The caller still checks the user (version, disabled) on every request.
 */
export class TokenVerifier {
  private readonly key: Buffer;
  private readonly accepted = new Map<string, VerifiedTokenClaims>();

  constructor(
    secret: TokenSecret,
    private readonly maxEntries: number,
  ) {
    this.key = secretBytes(secret);
  }

  verify(token: string, now = Date.now()): VerifiedTokenClaims {
    const kept = this.accepted.get(token);
    if (kept) {
      if (kept.exp <= now / 1000) {
        this.accepted.delete(token);
        throw unauthenticated('token expired');
      }
      return kept;
    }
    const claims = Object.freeze(verifyToken(token, this.key, now));
    if (this.maxEntries > 0) {
      if (this.accepted.size >= this.maxEntries) this.accepted.delete(this.accepted.keys().next().value!);
      this.accepted.set(token, claims);
    }
    return claims;
  }

  get size(): number {
    return this.accepted.size;
  }
}
