/**
 * Issue 9, item 3, "the same on Redis with three brokers": three broker processes on one private Redis
 * append to the one chain; an agency keeps a signed head; an insider with Redis access then cuts the
 * audit stream's tail (atomically, the way a careful one would: the entries gone, the stream's last id
 * and the chain head moved back, so the brokers go on appending without an error). Every broker's
 * GET /audit/verify?seq&hash and the offline `audit:verify --redis --head` then fail for the kept seq,
 * before and after the log grows back past it; a head older than the cut still verifies. An edited entry
 * (the stream rebuilt with one entry changed) is named by seq on every broker and offline.
 * @see ../../../shared/API.md "Audit"
 */
import t from 'tap';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createClient } from 'redis';
import { api, privateRedis, startBroker, type BrokerProcess } from '../process/helpers.js';
import { runScript } from '../helper.js';

interface Head {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  signature: string;
}

const PREFIX = 'se';
const HEAD_KEY = `${PREFIX}:audit:{audit}:head`;
const ENTRIES_KEY = `${PREFIX}:audit:{audit}:entries`;

/** The insider's cut: everything after `keep` removed, the stream's last id and the chain head set back to entry `keep`. */
const CUT_TAIL = `
local keep = tonumber(ARGV[1])
local tail = redis.call('XRANGE', KEYS[2], string.format('%d-0', keep + 1), '+')
for _, item in ipairs(tail) do redis.call('XDEL', KEYS[2], item[1]) end
local last = redis.call('XRANGE', KEYS[2], string.format('%d-0', keep), string.format('%d-0', keep))
local entry = cjson.decode(last[1][2][2])
redis.call('XSETID', KEYS[2], string.format('%d-0', keep))
redis.call('HSET', KEYS[1], 'seq', tostring(keep), 'hash', entry.hash, 'at', entry.at)
return #tail`;

/** The insider's edit: a stream cannot be written in place, so it is rebuilt with one entry changed. */
const EDIT_ENTRY = `
local all = redis.call('XRANGE', KEYS[1], '-', '+')
redis.call('DEL', KEYS[1])
local changed = 0
for _, item in ipairs(all) do
  local json = item[2][2]
  if item[1] == ARGV[1] then
    local edited, n = string.gsub(json, '"outcome":"ok"', '"outcome":"denied"', 1)
    json = edited
    changed = n
  end
  redis.call('XADD', KEYS[1], item[1], 'e', json)
end
return changed`;

const headVerifies = (head: Head, publicKeyPem: string) =>
  verify(null, Buffer.from(`${head.seq}\n${head.hash}\n${head.at}`, 'utf8'), createPublicKey(publicKeyPem), Buffer.from(head.signature, 'base64'));

