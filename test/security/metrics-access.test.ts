/**
 * Issue 8, point 10: /metrics (per-agency usage, login counts) was open to anyone. API.md "Operations":
 * with BROKER_METRICS_TOKEN set, only `Authorization: Bearer <token>` (loopback too); unset, only
 * loopback clients; everyone else 403 FORBIDDEN in the error shape.
 */
import t from 'tap';
import { buildTestBroker } from '../helper.js';
import { listenBroker } from './http-helpers.js';

const scrape = (tb: Awaited<ReturnType<typeof buildTestBroker>>, remoteAddress: string, headers: Record<string, string> = {}) =>
  tb.app.inject({ url: '/metrics', remoteAddress, headers });

t.test('point 10: without BROKER_METRICS_TOKEN only loopback clients may scrape', async (t) => {
  const tb = await buildTestBroker(t);
  for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
    const res = await scrape(tb, address);
    t.equal(res.statusCode, 200, `${address} scrapes`);
    t.match(res.body, /broker_pool_limit/);
  }
  for (const address of ['203.0.113.9', '10.0.0.1', '::ffff:10.1.2.3', '2001:db8::1', '128.0.0.1']) {
    const res = await scrape(tb, address, { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' });
    t.equal(res.statusCode, 403, `${address} is refused, whatever forwarded headers say`);
    t.equal(res.json().error?.code, 'FORBIDDEN');
    t.type(res.json().error?.message, 'string');
    t.notMatch(res.body, /broker_/, 'no metric leaks in the refusal');
  }
});

t.test('point 10: with BROKER_METRICS_TOKEN only the bearer token scrapes, from any address', async (t) => {
  const token = 'scrape-' + 'x'.repeat(24);
  const tb = await buildTestBroker(t, { env: { BROKER_METRICS_TOKEN: token } });
  for (const address of ['127.0.0.1', '203.0.113.9']) {
    t.equal((await scrape(tb, address, { authorization: `Bearer ${token}` })).statusCode, 200, `${address} with the token`);
    t.equal((await scrape(tb, address, { authorization: `bearer ${token}` })).statusCode, 200, `${address}, scheme in lower case`);
    for (const authorization of [undefined, `Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, 'Bearer ', `Basic ${token}`, `Bearer ${tb.adminToken}`]) {
      const res = await scrape(tb, address, authorization === undefined ? {} : { authorization });
      t.equal(res.statusCode, 403, `${address} with ${authorization === undefined ? 'no header' : JSON.stringify(authorization.slice(0, 12))} is refused`);
      t.equal(res.json().error?.code, 'FORBIDDEN');
    }
  }
});

t.test('point 10: a real loopback connection scrapes; the token setting is validated', async (t) => {
  const b = await listenBroker(t);
  const res = await fetch(`${b.base}/metrics`);
  t.equal(res.status, 200);
  await t.rejects(buildTestBroker(t, { env: { BROKER_METRICS_TOKEN: 'short' } }), /BROKER_METRICS_TOKEN/);
});
