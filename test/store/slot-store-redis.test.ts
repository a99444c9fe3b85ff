import { randomUUID } from 'node:crypto';
import t from 'tap';
import { ClientOfflineError, createClient } from 'redis';
import { RedisSlotStore } from '../../src/store/redis/slot-store.js';
import { channel, runSlotStoreConformance, sessionRequest } from './slot-store-conformance.js';
import { deleteKeys, REDIS_URL } from './fixtures/pool-redis.js';

const client = createClient({ url: REDIS_URL });
await client.connect();
t.teardown(() => client.close());

runSlotStoreConformance(t, async (options) => {
  // A prefix per case: the shared Redis also serves other test files running at the same time.
  const prefix = `test-slots-${randomUUID()}`;
  const store = new RedisSlotStore({ client, prefix, ...options });
  return {
    store,
    // Redis TIME is the store's clock: letting time pass means waiting.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: () => deleteKeys(client, prefix),
  };
});

t.test('a flushed script cache is reloaded on NOSCRIPT', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  let loads = 0;
  const counting = {
    scriptLoad: (script: string) => {
      loads++;
      return client.scriptLoad(script);
    },
    // Pretend the server lost the script once, as after a restart.
    evalSha: async (sha: string, options: { keys: string[]; arguments: string[] }) => {
      if (loads === 1) throw new Error('NOSCRIPT No matching script. Please use EVAL.');
      return client.evalSha(sha, options);
    },
  };
  const store = new RedisSlotStore({ client: counting, prefix, forwardingLimit: 5 });
  t.type(await store.now(), 'number');
  t.equal(loads, 2);
});

t.test('a store given a url owns and closes its connection', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const store = new RedisSlotStore({ url: REDIS_URL, prefix });
  t.same((await store.usage()).forwarding, { limit: 3000, used: 0, queued: 0 });
  await store.close();
  await t.rejects(store.usage());
});

/**
 * A client that loses the reply of chosen calls (the script ran, the broker never heard), or that gives up
 * on a call before sending it and sends it later (a Redis that ran the command late), so the store's
 * "command sent, answer lost" handling can be driven against the real scripts.
 */
function faultyClient(fault: (op: string) => 'lose-reply' | 'defer' | 'fail' | undefined) {
  const deferred: Array<() => Promise<unknown>> = [];
  return {
    deferred,
    client: {
      scriptLoad: (script: string) => client.scriptLoad(script),
      evalSha: async (sha: string, options: { keys: string[]; arguments: string[] }) => {
        const kind = fault(options.arguments[0]!);
        if (kind === 'fail') throw new Error('no reply from Redis within 1500 ms');
        if (kind === 'defer') {
          deferred.push(() => client.evalSha(sha, options));
          throw new Error('no reply from Redis within 1500 ms');
        }
        const reply = await client.evalSha(sha, options);
        if (kind === 'lose-reply') throw new Error('Socket closed unexpectedly');
        return reply;
      },
    },
  };
}

t.test('point 17: a grant whose reply was lost holds nothing once the next sweep has run', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const faults: Array<[string, 'lose-reply' | 'fail']> = [['open', 'lose-reply'], ['abandon', 'fail']];
  const faulty = faultyClient((op) => (faults[0]?.[0] === op ? faults.shift()![1] : undefined));
  const store = new RedisSlotStore({ client: faulty.client, prefix, forwardingLimit: 5, idleCloseMs: 0 });
  const req = sessionRequest();
  await t.rejects(store.openSession(req), 'the caller hears an error');
  t.equal((await store.usage()).forwarding.used, 1, 'the script did run: a slot is held for a grant nobody was told of');
  t.same((await store.sweep()).endedSessions, [], 'Redis did not hear the abandon this time');
  t.equal((await store.usage()).forwarding.used, 1);
  const events = await store.sweep();
  t.same(events.endedSessions.map((e) => [e.session.id, e.reason]), [[req.sessionId, 'released']], 'the next sweep gives it back, as events to audit');
  t.same((await store.sweep()).endedSessions, [], 'once');
  t.equal((await store.usage()).forwarding.used, 0, 'nothing held');
  t.equal(await store.getSession(req.sessionId), null);
});

