import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import { signToken, TokenVerifier, verifyToken, type TokenClaims } from '../../src/accounts/tokens.js';
import { DomainError } from '../../src/core/errors.js';

const SECRET = randomBytes(32);
const CLAIMS: TokenClaims = { sub: 'u-1', role: 'operator', agencyId: 'weather', ver: 3 };
const NOW = Date.UTC(2025, 0, 1, 12);

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const hs = (input: string, alg = 'sha256', key: Buffer = SECRET) => createHmac(alg, key).update(input).digest('base64url');

/** Builds a token by hand, signed with our secret unless told otherwise. */
function forge(header: object, payload: object, sign = (input: string) => hs(input)): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(input)}`;
}

const validPayload = () => {
  const iat = Math.floor(NOW / 1000);
  return { ...CLAIMS, iat, exp: iat + 600, jti: 'j-1' };
};

/** True when verification refuses the token with 401 UNAUTHENTICATED (and nothing else). */
function refused(token: string, secret: Buffer = SECRET): boolean {
  try {
    verifyToken(token, secret, NOW);
    return false;
  } catch (err) {
    return err instanceof DomainError && err.status === 401 && err.code === 'UNAUTHENTICATED';
  }
}

t.test('a token we signed verifies and carries its claims', async (t) => {
  const { token, expiresAt, jti } = signToken(CLAIMS, SECRET, 600, NOW);
  const claims = verifyToken(token, SECRET, NOW + 1000);
  t.match(claims, { ...CLAIMS, iat: NOW / 1000, exp: NOW / 1000 + 600, jti });
  t.equal(expiresAt, new Date(NOW + 600_000).toISOString());
  t.not(signToken(CLAIMS, SECRET, 600, NOW).jti, jti, 'each token has its own id');
  t.same(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });
});

t.test('expiry and not-before are enforced', async (t) => {
  const { token } = signToken(CLAIMS, SECRET, 600, NOW);
  t.throws(() => verifyToken(token, SECRET, NOW + 600_000), { status: 401, message: 'token expired' });
  t.doesNotThrow(() => verifyToken(token, SECRET, NOW + 599_000));
  t.ok(refused(forge({ alg: 'HS256', typ: 'JWT' }, { ...validPayload(), nbf: NOW / 1000 + 60 })), 'nbf in the future');
  t.ok(refused(forge({ alg: 'HS256', typ: 'JWT' }, { ...validPayload(), iat: NOW / 1000 + 3600 })), 'issued in the future');
  t.doesNotThrow(() => verifyToken(forge({ alg: 'HS256', typ: 'JWT' }, { ...validPayload(), nbf: NOW / 1000 - 1 }), SECRET, NOW));
});

t.test('tampering and other algorithms are refused', async (t) => {
  const { token } = signToken(CLAIMS, SECRET, 600, NOW);
  const [header, payload, signature] = token.split('.');
  const elevated = b64({ ...validPayload(), role: 'platform-admin' });
  t.ok(refused(`${header}.${elevated}.${signature}`), 'tampered payload');
  const sigBytes = Buffer.from(signature, 'base64url');
  sigBytes[5] ^= 0x10;
  t.ok(refused(`${header}.${payload}.${sigBytes.toString('base64url')}`), 'tampered signature');
  t.ok(refused(`${header}.${payload}.`), 'signature stripped');
  t.ok(refused(token, randomBytes(32)), 'wrong secret');
  t.ok(refused(forge({ alg: 'none', typ: 'JWT' }, validPayload(), () => '')), 'alg none, no signature');
  t.ok(refused(forge({ alg: 'none', typ: 'JWT' }, validPayload())), 'alg none with a signature');
  t.ok(refused(forge({ alg: 'HS512', typ: 'JWT' }, validPayload(), (i) => hs(i, 'sha512'))), 'alg HS512 correctly signed');
  t.ok(refused(forge({ alg: 'RS256', typ: 'JWT' }, validPayload())), 'alg RS256 signed with the HMAC secret');
  t.ok(refused(forge({ alg: 'hs256', typ: 'JWT' }, validPayload())), 'alg spelled differently');
  t.ok(refused(forge({ alg: 'HS256', typ: 'at+jwt' }, validPayload())), 'wrong typ');
  t.ok(refused(forge({ alg: 'HS256' }, validPayload())), 'no typ');
  t.ok(refused(forge({ alg: 'HS256', typ: 'JWT', crit: ['exp'] }, validPayload())), 'crit header');
});

t.test('garbage and incomplete claims are refused', async (t) => {
  for (const garbage of ['', 'abc', 'a.b', 'a.b.c', 'a.b.c.d', '....', '{}.{}.{}', 'x'.repeat(5000)]) {
    t.ok(refused(garbage), `garbage ${JSON.stringify(garbage.slice(0, 20))}`);
  }
  t.ok(refused(`${b64('not json')}.${b64(validPayload())}.${hs(`${b64('not json')}.${b64(validPayload())}`)}`), 'header not JSON');
  t.ok(refused(forge({ alg: 'HS256', typ: 'JWT' }, [1, 2, 3])), 'payload an array');
  const header = { alg: 'HS256', typ: 'JWT' };
  for (const field of ['sub', 'role', 'agencyId', 'ver', 'iat', 'exp', 'jti'] as const) {
    const payload: Record<string, unknown> = validPayload();
    delete payload[field];
    t.ok(refused(forge(header, payload)), `missing ${field}`);
  }
  t.ok(refused(forge(header, { ...validPayload(), role: 'root' })), 'unknown role');
  t.ok(refused(forge(header, { ...validPayload(), ver: '3' })), 'ver not a number');
  t.ok(refused(forge(header, { ...validPayload(), exp: 'tomorrow' })), 'exp not a number');
  const { token } = signToken(CLAIMS, SECRET, 600, NOW);
  t.ok(refused(`${token.split('.').slice(0, 2).join('.')}.${token.split('.')[2]}=`), 'padding appended');
});

t.test('secrets shorter than 32 bytes are refused', async (t) => {
  t.throws(() => signToken(CLAIMS, 'short', 600), /at least 32 bytes/);
  t.throws(() => verifyToken('a.b.c', Buffer.alloc(16)), /at least 32 bytes/);
  t.doesNotThrow(() => signToken(CLAIMS, 'x'.repeat(32), 600));
});

t.test('TokenVerifier remembers accepted tokens, and still refuses them once expired', async (t) => {
  const verifier = new TokenVerifier(SECRET, 2);
  const { token } = signToken(CLAIMS, SECRET, 600, NOW);
  t.equal(verifier.verify(token, NOW).sub, 'u-1');
  t.equal(verifier.size, 1, 'kept');
  t.equal(verifier.verify(token, NOW + 1000).jti, verifier.verify(token, NOW + 2000).jti, 'the same claims on every use');
  t.throws(() => verifier.verify(token, NOW + 600_000), { status: 401, message: 'token expired' }, 'a kept token expires as any other');
  t.equal(verifier.size, 0, 'and is forgotten');
});

t.test('TokenVerifier keeps nothing it refused, and at most maxEntries', async (t) => {
  const verifier = new TokenVerifier(SECRET, 2);
  const { token } = signToken(CLAIMS, SECRET, 600, NOW);
  const tampered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
  const otherKey = signToken(CLAIMS, randomBytes(32), 600, NOW).token;
  for (const bad of [tampered, otherKey, 'a.b.c', forge({ alg: 'none', typ: 'JWT' }, validPayload())]) {
    t.throws(() => verifier.verify(bad, NOW), { status: 401, code: 'UNAUTHENTICATED' });
  }
  t.equal(verifier.size, 0, 'refused tokens take no room');
  verifier.verify(token, NOW);
  t.throws(() => verifier.verify(tampered, NOW), { status: 401, code: 'UNAUTHENTICATED' }, 'a kept token does not vouch for a changed one');
  const tokens = [1, 2, 3].map((i) => signToken({ ...CLAIMS, sub: `u-${i}` }, SECRET, 600, NOW).token);
  for (const each of tokens) verifier.verify(each, NOW);
  t.equal(verifier.size, 2, 'bounded');
  t.equal(verifier.verify(tokens[0], NOW).sub, 'u-1', 'a dropped token verifies again in full');
  t.equal(new TokenVerifier(SECRET, 0).verify(token, NOW).sub, 'u-1', '0 keeps none but still verifies');
});
