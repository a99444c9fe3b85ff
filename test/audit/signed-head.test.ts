/**
 * Issue 9, item 3: signed audit heads. A hash chain catches an edited entry, not a cut end; a head the
 * broker signed ("entry N had hash H at T") that an agency kept catches that too. The head verifies with
 * `crypto.verify` and the public-key endpoint; `GET /audit/verify?seq&hash` says whether the log still
 * extends it; `audit:verify <dir> --head <file>` does the same offline on the embedded store, so a log cut on
 * disk (broker closed, last lines removed, reopened) fails it with the seq named. On Redis every broker signs
 * with the one shared key; the monthly report carries the month's last entry, signed.
 * @see ../../../shared/API.md "Audit", "Reports"
 */
import t, { type Test } from 'tap';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { auth, buildTestBroker, deleteRedisPrefix, makeTempDir, runScript, STORES } from '../helper.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createBroker } from '../../src/broker.js';
import { buildApp, type BrokerApp } from '../../src/app.js';
import { GENESIS_HASH } from '../../src/core/audit-chain.js';
import { AUDIT_FILE } from '../../src/store/memory/audit-store.js';
import { AUDIT_KEY_FILE } from '../../src/store/memory/audit-key.js';

interface Head {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  signature: string;
}

const runVerify = (...args: string[]) => runScript('src/cli/audit-verify.ts', args);

/** The check an agency runs: Ed25519 over `${seq}\n${hash}\n${at}` with the published key. */
function headVerifies(head: Head, publicKeyPem: string): boolean {
  return verify(null, Buffer.from(`${head.seq}\n${head.hash}\n${head.at}`, 'utf8'), createPublicKey(publicKeyPem), Buffer.from(head.signature, 'base64'));
}

async function getJson(app: BrokerApp, token: string, url: string, status = 200) {
  const res = await app.inject({ url, headers: auth(token) });
  if (res.statusCode !== status) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Audited actions that grow the log: each login is one entry. */
async function moreEntries(app: BrokerApp, password: string, rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password } });
  }
}

/**
 * A broker over `dataDir` that the test closes itself (to cut its files) and may open again; teardown
 * closes it if the test did not.
 */