t.test('redis, three brokers: a cut tail and an edited entry fail every broker and the offline check, naming the seq', async (t) => {
  const redis = await privateRedis(t);
  const adminPassword = randomBytes(12).toString('base64url');
  const env = { BROKER_STORE: 'redis', BROKER_REDIS_URL: redis.url, BROKER_REDIS_PREFIX: PREFIX, BROKER_ADMIN_PASSWORD: adminPassword, BROKER_LOGIN_FAILURE_DELAY_MS: '0' };
  // One after the other: the first bootstraps the admin and the signing key, the others find them.
  const brokers: BrokerProcess[] = [];
  for (let i = 0; i < 3; i++) brokers.push(await startBroker(t, env));
  const tokens = new Map<BrokerProcess, string>();
  /** Each login is one audit entry, appended by the broker that answered it. */
  const appendOn = async (broker: BrokerProcess, rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      const login = await api(broker.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword });
      t.equal(login.status, 200, `login on ${broker.port}`);
      tokens.set(broker, login.body.token);
    }
  };
  const head = async (broker: BrokerProcess): Promise<Head> => (await api(broker.url, 'GET', '/audit/head', tokens.get(broker))).body;
  const verifyOn = async (broker: BrokerProcess, query = '') => {
    const res = await api(broker.url, 'GET', `/audit/verify${query}`, tokens.get(broker));
    t.equal(res.status, 200, `verify on ${broker.port}: 200`);
    return res.body as { ok: boolean; entries: number; firstBadSeq: number | null; extends?: boolean };
  };
  const offline = (...args: string[]) => runScript('src/cli/audit-verify.ts', ['--redis', redis.url, '--prefix', PREFIX, ...args]);

  for (const broker of brokers) await appendOn(broker, 2);
  const start = await head(brokers[0]!);
  for (const broker of brokers) await appendOn(broker, 2);
  const older = await head(brokers[1]!);
  t.ok(older.seq >= start.seq + 6, `the three brokers' appends are on one chain (${start.seq} → ${older.seq})`);
  for (const broker of brokers) await appendOn(broker, 2);
  const kept = await head(brokers[2]!);
  const heads = await Promise.all(brokers.map(head));
  t.same(heads, [kept, kept, kept], 'every broker answers the same head: one chain');
  const { publicKeyPem } = (await api(brokers[0]!.url, 'GET', '/audit/public-key', tokens.get(brokers[0]!))).body;
  t.ok(headVerifies(kept, publicKeyPem), 'the kept head verifies with crypto.verify and the published key');

  const dir = t.testdir();
  const keptFile = path.join(dir, 'kept-head.json');
  const olderFile = path.join(dir, 'older-head.json');
  const keyFile = path.join(dir, 'audit-public-key.pem');
  await fs.writeFile(keptFile, JSON.stringify(kept));
  await fs.writeFile(olderFile, JSON.stringify(older));
  await fs.writeFile(keyFile, publicKeyPem);

  const intact = await offline('--head', keptFile, '--public-key', keyFile);
  t.equal(intact.code, 0, `intact: exit 0 (${intact.stdout}${intact.stderr})`);
  t.match(intact.stdout, new RegExp(`ok: the log extends the kept head: entry ${kept.seq} still has hash ${kept.hash}`));
  t.equal((await offline('--head', keptFile)).code, 0, 'with the key the brokers keep in Redis too');
  for (const broker of brokers) t.equal((await verifyOn(broker, `?seq=${kept.seq}&hash=${kept.hash}`)).extends, true, `broker ${broker.port}: extends before the cut`);

  // The insider's cut.
  const insider = createClient({ url: redis.url });
  await insider.connect();
  t.teardown(() => insider.close());
  const keep = older.seq + 1;
  const removed = Number(await insider.eval(CUT_TAIL, { keys: [HEAD_KEY, ENTRIES_KEY], arguments: [String(keep)] }));
  t.ok(removed >= kept.seq - keep, `the tail is gone (${removed} entries)`);
  t.same(await offline(), { code: 0, stdout: `ok: ${keep} entries\n`, stderr: '' }, 'the chain alone does not see a cut');

  for (const broker of brokers) {
    t.same(await verifyOn(broker, `?seq=${kept.seq}&hash=${kept.hash}`), { ok: true, entries: keep, firstBadSeq: null, extends: false }, `broker ${broker.port}: the kept head is not extended`);
    t.equal((await verifyOn(broker, `?seq=${older.seq}&hash=${older.hash}`)).extends, true, `broker ${broker.port}: a head older than the cut still is`);
  }
  const cut = await offline('--head', keptFile, '--public-key', keyFile);
  t.equal(cut.code, 1, 'offline, cut: exit 1');
  t.match(cut.stdout, new RegExp(`BAD head seq ${kept.seq}: .*the log ends at seq ${keep}.*cut`), 'names the kept seq and where the log ends');
  t.match(cut.stdout, new RegExp(`verdict: BAD \\(kept head seq ${kept.seq}\\)`));
  t.equal((await offline('--head', olderFile, '--public-key', keyFile)).code, 0, 'offline: the older head still verifies');

  // The brokers go on from the insider's head: the log grows back past the kept seq, with other hashes.
  for (const broker of brokers) await appendOn(broker, 3);
  const regrown = await head(brokers[0]!);
  t.ok(regrown.seq > kept.seq, `the log grew back past the kept seq (${regrown.seq})`);
  for (const broker of brokers) {
    t.same(await verifyOn(broker, `?seq=${kept.seq}&hash=${kept.hash}`), { ok: true, entries: regrown.seq, firstBadSeq: null, extends: false }, `broker ${broker.port}: still not extended`);
  }
  const changed = await offline('--head', keptFile, '--public-key', keyFile);
  t.equal(changed.code, 1, 'offline, regrown: exit 1');
  t.match(changed.stdout, new RegExp(`BAD head seq ${kept.seq}: .*entry ${kept.seq} has hash [0-9a-f]{64}, the kept head says ${kept.hash}`));

  // The insider's edit of an older entry (a login that succeeded, now "denied").
  const logins = (await api(brokers[0]!.url, 'GET', '/audit?action=auth.login&limit=500', tokens.get(brokers[0]!))).body.items as Array<{ seq: number; outcome: string }>;
  const target = logins.filter((e) => e.outcome === 'ok' && e.seq > start.seq).at(-1)!;
  t.ok(target && target.seq < older.seq, `an entry to edit: seq ${target.seq}`);
  t.equal(Number(await insider.eval(EDIT_ENTRY, { keys: [ENTRIES_KEY], arguments: [`${target.seq}-0`] })), 1, 'one entry edited');
  for (const broker of brokers) {
    const verdict = await verifyOn(broker, `?seq=${older.seq}&hash=${older.hash}`);
    t.same({ ok: verdict.ok, firstBadSeq: verdict.firstBadSeq, extends: verdict.extends }, { ok: false, firstBadSeq: target.seq, extends: false }, `broker ${broker.port}: names seq ${target.seq}`);
  }
  const edited = await offline();
  t.equal(edited.code, 1, 'offline, edited: exit 1');
  t.match(edited.stdout, new RegExp(`^BAD at seq ${target.seq}: hash does not match`));
  const editedHead = await offline('--head', olderFile, '--public-key', keyFile);
  t.equal(editedHead.code, 1);
  t.match(editedHead.stdout, new RegExp(`BAD head seq ${older.seq}: .*the chain breaks at seq ${target.seq}`));
});

