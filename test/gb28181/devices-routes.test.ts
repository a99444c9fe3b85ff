/** `/api/v1/gb/devices` as API.md says: platform-admin only, strict bodies, never the password. */
import t from 'tap';
import { auth } from '../helper.js';
import { buildGbBroker, newDeviceId } from './helpers.js';

t.test('create, read, list, patch; 400, 401, 403, 404, 409', async (t) => {
  const tb = await buildGbBroker(t);
  const { operatorToken, adminToken: agencyAdmin } = await tb.agency({ id: 'weather' });
  const id = newDeviceId('200');
  const post = (payload: object, token = tb.adminToken) => tb.app.inject({ method: 'POST', url: '/api/v1/gb/devices', headers: auth(token), payload });

  const created = await post({ id, name: '天河区平台', password: 'secret-123', channelClass: 2, mediaTransport: 'tcp-passive' });
  t.equal(created.statusCode, 201);
  t.match(created.json(), { id, name: '天河区平台', channelClass: 2, mediaTransport: 'tcp-passive', disabled: false, online: false, address: null, transport: null, registeredAt: null, lastKeepaliveAt: null, channels: 0 });
  t.notOk('password' in created.json() || 'ha1' in created.json(), 'never the password');
  t.equal((await post({ id, name: 'again', password: 'secret-123' })).statusCode, 409, 'a second create of one id: 409');
  t.equal((await post({ id: newDeviceId(), name: 'x', password: 'secret-123', extra: 1 })).statusCode, 400, 'unknown field: 400');
  t.equal((await post({ id: '1234', name: 'x', password: 'secret-123' })).statusCode, 400, 'a short id: 400');
  t.equal((await post({ id: '44010600004000000001', name: 'x', password: 'secret-123' })).statusCode, 400, 'type 400 is no device: 400');
  t.equal((await post({ id: newDeviceId(), name: 'x', password: 'short' })).statusCode, 400, 'a short password: 400');
  t.equal((await post({ id: newDeviceId(), name: 'x', password: 'secret-123' }, operatorToken)).statusCode, 403, 'an operator: 403');
  t.equal((await post({ id: newDeviceId(), name: 'x', password: 'secret-123' }, agencyAdmin)).statusCode, 403, "an agency's admin: 403");
  const anonymous = await tb.app.inject({ method: 'GET', url: '/api/v1/gb/devices' });
  t.equal(anonymous.statusCode, 401);
  t.equal(anonymous.json().error.code, 'UNAUTHENTICATED');

  const list = await tb.app.inject({ method: 'GET', url: '/api/v1/gb/devices', headers: auth(tb.adminToken) });
  t.equal(list.statusCode, 200);
  t.same(list.json().items.map((d: { id: string }) => d.id), [id]);
  t.equal(list.json().nextCursor, null);
  t.equal((await tb.app.inject({ method: 'GET', url: '/api/v1/gb/devices', headers: auth(operatorToken) })).statusCode, 403);
  t.equal((await tb.app.inject({ method: 'GET', url: `/api/v1/gb/devices/${newDeviceId()}`, headers: auth(tb.adminToken) })).statusCode, 404);
  t.equal((await tb.app.inject({ method: 'GET', url: '/api/v1/gb/devices/nope', headers: auth(tb.adminToken) })).statusCode, 400);

  const patched = await tb.app.inject({ method: 'PATCH', url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken), payload: { name: '新名字', password: 'another-123', channelClass: 3 } });
  t.equal(patched.statusCode, 200);
  t.match(patched.json(), { name: '新名字', channelClass: 3 });
  t.equal((await tb.app.inject({ method: 'PATCH', url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken), payload: { id: 'x' } })).statusCode, 400, 'id may not change');
  t.equal((await tb.app.inject({ method: 'PATCH', url: `/api/v1/gb/devices/${newDeviceId()}`, headers: auth(tb.adminToken), payload: { name: 'x' } })).statusCode, 404);
  const requery = await tb.app.inject({ method: 'POST', url: `/api/v1/gb/devices/${id}/catalog`, headers: auth(tb.adminToken) });
  t.equal(requery.statusCode, 409, 'an offline device cannot be queried');
  t.equal(requery.json().error.code, 'DEVICE_OFFLINE');

  const audit = await tb.app.inject({ method: 'GET', url: '/api/v1/audit?limit=50', headers: auth(tb.adminToken) });
  const actions = audit.json().items.map((e: { action: string }) => e.action);
  t.ok(actions.includes('gb.device.create') && actions.includes('gb.device.update'), 'changes audited');
  t.notOk(audit.body.includes('secret-123') || audit.body.includes('another-123'), 'no password in the audit log');
});

t.test('with GB/T 28181 off the routes answer 404 in the error shape', async (t) => {
  const { buildTestBroker } = await import('../helper.js');
  const tb = await buildTestBroker(t);
  const res = await tb.app.inject({ method: 'GET', url: '/api/v1/gb/devices', headers: auth(tb.adminToken) });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.code, 'NOT_FOUND');
});
