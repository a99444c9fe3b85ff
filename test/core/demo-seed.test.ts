/**
 * Demo seeding stores the generated catalog as its seed (meta/catalog-base) plus the channels that differ
 * from it (the simulated cameras), not as 86,000 documents: the catalog the broker serves is still exactly
 * the generated one with the simulated cameras in it, after the seeding, after a restart, with later patches
 * on top, and on a second broker sharing the Redis store.
 */
import t, { type Test } from 'tap';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { auth, buildTestBroker, deleteRedisPrefix, makeTempDir } from '../helper.js';
import { demoCamera, seedDemo } from '../../src/demo.js';
import { DEMO_SEED, demoSimulatedChannels, generateDemoCatalog } from '../../src/core/demo-catalog.js';
import { STATE_FILE } from '../../src/store/memory/document-store.js';
import type { Channel } from '../../src/core/model.js';

const TOTAL = 3000;
const CAMERAS = 6;
const RTMP = 19_936;

/** What seeding wrote before the base existed: every generated channel, the simulated ones changed. */
function expectedCatalog(): Channel[] {
  const catalog = generateDemoCatalog({ total: TOTAL, seed: DEMO_SEED });
  const live = new Map(demoSimulatedChannels(catalog, CAMERAS).map((c, i) => [c.id, demoCamera(i, CAMERAS)]));
  // API.md: every channel says where its video comes from (`source`), "url" for the generated ones.
  return catalog.map((c) => {
    const camera = live.get(c.id);
    if (!camera) return { ...c, source: 'url' as const };
    return {
      ...c,
      status: 'online' as const,
      sourceUrl: `rtmp://127.0.0.1:${RTMP}/${camera.path}`,
      tags: [...(c.tags ?? []), 'simulated'],
      source: 'url' as const,
      ...(camera.codec && { codec: camera.codec }),
    };
  });
}

t.test('a quarter of the simulated cameras (at most three) are H.265, after the H.264 ones', async (t) => {
  t.same(Array.from({ length: CAMERAS }, (_, i) => demoCamera(i, CAMERAS).path), ['cam/1', 'cam/2', 'cam/3', 'cam/4', 'cam/5', 'cam265/1']);
  t.same(demoCamera(19, 20), { path: 'cam265/3', camera: 3, codec: 'h265' }, 'the default 20: three H.265');
  t.same(demoCamera(16, 20), { path: 'cam/17', camera: 17 });
  t.equal(demoCamera(2, 3).path, 'cam/3', 'too few for any H.265');
});

async function everyChannel(t: Test, broker: Awaited<ReturnType<typeof buildTestBroker>>): Promise<Channel[]> {
  const out: Channel[] = [];
  let cursor: string | null = null;
  do {
    const res: { statusCode: number; json(): unknown } = await broker.app.inject({ method: 'GET', url: `/api/v1/channels?limit=500${cursor ? `&cursor=${cursor}` : ''}`, headers: auth(broker.adminToken) });
    t.equal(res.statusCode, 200);
    const page = res.json() as { items: Channel[]; nextCursor: string | null };
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

t.test('embedded store: seeded as a base, the same catalog after seeding, after a patch and after a restart', async (t) => {
  const dataDir = await makeTempDir(t);
  const config = { adminPassword: randomBytes(12).toString('base64url') };
  const expected = expectedCatalog();
  const patchedId = expected[1234]!.id;

  await t.test('first start seeds', async (t) => {
    const broker = await buildTestBroker(t, { dataDir, config });
    const seed = await seedDemo(broker.broker, { simulatorRtmpPort: RTMP, cameras: CAMERAS, total: TOTAL });
    t.equal(seed.channels, TOTAL);
    t.equal(seed.simulated.length, CAMERAS);
    t.same(await everyChannel(t, broker), expected, 'the API serves the generated catalog with the simulated cameras in it');
    const res = await broker.app.inject({ method: 'PATCH', url: `/api/v1/channels/${patchedId}`, headers: auth(broker.adminToken), payload: { name: '改名后的点位' } });
    t.equal(res.statusCode, 200, 'a generated channel can be patched');
  });

  const state = await readFile(join(dataDir, STATE_FILE), 'utf8');
  t.ok((await stat(join(dataDir, STATE_FILE))).size < 200_000, 'the journal holds the base and the changed channels, not the catalog');
  t.ok(state.includes('"catalog-base"'), 'the base is stored');

  await t.test('restart', async (t) => {
    const broker = await buildTestBroker(t, { dataDir, config });
    const want = expected.map((c) => (c.id === patchedId ? { ...c, name: '改名后的点位' } : c));
    t.same(await everyChannel(t, broker), want, 'regenerated from the base, the stored channels over it');
    const search = await broker.app.inject({ method: 'GET', url: `/api/v1/channels?q=${encodeURIComponent('改名后')}&limit=10`, headers: auth(broker.adminToken) });
    t.same(search.json().items.map((c: Channel) => c.id), [patchedId], 'the patched name is indexed');
  });
});

t.test('seeding over a catalog already stored: the generated channels replace stored ones of their ids', async (t) => {
  const broker = await buildTestBroker(t);
  const clash = { ...generateDemoCatalog({ total: TOTAL, seed: DEMO_SEED })[10]!, name: '早先导入的名称' };
  await broker.broker.catalog.seed([clash]);
  await seedDemo(broker.broker, { simulatorRtmpPort: RTMP, cameras: CAMERAS, total: TOTAL });
  t.same(await everyChannel(t, broker), expectedCatalog(), 'as writing every generated channel would');
});

t.test('Redis store: a second broker sees the seeded catalog, from the base', async (t) => {
  const prefix = `t${randomBytes(6).toString('hex')}`;
  t.teardown(() => deleteRedisPrefix(prefix));
  const env = { BROKER_STORE: 'redis', BROKER_REDIS_PREFIX: prefix };
  const config = { adminPassword: randomBytes(12).toString('base64url') };
  const first = await buildTestBroker(t, { env, config });
  const second = await buildTestBroker(t, { env, config });
  await seedDemo(first.broker, { simulatorRtmpPort: RTMP, cameras: CAMERAS, total: TOTAL });
  const expected = expectedCatalog();
  t.same(await everyChannel(t, first), expected, 'the seeding broker');
  // The running second broker hears of the base and the simulated channels through the store's change feed.
  const deadline = Date.now() + 20_000;
  while (second.broker.catalog.size < TOTAL && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.same(await everyChannel(t, second), expected, 'a broker that was already running');
  const third = await buildTestBroker(t, { env, config });
  t.same(await everyChannel(t, third), expected, 'a broker started afterwards');
});
