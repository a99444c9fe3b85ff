import t from 'tap';
import { addressKey, attemptKeys, BoundedWindows, LoginThrottle, MemoryLoginAttemptCounter, type LoginAttempt } from '../../src/accounts/login-throttle.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const throttle = (clock = manualClock(), extra = {}) =>
  new LoginThrottle({ maxFailuresPerPair: 5, maxFailuresPerAddress: 20, windowSeconds: 900, failureDelayMs: 0, now: clock.now, ...extra });

/** One wrong password: arrives, and when let through, fails. Returns what the throttle said on arrival. */
async function fail(th: LoginThrottle, username: string, address: string): Promise<LoginAttempt> {
  const attempt = await th.arrive(username, address);
  if (attempt.allowed) await th.failed(attempt);
  return attempt;
}
async function succeed(th: LoginThrottle, username: string, address: string): Promise<LoginAttempt> {
  const attempt = await th.arrive(username, address);
  if (attempt.allowed) await th.succeeded(attempt);
  return attempt;
}

t.test('a (username, address) pair is refused past K attempts, with Retry-After; other pairs are not', async (t) => {
  const clock = manualClock();
  const th = throttle(clock);
  for (let i = 0; i < 5; i++) t.equal((await fail(th, 'alice', '10.0.0.1')).allowed, true, `attempt ${i + 1} allowed`);
  t.same(await th.arrive('alice', '10.0.0.1'), { allowed: false, retryAfterSeconds: 900 });
  t.same(await th.arrive('ALICE', '10.0.0.1'), { allowed: false, retryAfterSeconds: 900 }, 'usernames compare lowercased');
  t.equal((await th.arrive('alice', '10.9.9.9')).allowed, true, 'the same username from another address is let through');
  t.equal((await th.arrive('bob', '10.0.0.1')).allowed, true, 'another username from the same address too');
  clock.advance(600_000);
  t.same(await th.arrive('alice', '10.0.0.1'), { allowed: false, retryAfterSeconds: 300 });
  clock.advance(300_000);
  t.equal((await th.arrive('alice', '10.0.0.1')).allowed, true, 'the window closed');
});

t.test('an attempt counts on arrival: concurrent ones past the limit are refused before any is settled', async (t) => {
  const th = throttle();
  const arrivals = await Promise.all(Array.from({ length: 40 }, () => th.arrive('alice', '10.0.0.1')));
  t.equal(arrivals.filter((a) => a.allowed).length, 5);
  t.ok(arrivals.slice(5).every((a) => !a.allowed), 'the first five arrivals are the ones let through');
});

t.test('an address is refused past K attempts across usernames', async (t) => {
  const th = throttle();
  for (let i = 0; i < 20; i++) await fail(th, `user${i}`, '192.0.2.7');
  t.same(await th.arrive('fresh-user', '192.0.2.7'), { allowed: false, retryAfterSeconds: 900 });
  t.equal((await th.arrive('fresh-user', '192.0.2.8')).allowed, true);
});

t.test('failures on one username from many addresses never refuse it', async (t) => {
  const th = throttle();
  for (let i = 0; i < 100; i++) t.equal((await fail(th, 'admin', `198.51.100.${i}`)).allowed, true);
  t.equal((await succeed(th, 'admin', '192.0.2.1')).allowed, true);
});

t.test('the failure delay is the base up to the pair limit, then doubles up to the cap', async (t) => {
  const th = throttle(manualClock(), { failureDelayMs: 300, maxFailureDelayMs: 5000 });
  t.same([1, 5, 6, 7, 8, 9, 10, 1000].map((n) => th.failureDelay(n)), [300, 300, 600, 1200, 2400, 4800, 5000, 5000]);
  const noDelay = throttle(manualClock(), { failureDelayMs: 0, maxFailureDelayMs: 5000 });
  t.equal(noDelay.failureDelay(1000), 0, 'no base delay, no growth');
  const attempts = [];
  for (let i = 0; i < 8; i++) attempts.push(await noDelay.arrive('admin', `198.51.100.${i}`));
  t.same(attempts.map((a) => a.allowed && a.usernameAttempts), [1, 2, 3, 4, 5, 6, 7, 8], 'the username count grows from any address');
});

