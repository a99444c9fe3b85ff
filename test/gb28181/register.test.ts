/**
 * Registration against the broker's SIP server with the device simulator: digest, unknown device 403,
 * wrong password 401, Expires: 0, keepalive, offline on silence, audit entries; over UDP and TCP.
 */
import t from 'tap';
import { auth, until } from '../helper.js';
import { buildGbBroker } from './helpers.js';

const auditActions = async (tb: Awaited<ReturnType<typeof buildGbBroker>>, deviceId: string) => {
  const res = await tb.app.inject({ method: 'GET', url: '/api/v1/audit?limit=200', headers: auth(tb.adminToken) });
  return (res.json().items as Array<{ action: string; target: string; outcome: string; reason?: string }>).filter((e) => e.target === `gb-device:${deviceId}`);
};

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`a device registers with digest over ${transport}, keepalives, and unregisters`, async (t) => {
    const tb = await buildGbBroker(t);
    const { id, password } = await tb.device();
    const sim = await tb.simulator({ deviceId: id, password, transport, channels: 0 }, false);
    t.equal(await sim.register(), 200, 'the digest answer to the challenge is accepted');
    const read = async () => (await tb.app.inject({ method: 'GET', url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken) })).json();
    const online = await read();
    t.equal(online.online, true);
    t.equal(online.transport, transport);
    t.match(online.address, /^127\.0\.0\.1:\d+$/);
    t.type(online.registeredAt, 'string');
    t.notOk('password' in online || 'ha1' in online, 'no secret in the record');
    t.equal(await sim.keepalive(), 200, 'keepalive answered');
    t.equal(await sim.unregister(), 200, 'Expires: 0 answered');
    t.equal((await read()).online, false, 'unregistered: offline');
    const actions = (await auditActions(tb, id)).map((e) => e.action);
    t.ok(actions.includes('gb.register') && actions.includes('gb.unregister'), 'register and unregister audited');
    t.equal(await sim.keepalive(), 403, 'a keepalive of an unregistered device is refused');
  });
}

t.test('unknown device 403, wrong password 401, both audited; failures are throttled', async (t) => {
  const tb = await buildGbBroker(t, { env: { BROKER_LOGIN_MAX_FAILURES_PER_USER: '3' } });
  const { id, password } = await tb.device();
  const stranger = await tb.simulator({ deviceId: '44010600001180000999', password: 'whatever1' }, false);
  t.equal(await stranger.register(), 403, 'unknown id: 403');
  const sim = await tb.simulator({ deviceId: id, password }, false);
  t.equal(await sim.register(3600, 'wrong-password'), 401, 'wrong password: 401 with a fresh challenge');
  t.equal(await sim.register(3600, 'wrong-password'), 401);
  t.equal(await sim.register(3600, 'wrong-password'), 401);
  t.equal(await sim.register(3600, 'wrong-password'), 403, 'past the limit: refused without being checked');
  t.equal(await sim.register(3600, password), 403, 'even the right password waits for the window (same address)');
  const denied = await auditActions(tb, id);
  t.ok(denied.some((e) => e.action === 'gb.register.denied' && e.reason === 'wrong credentials'));
  const all = await tb.app.inject({ method: 'GET', url: '/api/v1/audit?action=gb.register.denied&limit=50', headers: auth(tb.adminToken) });
  t.ok(all.json().items.some((e: { reason?: string }) => e.reason === 'unknown device'), 'the unknown device is audited');
});

t.test('a disabled device is refused and a registered one is unregistered by disabling it', async (t) => {
  const tb = await buildGbBroker(t);
  const { id, password } = await tb.device();
  const sim = await tb.simulator({ deviceId: id, password, channels: 0 });
  const patched = await tb.app.inject({ method: 'PATCH', url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken), payload: { disabled: true } });
  t.equal(patched.statusCode, 200);
  t.equal(patched.json().online, false);
  t.equal(await sim.register(), 403, 'disabled: 403');
});

t.test('a device that stops keepaliving goes offline, audited gb.offline', async (t) => {
  const tb = await buildGbBroker(t, { env: { BROKER_GB_KEEPALIVE_TIMEOUT_SECONDS: '10' } });
  const { id, password } = await tb.device();
  await tb.simulator({ deviceId: id, password, channels: 0 });
  await until(t, 'offline after the keepalive timeout', async () => !tb.broker.gb!.read(await principal(tb), id).online, 30_000);
  t.ok((await auditActions(tb, id)).some((e) => e.action === 'gb.offline' && e.reason === 'keepalive timeout'));
});

async function principal(tb: Awaited<ReturnType<typeof buildGbBroker>>) {
  return tb.broker.accounts.authenticate(`Bearer ${tb.adminToken}`)!;
}
