/**
 * Point 17 (issue 8): a burst on three brokers sharing one healthy Redis must be decided by the pool, not by
 * the brokers' own queues. Exactly the limit is granted; every other request is refused for capacity (or shed
 * with Retry-After); no slot is held for a grant that was not made; the audit chain holds one grant entry per
 * grant and verifies.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { api, privateRedis, startBroker, type BrokerProcess } from '../process/helpers.js';
import { makeChannel } from '../fixtures.js';
import { until } from '../helper.js';

const SLOTS = 1000;
const REQUESTS = 1500;

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { id?: string; error?: { code?: string } };
}

/**
 * node:http with a socket per request in flight, so REQUESTS really are concurrent (the global fetch would
 * open them too, but through an unbounded connect storm into a 511-deep accept queue).
 */
function post(agent: Agent, port: number, path: string, token: string, json: unknown): Promise<Answer> {
  const body = JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path, agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const header = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(header) ? header[0] : header, body: text ? (JSON.parse(text) as Answer['body']) : {} });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('point 17: a burst on three brokers sharing one Redis grants exactly the limit and holds nothing it did not grant', async (t) => {
  const redis = await privateRedis(t);
  const adminPassword = randomBytes(12).toString('base64url');
  const env = {
    BROKER_STORE: 'redis',
    BROKER_REDIS_URL: redis.url,
    BROKER_MEDIA: 'none',
    BROKER_FORWARDING_SLOTS: String(SLOTS),
    BROKER_IDLE_CLOSE_SECONDS: '0',
    BROKER_ADMIN_PASSWORD: adminPassword,
  };
  const brokers: BrokerProcess[] = [];
  for (let i = 0; i < 3; i++) brokers.push(await startBroker(t, env));
  const [b1, b2] = brokers as [BrokerProcess, BrokerProcess];

  const admin = (await api(b1.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
  t.equal((await api(b1.url, 'POST', '/agencies', admin, { id: 'police', name: '公安', networks: ['video'], classes: [1], quotas: { forwarding: 100000, analytics: 10 } })).status, 201);
  t.equal((await api(b2.url, 'POST', '/agencies/police/users', admin, { username: 'police.op', password: 'a-long-password', role: 'operator' })).status, 201);
  const operator = (await api(b1.url, 'POST', '/auth/login', undefined, { username: 'police.op', password: 'a-long-password' })).body.token as string;
  const channels = Array.from({ length: REQUESTS }, (_, i) => makeChannel(i + 1, 1, 'video'));
  const imported = await api(b2.url, 'POST', '/channels/import', admin, channels.map((c) => JSON.stringify(c)).join('\n'), 'application/x-ndjson');
  t.same(imported.body, { created: REQUESTS, updated: 0, rejected: [] });
  const last = channels.at(-1)!.id;
  for (const b of brokers) await until(t, `broker ${b.port} sees the imported catalog`, async () => (await api(b.url, 'GET', `/channels/${last}`, operator)).status === 200, 30_000);

  const agents = brokers.map(() => new Agent({ keepAlive: true, maxSockets: REQUESTS }));
  t.teardown(() => agents.forEach((a) => a.destroy()));
  const answers = await Promise.all(
    channels.map((c, i) => post(agents[i % 3]!, brokers[i % 3]!.port, '/api/v1/streams', operator, { channelId: c.id, purpose: 'point 17 burst' })),
  );

  const tally: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.status} ${a.body.error?.code ?? ''}`.trim();
    tally[key] = (tally[key] ?? 0) + 1;
  }
  t.comment(`answers: ${JSON.stringify(tally)}`);
  const granted = answers.filter((a) => a.status === 201);
  t.equal(granted.length, SLOTS, 'exactly the limit granted across three processes');
  const others = answers.filter((a) => a.status !== 201);
  const refusedForCapacity = others.filter((a) => a.status === 503 && a.body.error?.code === 'FORWARDING_CAPACITY_EXHAUSTED' && a.retryAfter);
  const shed = others.filter((a) => a.status === 503 && a.body.error?.code !== 'FORWARDING_CAPACITY_EXHAUSTED' && a.retryAfter);
  t.equal(refusedForCapacity.length + shed.length, REQUESTS - SLOTS, 'every other answer is 503 FORWARDING_CAPACITY_EXHAUSTED, or shed with Retry-After');

  // No slot is held for an answer that was not a grant: /capacity counts the grants made, no more.
  const capacity = await api(b1.url, 'GET', '/capacity', admin);
  t.equal(capacity.body.forwarding.used, granted.length, '/capacity used == grants made');
  const sessions = new Set(granted.map((a) => a.body.id));
  t.equal(sessions.size, granted.length, 'each grant is its own session');

  // The evidence: one stream.grant entry per grant, and a chain that verifies.
  const grantEntries: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await api(b2.url, 'GET', `/audit?action=stream.grant&limit=500${cursor ? `&cursor=${cursor}` : ''}`, admin);
    t.equal(page.status, 200);
    grantEntries.push(...(page.body.items as Array<{ target: string }>).map((e) => e.target));
    cursor = page.body.nextCursor as string | null;
  } while (cursor);
  t.equal(grantEntries.length, granted.length, 'one stream.grant entry per grant');
  t.same(new Set(grantEntries), new Set([...sessions].map((id) => `session:${id}`)), 'and they name the granted sessions');
  const verify = await api(brokers[2]!.url, 'GET', '/audit/verify', admin);
  t.equal(verify.body.ok, true, 'the audit chain verifies');
  t.ok(verify.body.entries >= granted.length, 'and holds the grants');

  // Command sent, answer lost: Redis hangs with the grant's script in its socket, the broker answers 503,
  // then Redis runs the script late. The slot it took must come back without waiting for the lease to lapse.
  t.equal((await api(b1.url, 'DELETE', `/streams/${granted[0]!.body.id}`, operator)).status, 204);
  const used = async () => (await api(b1.url, 'GET', '/capacity', admin)).body.forwarding.used as number;
  await until(t, 'the released slot is free', async () => (await used()) === SLOTS - 1, 20_000);
  const refused = channels.find((_, i) => answers[i]!.status !== 201)!;
  redis.freeze();
  let late: Answer;
  try {
    late = await post(agents[1]!, b2.port, '/api/v1/streams', operator, { channelId: refused.id, purpose: 'point 17 lost answer' });
  } finally {
    redis.thaw();
  }
  t.equal(late.status, 503, 'a hung Redis is answered 503');
  t.equal(late.body.error?.code, 'UNAVAILABLE');
  const onRecord = async (action: string) => (await api(b1.url, 'GET', `/audit?action=${action}&channelId=${refused.id}`, admin)).body.items as unknown[];
  // The script did run once Redis woke (its session shows up ended), and its slot is free again.
  await until(t, 'the late grant is given back', async () => (await onRecord('stream.release')).length === 1 && (await used()) === SLOTS - 1, 20_000);
  t.same(await onRecord('stream.grant'), [], 'and it was never on record as a grant');
  t.equal((await api(b1.url, 'GET', '/audit/verify', admin)).body.ok, true);
});