async function openBroker(t: Test, dataDir: string, adminPassword: string, env: Record<string, string> = {}) {
  const config = loadConfig({ BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_DATA_DIR: dataDir, BROKER_LOGIN_FAILURE_DELAY_MS: '0', BROKER_GB_SIP_PORT: '0', ...env }, { adminPassword, logLevel: 'silent' });
  const logger = pino({ level: 'silent' });
  const broker = await createBroker(config, logger);
  await broker.accounts.bootstrap(config.adminPassword, () => adminPassword);
  const app = await buildApp(broker, config, logger);
  await app.ready();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
    await broker.close();
  };
  t.teardown(close);
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: adminPassword } });
  if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`);
  return { app, broker, token: login.json().token as string, close };
}

for (const store of STORES) {
  t.test(`${store.BROKER_STORE}: the head is the newest entry, signed; it verifies with the public key`, async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const a = await tb.agency({ id: 'agency-a' });
    const head: Head = await getJson(tb.app, tb.adminToken, '/api/v1/audit/head');
    const newest = (await getJson(tb.app, tb.adminToken, '/api/v1/audit?limit=1')).items[0];
    t.same({ seq: head.seq, hash: head.hash, at: head.at }, { seq: newest.seq, hash: newest.hash, at: newest.at }, 'seq, hash and at of the newest entry, exactly');
    const key = await getJson(tb.app, a.operatorToken, '/api/v1/audit/public-key');
    t.ok(headVerifies(head, key.publicKeyPem), 'crypto.verify with the published key');
    const spki = createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' });
    t.equal(key.keyId, createHash('sha256').update(spki).digest('hex').slice(0, 16), 'keyId: sha256 of the SPKI DER, 16 hex digits');
    t.equal(head.keyId, key.keyId, 'the head names its key');

    const adminHead: Head = await getJson(tb.app, a.adminToken, '/api/v1/audit/head');
    t.ok(adminHead.seq >= head.seq && headVerifies(adminHead, key.publicKeyPem), "an agency admin gets the same chain's head");
    const operator = await tb.app.inject({ url: '/api/v1/audit/head', headers: auth(a.operatorToken) });
    t.equal(operator.statusCode, 403, 'operators keep no heads');
    t.equal(operator.json().error.code, 'FORBIDDEN');
    t.equal((await tb.app.inject({ url: '/api/v1/audit/public-key' })).statusCode, 401, 'the key is for signed-in callers');

    const tampered = { ...head, at: new Date(Date.parse(head.at) + 1000).toISOString() };
    t.notOk(headVerifies(tampered, key.publicKeyPem), 'the signature covers at');
  });

  t.test(`${store.BROKER_STORE}: a kept head is extended as the log grows; a tampered hash is not`, async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const kept: Head = await getJson(tb.app, tb.adminToken, '/api/v1/audit/head');
    await moreEntries(tb.app, tb.adminPassword);
    const later: Head = await getJson(tb.app, tb.adminToken, '/api/v1/audit/head');
    t.ok(later.seq > kept.seq, 'the log grew');
    const verifyAt = (query: string) => getJson(tb.app, tb.adminToken, `/api/v1/audit/verify?${query}`);
    t.same(await verifyAt(`seq=${kept.seq}&hash=${kept.hash}`), { ok: true, entries: later.seq, firstBadSeq: null, extends: true });
    t.same(await verifyAt(`seq=${kept.seq}&hash=${kept.hash.toUpperCase()}`), { ok: true, entries: later.seq, firstBadSeq: null, extends: true }, 'hex in either case');
    const flipped = kept.hash.slice(0, -1) + (kept.hash.endsWith('0') ? '1' : '0');
    t.same(await verifyAt(`seq=${kept.seq}&hash=${flipped}`), { ok: true, entries: later.seq, firstBadSeq: null, extends: false }, 'a tampered hash is not extended');
    t.same(await verifyAt(`seq=${later.seq + 1}&hash=${later.hash}`), { ok: true, entries: later.seq, firstBadSeq: null, extends: false }, 'beyond the end is not extended');
    t.same(await verifyAt(`seq=0&hash=${GENESIS_HASH}`), { ok: true, entries: later.seq, firstBadSeq: null, extends: true }, 'every log extends the empty one');
    t.same(await verifyAt(''), { ok: true, entries: later.seq, firstBadSeq: null }, 'without a head: the answer it always gave');

    for (const query of ['seq=-1&hash=' + kept.hash, 'seq=1.5&hash=' + kept.hash, 'seq=abc&hash=' + kept.hash, `seq=${kept.seq}&hash=xyz`, `seq=${kept.seq}&hash=${kept.hash}0`, `seq=${kept.seq}`, `hash=${kept.hash}`, 'bogus=1']) {
      const res = await tb.app.inject({ url: `/api/v1/audit/verify?${query}`, headers: auth(tb.adminToken) });
      t.equal(res.statusCode, 400, `?${query} → 400`);
      t.equal(res.json().error?.code, 'BAD_REQUEST', `?${query}: the error shape`);
    }
    const a = await tb.agency({ id: 'agency-a' });
    t.equal((await tb.app.inject({ url: `/api/v1/audit/verify?seq=${kept.seq}&hash=${kept.hash}`, headers: auth(a.adminToken) })).statusCode, 403, 'verify stays platform-admin only');
  });
}

t.test('memory: a log cut on disk fails audit:verify --head naming the seq; an intact one passes', async (t) => {
  const dataDir = await makeTempDir(t);
  const password = randomBytes(12).toString('base64url');
  const first = await openBroker(t, dataDir, password);
  await moreEntries(first.app, password);
  const older: Head = await getJson(first.app, first.token, '/api/v1/audit/head');
  await moreEntries(first.app, password);
  const kept: Head = await getJson(first.app, first.token, '/api/v1/audit/head');
  const { publicKeyPem } = await getJson(first.app, first.token, '/api/v1/audit/public-key');
  await first.close();

  const keep = t.testdir();
  const keptFile = path.join(keep, 'kept-head.json');
  const olderFile = path.join(keep, 'older-head.json');
  const keyFile = path.join(keep, 'audit-public-key.pem');
  await fs.writeFile(keptFile, JSON.stringify(kept));
  await fs.writeFile(olderFile, JSON.stringify(older));
  await fs.writeFile(keyFile, publicKeyPem);

  const intact = await runVerify(dataDir, '--head', keptFile);
  t.equal(intact.code, 0, `intact: exit 0 (${intact.stdout}${intact.stderr})`);
  t.match(intact.stdout, new RegExp(`verdict: ok \\(kept head seq ${kept.seq}\\)`));
  t.equal((await runVerify(dataDir, '--head', keptFile, '--public-key', keyFile)).code, 0, 'with the published public key too');

  // Cut the last lines: the chain that is left is intact, so only the kept head can tell.
  const file = path.join(dataDir, AUDIT_FILE);
  const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
  t.equal(lines.length, kept.seq, 'one line per entry');
  const keepLines = older.seq + 1;
  await fs.writeFile(file, lines.slice(0, keepLines).join('\n') + '\n');
  t.same(await runVerify(dataDir), { code: 0, stdout: `ok: ${keepLines} entries\n`, stderr: '' }, 'the chain alone does not see a cut');

  const cut = await runVerify(dataDir, '--head', keptFile);
  t.equal(cut.code, 1, 'cut: non-zero exit');
  t.match(cut.stdout, new RegExp(`BAD head seq ${kept.seq}: .*the log ends at seq ${keepLines}.*cut`), 'names the kept seq and the end');
  t.match(cut.stdout, new RegExp(`verdict: BAD \\(kept head seq ${kept.seq}\\)`));
  t.equal((await runVerify(dataDir, '--head', olderFile)).code, 0, 'a head older than the cut is still extended');

  // Reopened, the broker continues from the cut: the log grows past the kept seq with other hashes.
  const again = await openBroker(t, dataDir, password);
  t.same(await getJson(again.app, again.token, `/api/v1/audit/verify?seq=${kept.seq}&hash=${kept.hash}`), { ok: true, entries: keepLines + 1, firstBadSeq: null, extends: false }, 'the broker sees it too');
  await moreEntries(again.app, password, 4);
  const regrown: Head = await getJson(again.app, again.token, '/api/v1/audit/head');
  t.ok(regrown.seq > kept.seq, 'the log grew back past the kept seq');
  t.equal(regrown.keyId, kept.keyId, 'the key survived the restart');
  t.equal((await getJson(again.app, again.token, `/api/v1/audit/verify?seq=${kept.seq}&hash=${kept.hash}`)).extends, false);
  await again.close();
  const changed = await runVerify(dataDir, '--head', keptFile);
  t.equal(changed.code, 1, 'regrown: non-zero exit');
  t.match(changed.stdout, new RegExp(`BAD head seq ${kept.seq}: .*entry ${kept.seq} has hash [0-9a-f]{64}, the kept head says ${kept.hash}`));
});

t.test('memory: a bad signature exits non-zero naming the seq; usage errors exit 2', async (t) => {
  const dataDir = await makeTempDir(t);
  const password = randomBytes(12).toString('base64url');
  const b = await openBroker(t, dataDir, password);
  await moreEntries(b.app, password);
  const head: Head = await getJson(b.app, b.token, '/api/v1/audit/head');
  await b.close();
  const dir = t.testdir();
  const write = async (name: string, value: unknown) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
    return file;
  };
  t.equal((await runVerify(dataDir, '--head', await write('good.json', head))).code, 0);

  const forgedSig = Buffer.from(head.signature, 'base64');
  forgedSig[0] ^= 1;
  const bad = await runVerify(dataDir, '--head', await write('bad-sig.json', { ...head, signature: forgedSig.toString('base64') }));
  t.equal(bad.code, 1, 'altered signature: exit 1');
  t.match(bad.stdout, new RegExp(`BAD head seq ${head.seq}: the signature does not verify with key ${head.keyId}`));

  const movedAt = await runVerify(dataDir, '--head', await write('moved.json', { ...head, at: '2001-01-01T00:00:00.000Z' }));
  t.equal(movedAt.code, 1, 'a signed field changed: exit 1');
  t.match(movedAt.stdout, /the signature does not verify/);

  const otherKey = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const wrongKey = await runVerify(dataDir, '--head', await write('good2.json', head), '--public-key', await write('other.pem', otherKey));
  t.equal(wrongKey.code, 1, 'another key: exit 1');
  t.match(wrongKey.stdout, new RegExp(`the head names key ${head.keyId}`));

  t.match(await runVerify(dataDir, '--head', await write('junk.json', '{"seq": "x"}')), { code: 2, stderr: /not a signed head: seq/ });
  t.match(await runVerify(dataDir, '--head', path.join(dir, 'missing.json')), { code: 2, stderr: /cannot read the head/ });
  t.match(await runVerify(dataDir, '--public-key', await write('k.pem', otherKey)), { code: 2, stderr: /usage/ });
  t.match(await runVerify(t.testdir(), '--head', await write('good3.json', head)), { code: 2, stderr: /--public-key/ }, 'no key file and no --public-key');

  // An entry before the kept seq edited: the chain names it, and the head is not extended.
  const file = path.join(dataDir, AUDIT_FILE);
  const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
  await fs.writeFile(file, lines.map((line, i) => (i === 1 ? line.replace(/"outcome":"[a-z]+"/, '"outcome":"error"') : line)).join('\n') + '\n');
  const edited = await runVerify(dataDir, '--head', await write('good4.json', head));
  t.equal(edited.code, 1, 'edited: exit 1');
  t.match(edited.stdout, /BAD at seq 2: hash does not match/);
  t.match(edited.stdout, new RegExp(`BAD head seq ${head.seq}: .*the chain breaks at seq 2`));
});

t.test('memory: the generated key file has mode 0600 and is reused', async (t) => {
  const dataDir = await makeTempDir(t);
  const password = randomBytes(12).toString('base64url');
  const first = await openBroker(t, dataDir, password);
  const key = await getJson(first.app, first.token, '/api/v1/audit/public-key');
  await first.close();
  const stat = await fs.stat(path.join(dataDir, AUDIT_KEY_FILE));
  t.equal(stat.mode & 0o777, 0o600, 'owner read/write only');
  const pem = await fs.readFile(path.join(dataDir, AUDIT_KEY_FILE), 'utf8');
  t.equal(createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString(), key.publicKeyPem, 'the file holds the key heads verify with');
  const second = await openBroker(t, dataDir, password);
  t.same(await getJson(second.app, second.token, '/api/v1/audit/public-key'), key, 'the same key after a restart');
});

t.test('BROKER_AUDIT_SIGNING_KEY: heads verify with its public key; a malformed one stops boot', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  for (const [name, value] of [
    ['PEM', pem],
    ['PEM with \\n written out', pem.trimEnd().replace(/\n/g, '\\n')],
  ] as const) {
    const tb = await buildTestBroker(t, { env: { BROKER_AUDIT_SIGNING_KEY: value } });
    const head: Head = await getJson(tb.app, tb.adminToken, '/api/v1/audit/head');
    t.ok(headVerifies(head, publicPem), `${name}: the head verifies with the configured key's public key`);
    t.equal((await getJson(tb.app, tb.adminToken, '/api/v1/audit/public-key')).publicKeyPem, publicPem);
    await t.rejects(fs.access(path.join(tb.dataDir, AUDIT_KEY_FILE)), `${name}: no key file is generated`);
  }

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  for (const [value, reason] of [
    ['not a key', /not a private key in PEM form/],
    [publicPem, /not a private key in PEM form/],
    [rsa, /an rsa key, not Ed25519/],
    ['', /auditSigningKey \(BROKER_AUDIT_SIGNING_KEY\)/],
  ] as const) {
    t.throws(() => loadConfig({ BROKER_AUDIT_SIGNING_KEY: value }), ConfigError);
    t.throws(() => loadConfig({ BROKER_AUDIT_SIGNING_KEY: value }), { message: /auditSigningKey \(BROKER_AUDIT_SIGNING_KEY\)/ });
    t.throws(() => loadConfig({ BROKER_AUDIT_SIGNING_KEY: value }), { message: reason });
  }
  const { code, stderr } = await runScript('src/main.ts', [], { ...process.env, BROKER_AUDIT_SIGNING_KEY: rsa, BROKER_DATA_DIR: '/nonexistent' });
  t.equal(code, 78, 'EX_CONFIG');
  t.match(stderr, /auditSigningKey \(BROKER_AUDIT_SIGNING_KEY\): an rsa key, not Ed25519/);
  t.notOk(stderr.includes(rsa.split('\n')[1]!), 'the key itself is not printed');
});

