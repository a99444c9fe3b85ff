/**
 * RedisEventBus on the real Redis: two buses stand for two broker processes sharing a prefix. Each
 * listener gets every event exactly once — its own process's at once, the others' through pub/sub —
 * and a bus on another prefix hears nothing.
 */
import t, { type Test } from 'tap';
import type { BrokerEvent } from '../../../src/core/events.js';
import { RedisEventBus } from '../../../src/store/redis/event-bus.js';
import { connectTestRedis, testPrefix } from './harness.js';

const ended = (id: string): BrokerEvent => ({
  type: 'stream.ended',
  at: new Date().toISOString(),
  id,
  channelId: '44010600001310000001',
  reason: 'released',
  principalId: 'u-1',
  agencyId: 'agency-a',
});

async function openBus(t: Test, prefix: string) {
  const client = await connectTestRedis();
  const errors: Error[] = [];
  const bus = await RedisEventBus.open(client, { prefix, onError: (e) => errors.push(e) });
  t.teardown(async () => {
    await bus.close();
    await client.close();
  });
  const received: BrokerEvent[] = [];
  const waiters: Array<{ id: string; resolve: () => void }> = [];
  bus.subscribe((event) => {
    received.push(event);
    for (const w of waiters.filter((w) => 'id' in event && event.id === w.id)) w.resolve();
  });
  const ids = () => received.map((e) => ('id' in e ? e.id : e.type));
  /** Resolves once an event with this id arrived. */
  const heard = (id: string) =>
    ids().includes(id)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`never heard ${id}`)), 5000);
          waiters.push({ id, resolve: () => (clearTimeout(timer), resolve()) });
        });
  return { bus, ids, heard, errors };
}

t.test('events fan out across processes, each listener gets each event once', async (t) => {
  const prefix = testPrefix(t);
  const one = await openBus(t, prefix);
  const two = await openBus(t, prefix);
  const elsewhere = await openBus(t, testPrefix(t));

  one.bus.publish(ended('s-1'));
  t.same(one.ids(), ['s-1'], 'the publishing process hears its own event at once (synchronously)');
  await two.heard('s-1');

  // two publishes only after it heard s-1, so Redis relayed s-1 to one's subscriber before s-2: once one
  // has s-2, a copy of s-1 coming back to it would already be there.
  two.bus.publish(ended('s-2'));
  t.same(two.ids(), ['s-1', 's-2']);
  await one.heard('s-2');
  t.same(one.ids(), ['s-1', 's-2'], 'its own event did not come back a second time');
  t.same(two.ids(), ['s-1', 's-2']);

  elsewhere.bus.publish(ended('x-1'));
  one.bus.publish(ended('s-3'));
  await Promise.all([two.heard('s-3'), elsewhere.heard('x-1')]);
  t.notOk(one.ids().includes('x-1') || two.ids().includes('x-1'), 'another prefix is another city');
  t.same(elsewhere.ids(), ['x-1']);
  t.same([...one.errors, ...two.errors, ...elsewhere.errors], []);
});

t.test('a listener that throws does not stop the others; unsubscribe stops delivery', async (t) => {
  const prefix = testPrefix(t);
  const one = await openBus(t, prefix);
  const two = await openBus(t, prefix);
  two.bus.subscribe(() => {
    throw new Error('a broken socket');
  });
  const late: string[] = [];
  const stop = two.bus.subscribe((e) => late.push('id' in e ? e.id : e.type));
  one.bus.publish(ended('s-1'));
  await two.heard('s-1');
  stop();
  one.bus.publish(ended('s-2'));
  await two.heard('s-2');
  t.same(late, ['s-1'], 'unsubscribed after the first');
});
