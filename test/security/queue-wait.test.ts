/**
 * Point 15 (c) of issue 8: a queued request (waitSeconds > 0) added an abort listener to its
 * request's signal on every poll: MaxListenersExceededWarning after 4 s, and a listener leak per
 * waiting client. The wait registers one listener and removes it when done; a grant still wakes it.
 */
import t from 'tap';
import { auth, buildTestBroker, until } from '../helper.js';
import { makeChannel } from '../fixtures.js';

const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];

t.test('point 15c: a queued request polls for seconds without piling listeners on its signal', async (t) => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));

  const tb = await buildTestBroker(t, { env: { BROKER_FORWARDING_SLOTS: '1' }, start: true });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const open = (channelId: string, waitSeconds = 0) =>
    tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId, purpose: 'patrol check', waitSeconds } });

  t.equal((await open(channels[0]!.id)).statusCode, 201);
  // 3 s at the 200 ms poll interval: 15 polls, past the default limit of 10 listeners per signal.
  const queued = await open(channels[1]!.id, 3);
  t.equal(queued.statusCode, 503, 'the wait ran out');
  t.equal(queued.json().error.code, 'FORWARDING_CAPACITY_EXHAUSTED');
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  t.same(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), [], 'no listener leak warning');
});

t.test('point 15c: a queued request is still woken by the slot it waits for', async (t) => {
  const tb = await buildTestBroker(t, { env: { BROKER_FORWARDING_SLOTS: '1', BROKER_IDLE_CLOSE_SECONDS: '0' }, start: true });
  await tb.broker.catalog.seed(channels);
  const a = await tb.agency({ id: 'agency-a' });
  const first = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId: channels[0]!.id, purpose: 'patrol check' } });
  const waiting = tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.adminToken), payload: { channelId: channels[1]!.id, purpose: 'patrol check', waitSeconds: 20 } });
  await until(t, 'the second request is queued', async () => (await tb.broker.slots.usage()).forwarding.queued > 0);
  t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${first.json().id}`, headers: auth(a.operatorToken) })).statusCode, 204);
  const granted = await waiting;
  t.equal(granted.statusCode, 201, 'granted once the slot freed');
});
