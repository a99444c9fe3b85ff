/**
 * Bad input gets a clear 4xx with an error code — never a 5xx, a hang or a stack trace.
 */
import t from 'tap';
import type { InjectOptions } from 'fastify';
import { auth, buildTestBroker } from '../helper.js';

t.test('bad input answers 4xx with the error shape of API.md', async (t) => {
  const { app, adminToken, config } = await buildTestBroker(t);
  const h = { ...auth(adminToken), 'content-type': 'application/json' };
  const agency = { id: 'weather', name: '气象局', networks: ['gov'], classes: [2, 3], quotas: { forwarding: 10, analytics: 5 } };

  const cases: Array<{ name: string; req: InjectOptions; status: number; code: string }> = [
    { name: 'malformed JSON', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: '{"id": "x",' }, status: 400, code: 'BAD_REQUEST' },
    { name: 'empty JSON body', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: '' }, status: 400, code: 'BAD_REQUEST' },
    { name: 'unknown field', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: { ...agency, color: 'red' } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'unknown nested field', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: { ...agency, quotas: { forwarding: 1, analytics: 1, x: 1 } } }, status: 400, code: 'BAD_REQUEST' },
    { name: '__proto__ key', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: `{"id":"abc","__proto__":{"admin":true}}` }, status: 400, code: 'BAD_REQUEST' },
    { name: 'constructor key', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: `{"id":"abc","constructor":{"prototype":{"x":1}}}` }, status: 400, code: 'BAD_REQUEST' },
    { name: 'wrong content type', req: { method: 'POST', url: '/api/v1/agencies', headers: { ...auth(adminToken), 'content-type': 'text/plain' }, payload: 'hello' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'oversized body', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: JSON.stringify({ ...agency, name: 'x'.repeat(config.bodyLimitBytes) }) }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
    { name: 'negative quota', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: { ...agency, quotas: { forwarding: -1, analytics: 1 } } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'huge quota', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: { ...agency, quotas: { forwarding: 1e12, analytics: 1 } } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'bad agency id', req: { method: 'POST', url: '/api/v1/agencies', headers: h, payload: { ...agency, id: 'Weather!' } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'limit 0', req: { url: '/api/v1/channels?limit=0', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'limit 501', req: { url: '/api/v1/channels?limit=501', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'limit not a number', req: { url: '/api/v1/channels?limit=abc', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'class 4', req: { url: '/api/v1/channels?class=4', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'bbox of three numbers', req: { url: '/api/v1/channels?bbox=1,2,3', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'bbox out of range', req: { url: '/api/v1/channels?bbox=113,23,500,24', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'garbage cursor', req: { url: '/api/v1/channels?cursor=%%%%', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'unknown query parameter', req: { url: '/api/v1/channels?colour=red', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'bad channel id', req: { url: '/api/v1/channels/123', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
    { name: 'waitSeconds 31', req: { method: 'POST', url: '/api/v1/streams', headers: h, payload: { channelId: '44010600001310000001', purpose: 'check', waitSeconds: 31 } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'purpose too short', req: { method: 'POST', url: '/api/v1/streams', headers: h, payload: { channelId: '44010600001310000001', purpose: 'x' } }, status: 400, code: 'BAD_REQUEST' },
    { name: 'unknown route', req: { url: '/api/v1/nothing', headers: auth(adminToken) }, status: 404, code: 'NOT_FOUND' },
    { name: 'no credentials', req: { url: '/api/v1/channels' }, status: 401, code: 'UNAUTHENTICATED' },
    { name: 'bad audit time', req: { url: '/api/v1/audit?from=yesterday', headers: auth(adminToken) }, status: 400, code: 'BAD_REQUEST' },
  ];
  for (const c of cases) {
    const res = await app.inject(c.req);
    t.equal(res.statusCode, c.status, `${c.name}: status`);
    const body = res.json();
    t.equal(body.error?.code, c.code, `${c.name}: code`);
    t.type(body.error?.message, 'string', `${c.name}: message`);
    t.notMatch(res.body, /at .+\.(ts|js):\d+/, `${c.name}: no stack trace`);
  }
  // Nothing was created by any of the rejected writes.
  const list = await app.inject({ url: '/api/v1/agencies', headers: auth(adminToken) });
  t.same(list.json().items.map((a: { id: string }) => a.id), ['platform']);
});
