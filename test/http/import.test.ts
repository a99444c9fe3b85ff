/**
 * Channel import over HTTP (NDJSON and CSV, streamed): bad lines are rejected one by one with their
 * line number and reason, good lines land; and the `npm run import` tool against a live broker.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { auth, buildTestBroker, makeTempDir, runScript } from '../helper.js';
import { makeChannel } from '../fixtures.js';

const importBody = (app: Awaited<ReturnType<typeof buildTestBroker>>['app'], token: string, type: string, payload: string) =>
  app.inject({ method: 'POST', url: '/api/v1/channels/import', headers: { ...auth(token), 'content-type': type }, payload });

t.test('NDJSON: good lines land, bad lines are reported with line and reason', async (t) => {
  const tb = await buildTestBroker(t);
  const good1 = makeChannel(1, 1, 'video');
  const good2 = makeChannel(2, 2, 'gov');
  const lines = [
    JSON.stringify(good1),
    '{"id": "not json',
    JSON.stringify({ ...makeChannel(3, 1, 'video'), id: '44010600001310000003'.replace(/3$/, '') }),
    '',
    JSON.stringify({ ...makeChannel(4, 1, 'video'), network: 'gov' }),
    JSON.stringify({ ...makeChannel(5, 1, 'video'), colour: 'red' }),
    JSON.stringify(good2),
    JSON.stringify({ ...makeChannel(6, 1, 'video'), id: '44010600001317000006' }),
  ];
  const res = await importBody(tb.app, tb.adminToken, 'application/x-ndjson', lines.join('\n'));
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.created, 2);
  t.equal(body.updated, 0);
  t.same(body.rejected.map((r: { line: number }) => r.line), [2, 3, 5, 6, 8], 'line numbers of the bad lines');
  t.ok(body.rejected.every((r: { code: string; message: string }) => r.code && r.message.length > 0), 'each with a reason');
  const got = await tb.app.inject({ url: `/api/v1/channels/${good2.id}`, headers: auth(tb.adminToken) });
  t.equal(got.json().name, good2.name);
  const again = await importBody(tb.app, tb.adminToken, 'application/x-ndjson', JSON.stringify({ ...good1, name: '新名字' }));
  t.same(again.json(), { created: 0, updated: 1, rejected: [] }, 'a known id updates');
  const audit = await tb.app.inject({ url: '/api/v1/audit?action=channel.import', headers: auth(tb.adminToken) });
  t.equal(audit.json().items.length, 2, 'imports audited');
});

t.test('CSV: quoting, good and bad rows, header errors', async (t) => {
  const tb = await buildTestBroker(t);
  const a = makeChannel(1, 1, 'video');
  const b = makeChannel(2, 3, 'interconnect');
  const csv = [
    'id,name,class,lat,lon,status,tags,sourceUrl',
    `${a.id},"天河路, ""东"" 向",1,23.13,113.33,online,a|b,${a.sourceUrl}`,
    `${b.id},南沙港,3,22.7,113.6,offline,,${b.sourceUrl}`,
    `${makeChannel(3, 1, 'video').id},坏纬度,1,123,113.3,online,,rtsp://camera.invalid/3`,
    `${makeChannel(4, 1, 'video').id},坏类别,9,23.1,113.3,online,,rtsp://camera.invalid/4`,
  ].join('\r\n');
  const res = await importBody(tb.app, tb.adminToken, 'text/csv', csv);
  t.equal(res.statusCode, 200);
  t.equal(res.json().created, 2);
  t.same(res.json().rejected.map((r: { line: number }) => r.line), [4, 5]);
  const got = (await tb.app.inject({ url: `/api/v1/channels/${a.id}`, headers: auth(tb.adminToken) })).json();
  t.equal(got.name, '天河路, "东" 向', 'quoted comma and doubled quotes');
  t.same(got.tags, ['a', 'b']);
  const badHeader = await importBody(tb.app, tb.adminToken, 'text/csv', 'id,name,colour\n1,2,3');
  t.equal(badHeader.statusCode, 400);
  t.equal(badHeader.json().error.code, 'BAD_REQUEST');
  const wrongType = await importBody(tb.app, tb.adminToken, 'application/xml', '<x/>');
  t.equal(wrongType.statusCode, 415);
});

t.test('more than 100,000 lines: 413 and nothing lands', async (t) => {
  const tb = await buildTestBroker(t);
  const line = JSON.stringify(makeChannel(1, 1, 'video'));
  const res = await importBody(tb.app, tb.adminToken, 'application/x-ndjson', Array.from({ length: 100_001 }, () => line).join('\n'));
  t.equal(res.statusCode, 413);
  t.equal(res.json().error.code, 'PAYLOAD_TOO_LARGE');
  t.equal((await tb.app.inject({ url: '/api/v1/channels/stats', headers: auth(tb.adminToken) })).json().total, 0);
});

t.test('npm run import sends a file to a live broker and reports per line', async (t) => {
  const tb = await buildTestBroker(t);
  await tb.app.listen({ host: '127.0.0.1', port: 0 });
  const address = tb.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const dir = await makeTempDir(t);
  const file = join(dir, 'channels.ndjson');
  await writeFile(file, [JSON.stringify(makeChannel(1, 1, 'video')), 'garbage', JSON.stringify(makeChannel(2, 2, 'gov'))].join('\n') + '\n');
  const { code, stdout: out, stderr: err } = await runScript('src/cli/import.ts', [file, '--url', `http://127.0.0.1:${port}`], {
    ...process.env,
    BROKER_ADMIN_PASSWORD: tb.adminPassword,
  });
  t.equal(code, 1, 'exit 1 when lines were rejected');
  t.match(out, /line 2: BAD_REQUEST/);
  t.match(out, /2 created, 0 updated, 1 rejected/);
  t.match(err, /3 lines sent/, 'progress shown');
  t.equal((await tb.app.inject({ url: '/api/v1/channels/stats', headers: auth(tb.adminToken) })).json().total, 2);
});
