import t from 'tap';
import { createHash } from 'node:crypto';
import { API_KEY_PREFIX, generateApiKey, hashApiKey, isWellFormedApiKey } from '../../src/accounts/api-keys.js';
import { parseApiKeyHeader, parseAuthorization } from '../../src/accounts/authorization-header.js';

t.test('a generated key is sk_ + 32 random bytes, stored only as its sha256', async (t) => {
  const { key, keyHash } = generateApiKey();
  t.ok(key.startsWith(API_KEY_PREFIX));
  t.equal(Buffer.from(key.slice(3), 'base64url').length, 32);
  t.equal(keyHash, createHash('sha256').update(key).digest('hex'));
  t.equal(hashApiKey(key), keyHash);
  t.notOk(keyHash.includes(key.slice(3)), 'the hash does not contain the key');
  t.ok(isWellFormedApiKey(key));
  const keys = new Set(Array.from({ length: 100 }, () => generateApiKey().key));
  t.equal(keys.size, 100, 'no repeats');
});

t.test('Authorization: ApiKey <key> is parsed; anything odd is no credentials', async (t) => {
  const { key } = generateApiKey();
  t.same(parseAuthorization(`ApiKey ${key}`), { kind: 'api-key', key });
  t.same(parseAuthorization(`apikey ${key}`), { kind: 'api-key', key }, 'scheme is case-insensitive');
  t.equal(parseApiKeyHeader(`ApiKey ${key}`), key);
  const refused: Array<string | string[] | undefined> = [
    undefined,
    '',
    'ApiKey',
    `ApiKey  `,
    `ApiKey ${key} extra`,
    `ApiKey ${key.slice(0, -1)}`,
    `ApiKey ${key}A`,
    `ApiKey pk_${key.slice(3)}`,
    `ApiKey ${key.slice(0, 10)}\n${key.slice(10)}`,
    `Basic ${Buffer.from('a:b').toString('base64')}`,
    `ApiKey ${'a'.repeat(5000)}`,
    [`ApiKey ${key}`, `ApiKey ${key}`],
  ];
  for (const header of refused) t.equal(parseAuthorization(header), null, JSON.stringify(header)?.slice(0, 40) ?? 'undefined');
  t.equal(parseApiKeyHeader('Bearer abc.def.ghi'), null, 'a bearer token is not an API key');
});

t.test('Authorization: Bearer <token> is parsed with the b64token syntax', async (t) => {
  t.same(parseAuthorization('Bearer abc.DEF-_~+/.ghi'), { kind: 'bearer', token: 'abc.DEF-_~+/.ghi' });
  t.same(parseAuthorization('bearer x.y.z'), { kind: 'bearer', token: 'x.y.z' });
  t.equal(parseAuthorization('Bearer a"b'), null);
  t.equal(parseAuthorization('Bearer'), null);
});