t.test('point 17: a grant that reaches Redis after it was given up on takes nothing', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  let defer = true;
  const faulty = faultyClient((op) => {
    if (op !== 'open' || !defer) return undefined;
    defer = false;
    return 'defer';
  });
  const store = new RedisSlotStore({ client: faulty.client, prefix, forwardingLimit: 5, idleCloseMs: 0 });
  const req = sessionRequest();
  await t.rejects(store.openSession(req));
  await store.sweep();
  const late = JSON.parse(String(await faulty.deferred[0]!())) as { kind: string };
  t.equal(late.kind, 'denied', 'the late open is refused');
  t.equal((await store.usage()).forwarding.used, 0, 'and took no slot');
  t.equal(await store.getSession(req.sessionId), null);
  t.match(await store.openSession(sessionRequest({ channelId: req.channelId })), { kind: 'granted' }, 'the channel itself is free to grant');
});

t.test('point 17: a queued request that loses its ticket leaves no grant behind', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  let lose = false;
  const faulty = faultyClient((op) => (op === 'ticket-outcome' && lose ? 'lose-reply' : undefined));
  const store = new RedisSlotStore({ client: faulty.client, prefix, forwardingLimit: 1, idleCloseMs: 0 });
  const holder = await store.openSession(sessionRequest());
  const req = sessionRequest({ waitMs: 60_000 });
  const ticket = await store.openSession(req);
  t.equal(ticket.kind, 'queued');
  if (holder.kind !== 'granted' || ticket.kind !== 'queued') return;
  lose = true;
  await t.rejects(store.ticketOutcome(ticket.ticketId), 'the waiter cannot learn its fate and answers an error');
  lose = false;
  await store.endSession(holder.session.id, 'released');
  await store.sweep();
  t.equal(await store.getSession(req.sessionId), null, 'the ticket was not granted to nobody');
  t.same((await store.usage()).forwarding, { limit: 1, used: 0, queued: 0 });
});

t.test('point 17: a reservation whose reply was lost holds nothing once the next sweep has run', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  let lose = true;
  const faulty = faultyClient((op) => {
    if (op !== 'open' || !lose) return undefined;
    lose = false;
    return 'lose-reply';
  });
  const store = new RedisSlotStore({ client: faulty.client, prefix, analyticsLimit: 2 });
  const reservationId = randomUUID();
  await t.rejects(store.openReservation({ reservationId, channelId: channel(), principalId: 'svc', agencyId: 'weather', task: 'count', agencyQuota: 10, ttlMs: 60_000 }));
  t.equal((await store.usage()).analytics.used, 1);
  const events = await store.sweep();
  t.same(events.endedReservations.map((e) => [e.reservation.id, e.reason]), [[reservationId, 'released']]);
  t.equal((await store.usage()).analytics.used, 0);
});

t.test('point 17: an open refused before it was sent (client offline) is known not to have run: nothing to abandon', async (t) => {
  const prefix = `test-slots-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const ops: string[] = [];
  const store = new RedisSlotStore({
    prefix,
    client: {
      scriptLoad: (script: string) => client.scriptLoad(script),
      evalSha: (sha: string, options: { keys: string[]; arguments: string[] }) => {
        ops.push(options.arguments[0]!);
        if (options.arguments[0] === 'open') return Promise.reject(Object.assign(new Error('the store is unavailable'), { cause: new ClientOfflineError() }));
        return client.evalSha(sha, options);
      },
    },
  });
  await t.rejects(store.openSession(sessionRequest()));
  await store.sweep();
  t.notOk(ops.includes('abandon'), 'the sweep had nothing to tell Redis');
});
