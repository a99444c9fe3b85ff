/** Login attempts counted once for the whole city: two brokers' throttles share the Redis counter. */
import t, { type Test } from 'tap';
import { LoginThrottle } from '../../../src/accounts/login-throttle.js';
import { RedisLoginAttemptCounter } from '../../../src/store/redis/login-attempts.js';
import { connectTestRedis, testPrefix } from './harness.js';

const setup = async (t: Test, limits: { pair: number; address: number }, windowSeconds = 900) => {
  const prefix = testPrefix(t);
  const client = await connectTestRedis();
  t.teardown(() => client.close());
  const throttle = () =>
    new LoginThrottle({
      maxFailuresPerPair: limits.pair,
      maxFailuresPerAddress: limits.address,
      windowSeconds,
      failureDelayMs: 0,
      counter: new RedisLoginAttemptCounter(client, `${prefix}:login`),
    });
  return { client, prefix, brokerA: throttle(), brokerB: throttle() };
};

t.test('attempts on two brokers add up, a success clears the pair, windows expire', async (t) => {
  const { brokerA, brokerB } = await setup(t, { pair: 3, address: 100 }, 1);
  const fail = async (th: LoginThrottle, username: string, address: string) => {
    const attempt = await th.arrive(username, address);
    if (attempt.allowed) await th.failed(attempt);
    return attempt;
  };
  await fail(brokerA, 'admin', '10.0.0.1');
  await fail(brokerB, 'admin', '10.0.0.1');
  t.equal((await fail(brokerA, 'admin', '10.0.0.1')).allowed, true, 'the third attempt: still allowed');
  const refused = await brokerB.arrive('admin', '10.0.0.1');
  t.equal(refused.allowed, false, 'the fourth, on another broker, is refused');
  t.ok(!refused.allowed && refused.retryAfterSeconds >= 1);
  t.equal((await brokerB.arrive('admin', '10.0.0.2')).allowed, true, 'the same username from another address is not');

  const ok = await brokerA.arrive('ops', '10.0.0.3');
  await fail(brokerB, 'ops', '10.0.0.3');
  if (ok.allowed) await brokerA.succeeded(ok);
  for (let i = 0; i < 3; i++) t.equal((await fail(brokerB, 'ops', '10.0.0.3')).allowed, true, `after a success, attempt ${i + 1} on the other broker`);
  t.equal((await brokerA.arrive('ops', '10.0.0.3')).allowed, false);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal((await brokerB.arrive('ops', '10.0.0.3')).allowed, true, 'the window expired in Redis');
});

t.test('concurrent attempts on two brokers: exactly the limit is let through', async (t) => {
  const { brokerA, brokerB } = await setup(t, { pair: 5, address: 1000 });
  const arrivals = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? brokerA : brokerB).arrive('admin', '10.0.0.9')));
  t.equal(arrivals.filter((a) => a.allowed).length, 5);
});

t.test('the address keeps its budget across successes; refused attempts leave no pair or username keys', async (t) => {
  const { brokerA, brokerB, client, prefix } = await setup(t, { pair: 5, address: 3 });
  for (const th of [brokerA, brokerB, brokerA]) {
    const attempt = await th.arrive(`victim-${Math.random()}`, '10.0.0.5');
    t.equal(attempt.allowed, true);
  }
  const own = await brokerB.arrive('own-account', '10.0.0.5');
  t.equal(own.allowed, false, 'the address is past its limit');
  for (let i = 0; i < 50; i++) await brokerA.arrive(`made-up-${i}`, '10.0.0.5');
  t.equal((await client.keys(`${prefix}:login:pair:*`)).length, 3, 'one pair key per evaluated attempt only');
  t.equal((await client.keys(`${prefix}:login:user:*`)).length, 3);
  for (const key of await client.keys(`${prefix}:login:*`)) t.ok((await client.pTTL(key)) > 0, `${key} expires`);
});
