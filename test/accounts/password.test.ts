import t from 'tap';
import { dummyVerify, hashPassword, needsRehash, PASSWORD_HASH_PARAMETERS, verifyPassword } from '../../src/accounts/password.js';

const PASSWORD = 'correct horse battery';

t.test('a hash verifies its password and no other', async (t) => {
  const stored = await hashPassword(PASSWORD);
  t.equal(await verifyPassword(PASSWORD, stored), true);
  t.equal(await verifyPassword('correct horse battery!', stored), false);
  t.equal(await verifyPassword('', stored), false);
});

t.test('the stored string carries algorithm, parameters, salt and key', async (t) => {
  const stored = await hashPassword(PASSWORD);
  const [alg, n, r, p, salt, key] = stored.split('$');
  t.equal(alg, 'scrypt');
  t.same([Number(n), Number(r), Number(p)], [PASSWORD_HASH_PARAMETERS.N, PASSWORD_HASH_PARAMETERS.r, PASSWORD_HASH_PARAMETERS.p]);
  t.equal(Buffer.from(salt, 'base64').length, 16);
  t.equal(Buffer.from(key, 'base64').length, 32);
  t.not(await hashPassword(PASSWORD), stored, 'a fresh salt every time');
  t.equal(needsRehash(stored), false);
});

t.test('parameters are read from the stored string, not assumed', async (t) => {
  const stored = await hashPassword(PASSWORD);
  const [, , r, p, salt, key] = stored.split('$');
  // Same salt and key but a claimed N of 2^15: the derivation differs, so it must not verify.
  t.equal(await verifyPassword(PASSWORD, ['scrypt', 2 ** 15, r, p, salt, key].join('$')), false);
  t.equal(needsRehash(['scrypt', 2 ** 15, r, p, salt, key].join('$')), false, 'stronger than today is fine');
});

t.test('a tampered or malformed hash never verifies', async (t) => {
  const stored = await hashPassword(PASSWORD);
  const parts = stored.split('$');
  const flip = (b64: string) => {
    const bytes = Buffer.from(b64, 'base64');
    bytes[0] ^= 1;
    return bytes.toString('base64');
  };
  const variants: Record<string, string> = {
    'key flipped': [...parts.slice(0, 5), flip(parts[5])].join('$'),
    'salt flipped': [...parts.slice(0, 4), flip(parts[4]), parts[5]].join('$'),
    'other algorithm': ['bcrypt', ...parts.slice(1)].join('$'),
    'missing field': parts.slice(0, 5).join('$'),
    'absurd N (DoS)': ['scrypt', 2 ** 30, ...parts.slice(2)].join('$'),
    'N not a power of two': ['scrypt', 16383, ...parts.slice(2)].join('$'),
    'N weaker than the floor': ['scrypt', 1024, ...parts.slice(2)].join('$'),
    'absurd r': ['scrypt', parts[1], 4096, ...parts.slice(3)].join('$'),
    'short key': [...parts.slice(0, 5), Buffer.alloc(4).toString('base64')].join('$'),
    'not base64': [...parts.slice(0, 5), '!!!!'].join('$'),
    empty: '',
  };
  for (const [name, variant] of Object.entries(variants)) {
    t.equal(await verifyPassword(PASSWORD, variant), false, name);
    // Flipped bytes still parse; everything else is unreadable and must be replaced.
    if (!name.endsWith('flipped')) t.equal(needsRehash(variant), true, `${name} needs a new hash`);
  }
});

t.test('unicode passwords are compared in NFC', async (t) => {
  const composed = 'caf\u00e9 au lait 123';
  const decomposed = 'cafe\u0301 au lait 123';
  t.equal(await verifyPassword(decomposed, await hashPassword(composed)), true);
});

t.test('dummyVerify answers false (it exists to spend the same time)', async (t) => {
  t.equal(await dummyVerify(), false);
});
