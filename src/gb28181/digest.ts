/**
 * SIP Digest authentication as GB/T 28181-2016 §9.1.2.1 uses it: MD5, qop="auth", the realm from the
 * server id. Nonces are stateless: `<time>.<random>.<mac>` signed with a key of this process, so any
 * number of challenges costs no memory and a nonce older than NONCE_TTL_MS is refused as stale.
 * The device's secret is kept as HA1 = MD5(id:realm:password), never the password itself.
 * @see https://www.rfc-editor.org/rfc/rfc2617#section-3.2.2
 * @see GB/T 28181-2016 9.1.2 注册
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A challenge's nonce stays good this long (a device answers within seconds). */
export const NONCE_TTL_MS = 5 * 60_000;

const md5 = (text: string) => createHash('md5').update(text, 'utf8').digest('hex');

export const digestHa1 = (username: string, realm: string, password: string) => md5(`${username}:${realm}:${password}`);

export class NonceIssuer {
  private readonly key = randomBytes(32);

  constructor(private readonly now: () => number = Date.now) {}

  issue(): string {
    const body = `${this.now().toString(16)}.${randomBytes(8).toString('hex')}`;
    return `${body}.${this.mac(body)}`;
  }

  /** 'ok', 'stale' (ours but too old: the device should retry with the new one) or 'bad'. */
  check(nonce: string): 'ok' | 'stale' | 'bad' {
    const parts = nonce.split('.');
    if (parts.length !== 3 || !/^[0-9a-f]{1,12}$/.test(parts[0]!)) return 'bad';
    const expected = Buffer.from(this.mac(`${parts[0]}.${parts[1]}`));
    const given = Buffer.from(parts[2]!);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'bad';
    return this.now() - parseInt(parts[0]!, 16) > NONCE_TTL_MS ? 'stale' : 'ok';
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url').slice(0, 22);
  }
}

export function challengeHeader(realm: string, nonce: string, stale = false): string {
  return `Digest realm="${realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
}

export type DigestCheck = 'ok' | 'missing' | 'wrong' | 'stale';

/**
 * Checks an Authorization header's parameters against HA1. qop=auth is what we offer; the RFC 2069 form
 * without qop is accepted too because many cameras send it (it still proves the password, without a cnonce).
 */
export function checkDigest(
  params: ReadonlyMap<string, string> | undefined,
  input: { method: string; username: string; realm: string; ha1: string; nonces: NonceIssuer },
): DigestCheck {
  if (!params) return 'missing';
  const nonce = params.get('nonce') ?? '';
  const response = (params.get('response') ?? '').toLowerCase();
  const uri = params.get('uri') ?? '';
  if (params.get('username') !== input.username || params.get('realm') !== input.realm || !/^[0-9a-f]{32}$/.test(response)) return 'wrong';
  const algorithm = params.get('algorithm');
  if (algorithm !== undefined && algorithm.toUpperCase() !== 'MD5') return 'wrong';
  const nonceState = input.nonces.check(nonce);
  if (nonceState === 'bad') return 'wrong';
  const ha2 = md5(`${input.method}:${uri}`);
  const qop = params.get('qop');
  let expected: string;
  if (qop === undefined) expected = md5(`${input.ha1}:${nonce}:${ha2}`);
  else if (qop === 'auth') expected = md5(`${input.ha1}:${nonce}:${params.get('nc') ?? ''}:${params.get('cnonce') ?? ''}:auth:${ha2}`);
  else return 'wrong';
  if (!timingSafeEqual(Buffer.from(expected), Buffer.from(response))) return 'wrong';
  return nonceState === 'stale' ? 'stale' : 'ok';
}

/** The device side: an Authorization header answering a challenge (simulator, tests). */
export function authorizationHeader(input: {
  challenge: ReadonlyMap<string, string>;
  method: string;
  uri: string;
  username: string;
  password: string;
  nc?: number;
}): string {
  const realm = input.challenge.get('realm') ?? '';
  const nonce = input.challenge.get('nonce') ?? '';
  const ha1 = digestHa1(input.username, realm, input.password);
  const ha2 = md5(`${input.method}:${input.uri}`);
  const nc = (input.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = randomBytes(8).toString('hex');
  const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return `Digest username="${input.username}", realm="${realm}", nonce="${nonce}", uri="${input.uri}", response="${response}", algorithm=MD5, cnonce="${cnonce}", qop=auth, nc=${nc}`;
}
