/**
 * The process: acknowledged writes survive kill -9 and restart; SIGTERM drains (no new requests,
 * in-flight ones finish) and exits cleanly.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { api, startBroker } from './helpers.js';
import { makeTempDir, until } from '../helper.js';
import { makeChannel } from '../fixtures.js';

t.test('acknowledged writes survive SIGKILL and restart (embedded store)', async (t) => {
  const dataDir = await makeTempDir(t);
  const adminPassword = randomBytes(12).toString('base64url');
  const env = { BROKER_DATA_DIR: dataDir, BROKER_ADMIN_PASSWORD: adminPassword };
  const first = await startBroker(t, env);
  const admin = (await api(first.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token;
  t.equal((await api(first.url, 'POST', '/agencies', admin, { id: 'weather', name: '气象局', networks: ['gov'], classes: [2, 3], quotas: { forwarding: 5, analytics: 5 } })).status, 201);
  // Many acknowledged writes at once (group commit), then an unclean kill straight after.
  const users = await Promise.all(
    Array.from({ length: 20 }, (_, i) => api(first.url, 'POST', '/agencies/weather/users', admin, { username: `wx.op${i}`, password: 'a-long-password', role: 'operator' })),
  );
  t.ok(users.every((u) => u.status === 201), 'all acknowledged');
  const channel = makeChannel(1, 2, 'gov');
  t.equal((await api(first.url, 'POST', '/channels/import', admin, JSON.stringify(channel), 'application/x-ndjson')).status, 200);
  await first.kill('SIGKILL');

  const second = await startBroker(t, env);
  const login = await api(second.url, 'POST', '/auth/login', undefined, { username: 'wx.op19', password: 'a-long-password' });
  t.equal(login.status, 200, 'a user created before the kill logs in');
  const admin2 = (await api(second.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token;
  t.equal((await api(second.url, 'GET', '/agencies/weather/users', admin2)).body.items.length, 20);
  t.equal((await api(second.url, 'GET', `/channels/${channel.id}`, login.body.token)).status, 200, 'policy and catalog survived');
  const verify = await api(second.url, 'GET', '/audit/verify', admin2);
  t.equal(verify.body.ok, true);
  t.ok(verify.body.entries >= 23, 'audit entries survived');
  await second.kill('SIGTERM');
});

t.test('SIGTERM drains: in-flight requests finish, the process exits 0', async (t) => {
  const adminPassword = randomBytes(12).toString('base64url');
  const broker = await startBroker(t, { BROKER_ADMIN_PASSWORD: adminPassword, BROKER_FORWARDING_SLOTS: '1', BROKER_LOG_LEVEL: 'info' });
  const admin = (await api(broker.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token;
  const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];
  await api(broker.url, 'POST', '/channels/import', admin, channels.map((c) => JSON.stringify(c)).join('\n'), 'application/x-ndjson');
  t.equal((await api(broker.url, 'POST', '/streams', admin, { channelId: channels[0]!.id, purpose: 'hold the slot' })).status, 201);
  // A request waiting in the queue is in flight when SIGTERM arrives.
  const inFlight = api(broker.url, 'POST', '/streams', admin, { channelId: channels[1]!.id, purpose: 'queued', waitSeconds: 2 });
  await until(t, 'the request to be queued', async () => (await api(broker.url, 'GET', '/capacity', admin)).body.forwarding.queued === 1);
  const exit = broker.kill('SIGTERM');
  const answer = await inFlight;
  t.equal(answer.status, 503, 'the in-flight request got its answer (its wait ran out)');
  t.equal(answer.body.error.code, 'FORWARDING_CAPACITY_EXHAUSTED');
  t.equal(await exit, 0, 'clean exit');
  await t.rejects(fetch(`${broker.url}/healthz`), 'no longer accepting');
  t.match(broker.output(), /draining/);
});