t.test('redis: two brokers on one prefix sign heads of the one chain with one key', async (t) => {
  const prefix = `t${randomBytes(6).toString('hex')}`;
  t.teardown(() => deleteRedisPrefix(prefix));
  const env = { BROKER_STORE: 'redis', BROKER_REDIS_PREFIX: prefix };
  const a = await buildTestBroker(t, { env });
  const b = await openBroker(t, await makeTempDir(t), a.adminPassword, env);
  const keyA = await getJson(a.app, a.adminToken, '/api/v1/audit/public-key');
  const keyB = await getJson(b.app, b.token, '/api/v1/audit/public-key');
  t.same(keyB, keyA, 'one public key');
  await moreEntries(b.app, a.adminPassword);
  const headB: Head = await getJson(b.app, b.token, '/api/v1/audit/head');
  const headA: Head = await getJson(a.app, a.adminToken, '/api/v1/audit/head');
  t.same(headA, headB, 'the same head from either broker: one chain');
  await moreEntries(a.app, a.adminPassword);
  const laterA: Head = await getJson(a.app, a.adminToken, '/api/v1/audit/head');
  for (const [name, head] of [['B', headB], ['A', laterA]] as const) t.ok(headVerifies(head, keyA.publicKeyPem), `broker ${name}'s head verifies with the one key`);
  t.equal((await getJson(b.app, b.token, `/api/v1/audit/verify?seq=${headB.seq}&hash=${headB.hash}`)).extends, true, "B's kept head is extended by A's appends");

  // A broker given BROKER_AUDIT_SIGNING_KEY signs with that one instead (it overrides the stored key).
  const own = generateKeyPairSync('ed25519');
  const c = await openBroker(t, await makeTempDir(t), a.adminPassword, { ...env, BROKER_AUDIT_SIGNING_KEY: own.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
  const headC: Head = await getJson(c.app, c.token, '/api/v1/audit/head');
  t.ok(headVerifies(headC, own.publicKey.export({ type: 'spki', format: 'pem' }).toString()), 'the env key overrides');
  t.same(await getJson(a.app, a.adminToken, '/api/v1/audit/public-key'), keyA, 'the stored key is left as it was');
});

for (const store of STORES) {
  t.test(`${store.BROKER_STORE}: the usage report carries the month's signed head (JSON and CSV)`, async (t) => {
    const tb = await buildTestBroker(t, { env: { ...store } });
    const a = await tb.agency({ id: 'agency-a' });
    const month = new Date().toISOString().slice(0, 7);
    const newest = (await getJson(tb.app, tb.adminToken, '/api/v1/audit?limit=1')).items[0];
    const { publicKeyPem } = await getJson(tb.app, tb.adminToken, '/api/v1/audit/public-key');
    const report = await getJson(tb.app, tb.adminToken, `/api/v1/reports/usage?month=${month}`);
    t.same({ seq: report.auditHead.seq, hash: report.auditHead.hash, at: report.auditHead.at }, { seq: newest.seq, hash: newest.hash, at: newest.at }, "the month's last entry");
    t.ok(headVerifies(report.auditHead, publicKeyPem), 'it verifies');
    t.ok(Array.isArray(report.agencies), 'the existing fields stay');
    const adminReport = await getJson(tb.app, a.adminToken, `/api/v1/reports/usage?month=${month}`);
    t.ok(headVerifies(adminReport.auditHead, publicKeyPem), "an agency admin's report carries it too");
    if (store.BROKER_STORE === 'memory') {
      const filed = path.join(t.testdir(), `usage-${month}.json`);
      await fs.writeFile(filed, JSON.stringify(adminReport));
      const checked = await runVerify(tb.dataDir, '--head', filed);
      t.equal(checked.code, 0, `a filed report checks offline (${checked.stdout}${checked.stderr})`);
      t.match(checked.stdout, new RegExp(`verdict: ok \\(kept head seq ${adminReport.auditHead.seq}\\)`));
    }

    const csv = await tb.app.inject({ url: `/api/v1/reports/usage?month=${month}`, headers: { ...auth(tb.adminToken), accept: 'text/csv' } });
    const footer = csv.body.trimEnd().split('\r\n').at(-1)!;
    const cells = Object.fromEntries(footer.split(',').slice(1).map((cell) => [cell.slice(0, cell.indexOf('=')), cell.slice(cell.indexOf('=') + 1)]));
    t.equal(footer.split(',')[0], 'auditHead', 'CSV footer line');
    const csvHead = { seq: Number(cells.seq), hash: cells.hash!, at: cells.at!, keyId: cells.keyId!, signature: cells.signature! };
    t.same(csvHead, report.auditHead, 'the same head as the JSON');
    t.ok(headVerifies(csvHead, publicKeyPem), 'the CSV head verifies as written');

    const empty = await getJson(tb.app, tb.adminToken, '/api/v1/reports/usage?month=2001-01');
    t.equal(empty.auditHead, null, 'a month without entries has no head');
    const emptyCsv = await tb.app.inject({ url: '/api/v1/reports/usage?month=2001-01', headers: { ...auth(tb.adminToken), accept: 'text/csv' } });
    t.equal(emptyCsv.body.trimEnd().split('\r\n').at(-1), 'auditHead,none');
  });
}
