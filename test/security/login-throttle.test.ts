/**
 * Issue 8, points 4 and 7: the login throttle under a concurrent burst, and a stranger trying to
 * lock out the platform administrator. On both stores: the Redis counter is the one a city shares.
 */
import t from 'tap';
import { auth, buildTestBroker, STORES, type TestBroker } from '../helper.js';

const attempt = (tb: TestBroker, username: string, password: string, remoteAddress: string) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress });

/** The login audit entries for `username`'s account that evaluated a wrong password. */
async function evaluatedWrongPasswords(tb: TestBroker, userId: string): Promise<number> {
  const res = await tb.app.inject({ url: `/api/v1/audit?action=auth.login&limit=500`, headers: auth(tb.adminToken) });
  const items = res.json().items as Array<{ actor: { id: string }; outcome: string; reason?: string }>;
  return items.filter((e) => e.actor.id === userId && e.reason === 'invalid-credentials').length;
}

const adminId = async (tb: TestBroker) => (await tb.app.inject({ url: '/api/v1/auth/me', headers: auth(tb.adminToken) })).json().id as string;

for (const env of STORES) {
  t.test(`point 4: 40 concurrent wrong guesses evaluate at most the limit, the rest answer 429 (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const limit = tb.config.loginMaxFailuresPerUser;
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => attempt(tb, 'admin', `wrong-guess-${i}`, '203.0.113.7')));
    const statuses = burst.map((r) => r.statusCode);
    const evaluated = statuses.filter((s) => s === 401).length;
    t.ok(evaluated <= limit, `${evaluated} of 40 guesses were evaluated (limit ${limit})`);
    t.equal(statuses.filter((s) => s === 429).length, 40 - evaluated, 'every other guess answered 429');
    t.ok(evaluated >= 1, 'the limit still lets a guess through');
    t.ok(burst.filter((r) => r.statusCode === 429).every((r) => r.json().error.code === 'RATE_LIMITED' && Number(r.headers['retry-after']) > 0));
    t.ok((await evaluatedWrongPasswords(tb, await adminId(tb))) <= limit, 'the audit log shows at most the limit evaluated');

    const right = await attempt(tb, 'admin', tb.adminPassword, '203.0.113.7');
    t.equal(right.statusCode, 429, 'the right password from the blocked pair answers 429 too');
  });

  t.test(`point 4: a right password in the middle of a burst is refused like the others (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const limit = tb.config.loginMaxFailuresPerUser;
    const passwords = Array.from({ length: 40 }, (_, i) => (i === 20 ? tb.adminPassword : `wrong-guess-${i}`));
    const burst = await Promise.all(passwords.map((p) => attempt(tb, 'admin', p, '203.0.113.8')));
    t.ok(burst.filter((r) => r.statusCode !== 429).length <= limit, 'at most the limit evaluated');
    t.equal(burst[20]!.statusCode, 429, 'the 21st attempt is not evaluated, whatever its password');
  });

  t.test(`point 7: a stranger cannot lock the administrator out (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const limit = tb.config.loginMaxFailuresPerUser;
    for (let i = 0; i < limit; i++) t.equal((await attempt(tb, 'admin', 'wrong-password', '198.51.100.1')).statusCode, 401);
    const blocked = await attempt(tb, 'admin', tb.adminPassword, '198.51.100.1');
    t.equal(blocked.statusCode, 429, 'the pair (admin, attacker address) is blocked');
    t.ok(Number(blocked.headers['retry-after']) > 0, 'with Retry-After');
    t.equal((await attempt(tb, 'admin', tb.adminPassword, '192.0.2.50')).statusCode, 200, 'the right password from another address logs in');

    // Many addresses, a few guesses each: they only slow the username down, never lock it.
    for (let i = 0; i < 30; i++) t.equal((await attempt(tb, 'admin', 'wrong-password', `198.51.100.${10 + i}`)).statusCode, 401);
    t.equal((await attempt(tb, 'admin', tb.adminPassword, '192.0.2.51')).statusCode, 200, 'after 30 failures from 30 addresses');
  });

  t.test(`point 7: an address spraying usernames is blocked, other addresses are not (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const perAddress = tb.config.loginMaxFailuresPerAddress;
    for (let i = 0; i < perAddress; i++) t.equal((await attempt(tb, `victim${i}`, 'wrong-password', '198.51.100.200')).statusCode, 401);
    const refused = await attempt(tb, 'admin', tb.adminPassword, '198.51.100.200');
    t.equal(refused.statusCode, 429, 'past the per-address limit, any username from it');
    t.equal(refused.json().error.code, 'RATE_LIMITED');
    t.equal((await attempt(tb, 'admin', tb.adminPassword, '192.0.2.60')).statusCode, 200, 'another address still logs in');
  });
}