t.test('audit:verify --redis: usage and connection errors exit 2', async (t) => {
  const run = (...args: string[]) => runScript('src/cli/audit-verify.ts', args);
  t.match(await run('--redis', 'redis://127.0.0.1:6379', 'some-dir'), { code: 2, stderr: /usage/ }, 'a data dir and --redis');
  t.match(await run(t.testdir(), '--prefix', 'se'), { code: 2, stderr: /usage/ }, '--prefix without --redis');
  t.match(await run('--redis', 'redis://127.0.0.1:1'), { code: 2, stderr: /cannot connect to redis:\/\/127\.0\.0\.1:1/ }, 'nothing listening');
  const prefix = `t${randomBytes(6).toString('hex')}`;
  const head = path.join(t.testdir(), 'head.json');
  await fs.writeFile(head, JSON.stringify({ seq: 1, hash: 'a'.repeat(64), at: new Date().toISOString(), keyId: 'x', signature: 'AAAA' }));
  t.match(await run('--redis', 'redis://127.0.0.1:6379', '--prefix', prefix, '--head', head), { code: 2, stderr: /meta document auditSigningKey under prefix .*no key is stored there.*--public-key/ }, 'a prefix without a stored key');
  t.same(await run('--redis', 'redis://127.0.0.1:6379', '--prefix', prefix), { code: 0, stdout: 'ok: 0 entries\n', stderr: '' }, 'an empty prefix is an empty log');
});