t.test('a success clears its pair and username, and takes only its own attempt back from the address', async (t) => {
  const th = throttle();
  for (let i = 0; i < 4; i++) await fail(th, 'alice', '192.0.2.1');
  await succeed(th, 'alice', '192.0.2.1');
  const elsewhere = await fail(th, 'alice', '192.0.2.2');
  t.equal(elsewhere.allowed && elsewhere.usernameAttempts, 1, 'the username count was cleared: it counts again from 1');
  for (let i = 0; i < 5; i++) t.equal((await fail(th, 'alice', '192.0.2.1')).allowed, true, `the pair was cleared: attempt ${i + 1}`);

  const spray = throttle();
  for (let i = 0; i < 19; i++) await fail(spray, `victim${i}`, '192.0.2.9');
  for (let i = 0; i < 5; i++) await succeed(spray, 'attacker-own-account', '192.0.2.9');
  t.equal((await fail(spray, 'victim-x', '192.0.2.9')).allowed, true, 'the 20th failure: successes in between took only themselves back');
  t.equal((await spray.arrive('attacker-own-account', '192.0.2.9')).allowed, false, 'then the address is refused, whatever the account');
});

t.test('IPv6 clients are counted per /64, IPv4-mapped as IPv4', async (t) => {
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  t.equal(addressKey('2001:DB8::1'), '2001:db8:0:0::/64');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  t.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
  t.equal(addressKey('192.0.2.1'), '192.0.2.1');
  const th = throttle();
  for (let i = 0; i < 20; i++) await fail(th, `u${i}`, `2001:db8:1:2::${i.toString(16)}`);
  t.equal((await th.arrive('other', '2001:db8:1:2:ffff::9')).allowed, false, 'rotating within a /64 does not help');
  for (let i = 0; i < 5; i++) await fail(th, 'alice', `2001:db8:9:9::${i}`);
  t.equal((await th.arrive('alice', '2001:db8:9:9::ff')).allowed, false, 'nor for a pair');
});

t.test('pair keys cannot collide across usernames and addresses', async (t) => {
  t.not(attemptKeys('a","b', 'c').pair, attemptKeys('a', 'b","c').pair);
  t.same(attemptKeys('Alice', '::ffff:192.0.2.1'), { username: 'alice', address: '192.0.2.1', pair: '["alice","192.0.2.1"]' });
});

t.test('memory stays bounded: the oldest windows are dropped, per family', async (t) => {
  const clock = manualClock();
  const windows = new BoundedWindows(100, clock.now);
  for (let i = 0; i < 10_000; i++) windows.increment(`key${i}`, 60_000);
  t.equal(windows.size, 100);
  t.equal(windows.peek('key0'), null, 'the oldest is gone');
  t.match(windows.peek('key9999'), { count: 1 });

  const counter = new MemoryLoginAttemptCounter(50, clock.now);
  const th = throttle(clock, { counter, maxFailuresPerAddress: 1_000_000 });
  for (let i = 0; i < 5; i++) await fail(th, 'alice', '192.0.2.1');
  for (let i = 0; i < 1000; i++) await fail(th, `made-up-${i}`, `198.51.100.${i % 250}`);
  t.ok(counter.byPair.size <= 50 && counter.byAddress.size <= 50 && counter.byUsername.size <= 50, 'every family within its bound');
});

t.test('refused attempts make no pair or username entries', async (t) => {
  const counter = new MemoryLoginAttemptCounter(1000);
  const th = throttle(manualClock(), { counter, maxFailuresPerAddress: 3 });
  for (let i = 0; i < 100; i++) await fail(th, `made-up-${i}`, '192.0.2.1');
  t.equal(counter.byPair.size, 3);
  t.equal(counter.byUsername.size, 3);
});

t.test('expired windows start again from one', async (t) => {
  const clock = manualClock();
  const windows = new BoundedWindows(10, clock.now);
  windows.increment('k', 1000);
  windows.increment('k', 1000);
  clock.advance(1000);
  t.equal(windows.peek('k'), null);
  t.match(windows.increment('k', 1000), { count: 1 });
});

t.test('failures are slowed by the configured delay', async (t) => {
  const th = throttle(manualClock(), { failureDelayMs: 20 });
  const attempt = await th.arrive('alice', '192.0.2.1');
  if (!attempt.allowed) throw new Error('refused');
  let settled = false;
  const failure = th.failed(attempt).then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(settled, false, 'not settled before the delay');
  await failure;
  t.equal(settled, true);
});
