import t from 'tap';
import { addressKey, LoginThrottle, MemoryLoginAttemptCounter } from '../../src/accounts/login-throttle.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const throttle = (clock = manualClock(), extra = {}) =>
  new LoginThrottle({ maxFailuresPerUsername: 5, maxFailuresPerAddress: 20, windowSeconds: 900, failureDelayMs: 0, now: clock.now, ...extra });

t.test('refused after K failures for one username, with Retry-After', async (t) => {
  const clock = manualClock();
  const th = throttle(clock);
  for (let i = 0; i < 5; i++) {
    t.same(await th.check('alice', `10.0.0.${i}`), { allowed: true }, `attempt ${i + 1} allowed`);
    await th.recordFailure('alice', `10.0.0.${i}`);
  }
  t.same(await th.check('alice', '10.9.9.9'), { allowed: false, retryAfterSeconds: 900 }, 'from any address');
  t.same(await th.check('ALICE', '10.9.9.9'), { allowed: false, retryAfterSeconds: 900 }, 'usernames compare lowercased');
  t.same(await th.check('bob', '10.9.9.9'), { allowed: true }, 'other usernames unaffected');
  clock.advance(600_000);
  t.same(await th.check('alice', '10.9.9.9'), { allowed: false, retryAfterSeconds: 300 });
  clock.advance(300_000);
  t.same(await th.check('alice', '10.9.9.9'), { allowed: true }, 'the window closed');
});

t.test('refused after K failures from one address across usernames', async (t) => {
  const th = throttle();
  for (let i = 0; i < 20; i++) await th.recordFailure(`user${i}`, '192.0.2.7');
  t.same(await th.check('fresh-user', '192.0.2.7'), { allowed: false, retryAfterSeconds: 900 });
  t.same(await th.check('fresh-user', '192.0.2.8'), { allowed: true });
});

t.test('a success resets the username count but not the address count', async (t) => {
  const th = throttle();
  for (let i = 0; i < 4; i++) await th.recordFailure('alice', '192.0.2.1');
  await th.recordSuccess('alice');
  for (let i = 0; i < 4; i++) await th.recordFailure('alice', '192.0.2.2');
  t.same(await th.check('alice', '192.0.2.3'), { allowed: true }, 'four failures after the reset, under the limit');
  const spray = throttle();
  for (let i = 0; i < 20; i++) await spray.recordFailure(`victim${i}`, '192.0.2.9');
  await spray.recordSuccess('attacker-own-account');
  t.equal((await spray.check('attacker-own-account', '192.0.2.9')).allowed, false);
});

t.test('IPv6 clients are counted per /64, IPv4-mapped as IPv4', async (t) => {
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:DB8::1'), '2001:db8:0:0::/64');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  t.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
  t.equal(addressKey('192.0.2.1'), '192.0.2.1');
  const th = throttle();
  for (let i = 0; i < 20; i++) await th.recordFailure(`u${i}`, `2001:db8:1:2::${i.toString(16)}`);
  t.equal((await th.check('other', '2001:db8:1:2:ffff::9')).allowed, false, 'rotating within a /64 does not help');
});

t.test('memory stays bounded: the oldest windows are dropped', async (t) => {
  const clock = manualClock();
  const counter = new MemoryLoginAttemptCounter(100, clock.now);
  for (let i = 0; i < 10_000; i++) await counter.increment(`key${i}`, 60_000);
  t.equal(counter.size, 100);
  t.equal(await counter.peek('key0'), null, 'the oldest is gone');
  t.match(await counter.peek('key9999'), { count: 1 });
  const th = throttle(clock, { maxTrackedKeys: 50 });
  for (let i = 0; i < 4; i++) await th.recordFailure('alice', '192.0.2.1');
  for (let i = 0; i < 1000; i++) await th.recordFailure(`made-up-${i}`, `198.51.100.${i % 250}`);
  t.equal((await th.check('alice', '203.0.113.1')).allowed, true);
});

t.test('an address flood does not evict a username count', async (t) => {
  const th = throttle(manualClock(), { maxTrackedKeys: 50, maxFailuresPerAddress: 1_000_000 });
  for (let i = 0; i < 5; i++) await th.recordFailure('alice', '192.0.2.1');
  for (let i = 0; i < 200; i++) await th.check('alice', `198.51.100.${i}`);
  t.equal((await th.check('alice', '203.0.113.1')).allowed, false);
});

t.test('expired windows start again from one', async (t) => {
  const clock = manualClock();
  const counter = new MemoryLoginAttemptCounter(10, clock.now);
  await counter.increment('k', 1000);
  await counter.increment('k', 1000);
  clock.advance(1000);
  t.equal(await counter.peek('k'), null);
  t.match(await counter.increment('k', 1000), { count: 1 });
});

t.test('failures are slowed by the configured delay', async (t) => {
  const th = throttle(manualClock(), { failureDelayMs: 20 });
  let settled = false;
  const failure = th.recordFailure('alice', '192.0.2.1').then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(settled, false, 'not settled before the delay');
  await failure;
  t.equal(settled, true);
});
