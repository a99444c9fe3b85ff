/**
 * GET /channels answers a string built from each channel's kept JSON: it must be byte for byte what the
 * route's response schema (fast-json-stringify, as Fastify compiles it) writes for the same page — for
 * every shape of channel (owner agency or not, tags or not, source or not, escapes in names) — and a
 * changed channel (a new frozen object) must never answer its old JSON.
 */
import t from 'tap';
import Fastify from 'fastify';
import { ChannelList, Channel as ChannelSchema } from '../../src/http/schemas/channels.js';
import { channelJson, channelPageBody, channelPageJson } from '../../src/http/channel-json.js';
import type { ChannelPage } from '../../src/core/catalog-service.js';

/** The page as the route sends it (bytes copied together from each channel's kept bytes) must be the same text. */
function pageText(page: ChannelPage): string {
  const text = channelPageJson(page);
  const bytes = channelPageBody(page).toString('utf8');
  if (bytes !== text) throw new Error(`channelPageBody differs from channelPageJson: ${bytes.slice(0, 200)}`);
  return text;
}
import { generateDemoCatalog } from '../../src/core/demo-catalog.js';
import type { Channel } from '../../src/core/model.js';
import { auth, buildTestBroker } from '../helper.js';

const sample: Channel[] = generateDemoCatalog({ total: 2000, seed: 11 });
const odd: Channel[] = [
  { ...sample[0]!, name: '引号"反斜杠\\换行\n制表\t\u0001 emoji 📷', tags: [] },
  { ...sample[1]!, tags: undefined, ownerAgency: undefined, sourceUrl: undefined },
  { ...sample[2]!, location: { lat: -0.000001, lon: 179.999999 }, ownerAgency: 'weather', tags: ['a', 'b"c'] },
  { ...sample[3]!, source: 'gb28181', deviceId: '44010600002000000001', codec: 'h265', sourceUrl: undefined },
  { ...sample[4]!, source: 'url', codec: 'h264' },
];
for (const c of odd) for (const k of Object.keys(c) as Array<keyof Channel>) if (c[k] === undefined) delete c[k];

/** The schema's own serialiser: the same route definition on a bare Fastify. */
async function schemaSerialiser() {
  const app = Fastify();
  app.addSchema(ChannelSchema);
  let current: unknown = null;
  app.get('/page', { schema: { response: { 200: ChannelList } } }, async () => current);
  await app.ready();
  return async (page: unknown) => {
    current = page;
    return (await app.inject({ method: 'GET', url: '/page' })).body;
  };
}

t.test('byte for byte the schema serialiser, with and without sources', async (t) => {
  const serialise = await schemaSerialiser();
  const channels = [...odd, ...sample];
  for (let at = 0; at < channels.length; at += 50) {
    const items = channels.slice(at, at + 50);
    const nextCursor = at % 100 === 0 ? null : `cursor-${at}`;
    // API.md: a channel stored without `source` came from a URL, and says so.
    const shown = items.map((c) => ({ ...c, source: c.source ?? 'url' }));
    const admin = await serialise({ items: shown, total: channels.length, nextCursor });
    t.equal(pageText({ items, total: channels.length, nextCursor, withSource: true }), admin, `page at ${at}, with sources`);
    const hidden = shown.map(({ sourceUrl: _s, ...rest }) => rest);
    t.equal(pageText({ items, total: channels.length, nextCursor, withSource: false }), await serialise({ items: hidden, total: channels.length, nextCursor }), `page at ${at}, without sources`);
  }
  t.equal(pageText({ items: [], total: 0, nextCursor: null, withSource: false }), await serialise({ items: [], total: 0, nextCursor: null }), 'empty page');
});

t.test('kept per object: the same object answers the same JSON, a changed channel (new object) its own', async (t) => {
  const channel = Object.freeze({ ...sample[5]! });
  const first = channelJson(channel, true);
  t.equal(channelJson(channel, true), first);
  t.notMatch(channelJson(channel, false), /sourceUrl/, 'the source-less form is kept apart');
  t.match(channelJson(channel, true), /sourceUrl/);
  const renamed = Object.freeze({ ...channel, name: '新名称' });
  t.match(channelJson(renamed, true), /新名称/);
});

t.test('through the broker: a patched channel answers its new JSON, operators never see sources', async (t) => {
  const broker = await buildTestBroker(t);
  await broker.broker.catalog.seed(sample.slice(0, 300));
  const { operatorToken } = await broker.agency({ id: 'agency-a' });
  const list = (token: string) => broker.app.inject({ method: 'GET', url: '/api/v1/channels?limit=500', headers: auth(token) });
  const before = await list(broker.adminToken);
  t.equal(before.statusCode, 200);
  t.equal(before.headers['content-type'], 'application/json; charset=utf-8');
  t.equal(before.json().items.length, 300);
  t.ok(before.json().items.every((c: Channel) => c.sourceUrl), 'the platform admin sees sources');
  const id = sample[7]!.id;
  const patched = await broker.app.inject({ method: 'PATCH', url: `/api/v1/channels/${id}`, headers: auth(broker.adminToken), payload: { name: '已改名', sourceUrl: 'rtsp://camera.invalid/new' } });
  t.equal(patched.statusCode, 200);
  const after = (await list(broker.adminToken)).json().items.find((c: Channel) => c.id === id);
  t.equal(after.name, '已改名', 'the new name, not the kept JSON of the old object');
  t.equal(after.sourceUrl, 'rtsp://camera.invalid/new');
  const asOperator = await list(operatorToken);
  t.equal(asOperator.statusCode, 200);
  t.ok(asOperator.json().items.length > 0, 'the operator sees channels');
  t.notMatch(asOperator.body, /sourceUrl|camera\.invalid/, 'no source in an operator page, kept JSON or not');
});
