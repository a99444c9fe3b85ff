/** Failed logins counted once for the whole city: two brokers' throttles share the Redis counters. */
import t from 'tap';
import { LoginThrottle } from '../../../src/accounts/login-throttle.js';
import { RedisLoginAttemptCounter } from '../../../src/store/redis/login-attempts.js';
import { connectTestRedis, testPrefix } from './harness.js';

t.test('failures on two brokers add up, success resets, windows expire', async (t) => {
  const prefix = testPrefix(t);
  const client = await connectTestRedis();
  t.teardown(() => client.close());
  const throttle = () =>
    new LoginThrottle({
      maxFailuresPerUsername: 3,
      maxFailuresPerAddress: 100,
      windowSeconds: 1,
      failureDelayMs: 0,
      counters: {
        byUsername: new RedisLoginAttemptCounter(client, `${prefix}:login:user`),
        byAddress: new RedisLoginAttemptCounter(client, `${prefix}:login:addr`),
      },
    });
  const brokerA = throttle();
  const brokerB = throttle();
  await brokerA.recordFailure('admin', '10.0.0.1');
  await brokerB.recordFailure('admin', '10.0.0.2');
  t.same(await brokerA.check('admin', '10.0.0.3'), { allowed: true }, 'two failures: still allowed');
  await brokerA.recordFailure('admin', '10.0.0.4');
  const refused = await brokerB.check('admin', '10.0.0.5');
  t.equal(refused.allowed, false, 'the third failure, on another broker, closes the window for both');
  t.ok(!refused.allowed && refused.retryAfterSeconds >= 1);
  await brokerB.recordSuccess('admin');
  t.same(await brokerA.check('admin', '10.0.0.6'), { allowed: true }, 'a success resets the username everywhere');

  for (let i = 0; i < 3; i++) await brokerA.recordFailure('ops', '10.0.0.7');
  t.equal((await brokerB.check('ops', '10.0.0.7')).allowed, false);
  await new Promise((r) => setTimeout(r, 1200));
  t.same(await brokerB.check('ops', '10.0.0.7'), { allowed: true }, 'the window expired in Redis');
});
