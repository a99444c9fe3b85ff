import t from 'tap';
import { auth, buildTestBroker } from '../helper.js';

t.test('the broker answers health, docs and me', async (t) => {
  const { app, adminToken } = await buildTestBroker(t);
  t.equal((await app.inject('/healthz')).statusCode, 200);
  t.equal((await app.inject('/api/v1/readyz')).statusCode, 200);
  const spec = await app.inject('/openapi.json');
  t.equal(spec.statusCode, 200);
  t.ok(spec.json().paths['/api/v1/streams'], 'streams documented');
  const me = await app.inject({ url: '/api/v1/auth/me', headers: auth(adminToken) });
  t.equal(me.statusCode, 200);
  t.equal(me.json().role, 'platform-admin');
  t.notOk('passwordHash' in me.json());
});
