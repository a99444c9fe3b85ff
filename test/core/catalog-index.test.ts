import t, { type Test } from 'tap';
import { CatalogIndex, type CatalogQuery } from '../../src/core/catalog-index.js';
import { encodeCursor } from '../../src/core/cursor.js';
import { generateDemoCatalog, mulberry32 } from '../../src/core/demo-catalog.js';
import { DomainError } from '../../src/core/errors.js';
import { GUANGZHOU_DISTRICTS } from '../../src/core/gb-code.js';
import { CHANNEL_STATUSES, NETWORKS, type Channel } from '../../src/core/model.js';

const catalog = generateDemoCatalog({ total: 5000, seed: 7 });

function built(channels: readonly Channel[] = catalog): CatalogIndex {
  const index = new CatalogIndex();
  index.upsertMany(channels);
  return index;
}

/** The reference: read every channel. */
function bruteForce(channels: readonly Channel[], q: Omit<CatalogQuery, 'limit' | 'cursor'>): Channel[] {
  const folded = q.q?.toLowerCase();
  return channels
    .filter((c) => !q.classes?.length || q.classes.includes(c.class))
    .filter((c) => !q.districts?.length || q.districts.includes(c.district))
    .filter((c) => !q.networks?.length || q.networks.includes(c.network))
    .filter((c) => !q.statuses?.length || q.statuses.includes(c.status))
    .filter((c) => q.visible === 'all' || (q.visible.classes.includes(c.class) && q.visible.networks.includes(c.network)))
    .filter((c) => !q.bbox || (c.location.lon >= q.bbox[0] && c.location.lat >= q.bbox[1] && c.location.lon <= q.bbox[2] && c.location.lat <= q.bbox[3]))
    .filter((c) => !folded || c.name.toLowerCase().includes(folded) || c.id.startsWith(folded))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

function walk(index: CatalogIndex, query: Omit<CatalogQuery, 'cursor'>, during?: (page: number) => void): string[] {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const result = index.query({ ...query, cursor });
    ids.push(...result.items.map((c) => c.id));
    during?.(page);
    if (result.nextCursor === null) return ids;
    cursor = result.nextCursor;
  }
  throw new Error('walk did not end');
}

const expectSame = (t: Test, index: CatalogIndex, q: Omit<CatalogQuery, 'limit' | 'cursor'>, label: string) => {
  const expected = bruteForce(catalog, q);
  const page = index.query({ ...q, limit: 50 });
  t.equal(page.total, expected.length, `${label}: total`);
  t.same(page.items.map((c) => c.id), expected.slice(0, 50).map((c) => c.id), `${label}: first page`);
  return expected.length;
};

t.test('each filter, OR within a field, AND across fields', async (t) => {
  const index = built();
  t.equal(index.size, 5000);
  const all = 'all' as const;
  t.ok(expectSame(t, index, { visible: all, classes: [2] }, 'class 2') > 0);
  expectSame(t, index, { visible: all, classes: [2, 3] }, 'class 2 or 3');
  expectSame(t, index, { visible: all, districts: ['440106'] }, 'district');
  expectSame(t, index, { visible: all, districts: ['440106', '440117'] }, 'two districts');
  expectSame(t, index, { visible: all, districts: ['999999'] }, 'unknown district');
  expectSame(t, index, { visible: all, networks: ['gov'] }, 'network');
  expectSame(t, index, { visible: all, statuses: ['fault', 'offline'] }, 'status');
  expectSame(t, index, { visible: all, classes: [1], districts: ['440111'], statuses: ['online'] }, 'AND across');
  expectSame(t, index, { visible: all, classes: [1], networks: ['gov'] }, 'empty AND');
  expectSame(t, index, { visible: all, bbox: [113.3, 23.1, 113.4, 23.2] }, 'bbox');
  expectSame(t, index, { visible: all, bbox: [100, 0, 130, 60] }, 'bbox holding everything');
  expectSame(t, index, { visible: all, bbox: [0, 0, 1, 1] }, 'bbox off the map');
  t.ok(expectSame(t, index, { visible: all, q: '天河路' }, 'q name substring') > 0);
  expectSame(t, index, { visible: all, q: '口' }, 'q one character');
  expectSame(t, index, { visible: all, q: '交叉口-东' }, 'q long substring');
  t.ok(expectSame(t, index, { visible: all, q: '44010601' }, 'q id prefix') > 0);
  expectSame(t, index, { visible: all, q: catalog[17].id }, 'q full id');
  expectSame(t, index, { visible: all, q: '不存在的路' }, 'q no match');
});

t.test('visibility narrows every answer', async (t) => {
  const index = built();
  const shared = { classes: [2, 3], networks: ['gov', 'interconnect'] };
  const n = expectSame(t, index, { visible: shared }, 'class 2/3 agency');
  t.equal(n, catalog.filter((c) => c.class !== 1).length);
  expectSame(t, index, { visible: shared, classes: [1] }, 'asks for invisible class');
  expectSame(t, index, { visible: { classes: [1], networks: ['video'] }, districts: ['440104'], q: '路' }, 'class 1 agency + q');
  expectSame(t, index, { visible: { classes: [], networks: [] } }, 'sees nothing');
  t.equal(index.get(catalog[0].id)?.id, catalog[0].id, 'get ignores visibility (callers check)');
});

t.test('random queries agree with brute force', async (t) => {
  const index = built();
  const random = mulberry32(99);
  const some = <T>(items: readonly T[]): T[] => items.filter(() => random() < 0.35);
  const names = catalog.map((c) => c.name);
  for (let i = 0; i < 300; i++) {
    const q: Omit<CatalogQuery, 'limit' | 'cursor'> = { visible: 'all' };
    if (random() < 0.4) q.classes = some([1, 2, 3]);
    if (random() < 0.4) q.districts = some(GUANGZHOU_DISTRICTS.map((d) => d.code));
    if (random() < 0.3) q.networks = some(NETWORKS);
    if (random() < 0.3) q.statuses = some(CHANNEL_STATUSES);
    if (random() < 0.3) q.visible = { classes: some([1, 2, 3]), networks: some(NETWORKS) };
    if (random() < 0.4) {
      const d = GUANGZHOU_DISTRICTS[Math.floor(random() * GUANGZHOU_DISTRICTS.length)];
      const lon = d.centre.lon + (random() - 0.5) * 0.2;
      const lat = d.centre.lat + (random() - 0.5) * 0.2;
      q.bbox = [lon, lat, lon + random() * 0.3, lat + random() * 0.3];
    }
    if (random() < 0.3) {
      const name = names[Math.floor(random() * names.length)];
      const from = Math.floor(random() * name.length);
      q.q = random() < 0.7 ? name.slice(from, from + 1 + Math.floor(random() * 4)) : catalog[Math.floor(random() * 5000)].id.slice(0, 4 + Math.floor(random() * 12));
    }
    const expected = bruteForce(catalog, q);
    const limit = 1 + Math.floor(random() * 120);
    const page = index.query({ ...q, limit });
    if (page.total !== expected.length || page.items.length !== Math.min(limit, expected.length)) {
      t.fail(`query ${JSON.stringify(q)}: total ${page.total} vs ${expected.length}`);
      continue;
    }
    t.same(page.items.map((c) => c.id), expected.slice(0, limit).map((c) => c.id), `query ${i}`);
    t.equal(page.nextCursor === null, expected.length <= limit, `query ${i} cursor`);
  }
});

t.test('a cursor walk has no gaps or duplicates', async (t) => {
  const index = built();
  const query = { visible: 'all' as const, districts: ['440106', '440113'], limit: 37 };
  const ids = walk(index, query);
  t.same(ids, bruteForce(catalog, query).map((c) => c.id));
  const boxed = { visible: 'all' as const, bbox: [113.2, 23.0, 113.5, 23.3] as const, q: '路', limit: 500 };
  t.same(walk(index, boxed), bruteForce(catalog, boxed).map((c) => c.id), 'with bbox and q');
});

t.test('a walk while channels are added sees every old channel once', async (t) => {
  const index = built(catalog.filter((_, i) => i % 2 === 0));
  const added = catalog.filter((_, i) => i % 2 === 1);
  let next = 0;
  const ids = walk(index, { visible: 'all', limit: 50 }, () => {
    // Single inserts (some land in pending, some trigger a rebuild) and one bulk insert midway.
    for (let k = 0; k < 40 && next < added.length; k++) index.upsert(added[next++]);
    if (next === 800) index.upsertMany(added.slice(next, (next += 100)));
  });
  t.equal(new Set(ids).size, ids.length, 'no duplicates');
  t.same(ids, [...ids].sort(), 'in id order');
  const seen = new Set(ids);
  t.ok(catalog.filter((_, i) => i % 2 === 0).every((c) => seen.has(c.id)), 'every channel present at the start is seen');
  t.equal(index.size, Math.min(5000, 2500 + next));
});

t.test('pending inserts are found by every kind of query', async (t) => {
  const index = built(catalog.slice(0, 4900));
  for (const channel of catalog.slice(4900)) index.upsert(channel);
  t.equal(index.size, 5000);
  expectSame(t, index, { visible: 'all', q: '路', classes: [1] }, 'q + class');
  expectSame(t, index, { visible: 'all', districts: ['440106'] }, 'district');
  expectSame(t, index, { visible: 'all', bbox: [113.3, 23.1, 113.4, 23.2] }, 'bbox');
  t.same(index.stats('all').total, 5000);
});

t.test('stats agree with brute force', async (t) => {
  const index = built();
  for (const visible of ['all' as const, { classes: [2, 3], networks: ['gov'] }, { classes: [1], networks: ['video', 'gov'] }]) {
    const seen = bruteForce(catalog, { visible });
    const tally = (key: (c: Channel) => string) => {
      const counts: Record<string, number> = {};
      for (const c of seen) counts[key(c)] = (counts[key(c)] ?? 0) + 1;
      return counts;
    };
    const stats = index.stats(visible);
    t.equal(stats.total, seen.length);
    t.same(stats.byDistrict, tally((c) => c.district));
    t.same(Object.fromEntries(Object.entries(stats.byClass).filter(([, n]) => n > 0)), tally((c) => String(c.class)));
    t.same(Object.fromEntries(Object.entries(stats.byNetwork).filter(([, n]) => n > 0)), tally((c) => c.network));
    t.same(Object.fromEntries(Object.entries(stats.byStatus).filter(([, n]) => n > 0)), tally((c) => c.status));
  }
});

t.test('box totals agree with brute force while channels change class, status and place', async (t) => {
  // The grid counts whole cells by the part (district, pair, status) each channel had when last indexed:
  // every patch must move or re-label it, and boxes on cell boundaries (multiples of 0.02°) must count exactly.
  const current = new Map(catalog.map((c) => [c.id, c]));
  const index = built();
  const random = mulberry32(2028);
  const ids = catalog.map((c) => c.id);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  let checked = 0;
  for (let round = 0; round < 200; round++) {
    for (let k = 0; k < 10; k++) {
      const id = pick(ids);
      const was = current.get(id)!;
      const change = random();
      const patch =
        change < 0.35
          ? { status: pick(CHANNEL_STATUSES) }
          : change < 0.6
            ? { class: pick([1, 2, 3] as const) }
            : change < 0.8
              ? { location: { lat: was.location.lat + (random() - 0.5) * 0.002, lon: was.location.lon + (random() - 0.5) * 0.002 } }
              : { location: { lat: Math.round(was.location.lat / 0.02) * 0.02, lon: Math.round(was.location.lon / 0.02) * 0.02 }, status: pick(CHANNEL_STATUSES) };
      current.set(id, index.patch(id, patch)!);
    }
    const d = pick(GUANGZHOU_DISTRICTS);
    const aligned = random() < 0.4;
    const snap = (x: number) => (aligned ? Math.round(x / 0.02) * 0.02 : x);
    const lon = snap(d.centre.lon + (random() - 0.5) * 0.2);
    const lat = snap(d.centre.lat + (random() - 0.5) * 0.2);
    const q: Omit<CatalogQuery, 'limit' | 'cursor'> = { visible: 'all', bbox: [lon, lat, snap(lon + 0.02 + random() * 0.2), snap(lat + 0.02 + random() * 0.2)] };
    if (random() < 0.5) q.statuses = [pick(CHANNEL_STATUSES)];
    if (random() < 0.5) q.classes = [pick([1, 2, 3])];
    if (random() < 0.5) q.districts = [d.code];
    if (random() < 0.3) q.visible = { classes: [1, 2], networks: ['video', 'government'] };
    const expected = bruteForce([...current.values()], q);
    const page = index.query({ ...q, limit: 20 });
    if (page.total !== expected.length) t.fail(`round ${round} ${JSON.stringify(q)}: total ${page.total} vs ${expected.length}`);
    else checked++;
    t.same(page.items.map((c) => c.id), expected.slice(0, 20).map((c) => c.id), `round ${round}: first page`);
  }
  t.equal(checked, 200, 'every total right');
});

t.test('patch updates every index', async (t) => {
  const index = built();
  const target = catalog.find((c) => c.status === 'online' && c.class === 1)!;
  const before = index.stats('all');
  const patched = index.patch(target.id, { status: 'fault', name: 'Renamed 测试点', location: { lat: 10.5, lon: 20.5 } });
  t.match(patched, { id: target.id, status: 'fault', name: 'Renamed 测试点', location: { lat: 10.5, lon: 20.5 } });
  const after = index.stats('all');
  t.equal(after.byStatus.fault, before.byStatus.fault + 1);
  t.equal(after.byStatus.online, before.byStatus.online - 1);
  const only = (q: Omit<CatalogQuery, 'limit'>) => index.query({ ...q, limit: 500 }).items.map((c) => c.id);
  t.ok(only({ visible: 'all', statuses: ['fault'] }).includes(target.id), 'in the new status list');
  t.notOk(only({ visible: 'all', statuses: ['online'] }).includes(target.id), 'out of the old status list');
  t.same(only({ visible: 'all', bbox: [20, 10, 21, 11] }), [target.id], 'found at the new place');
  t.notOk(only({ visible: 'all', q: target.name }).includes(target.id), 'not found by the old name');
  t.same(only({ visible: 'all', q: 'renamed 测试' }), [target.id], 'found by the new name, case-insensitively');
  t.same(only({ visible: 'all', q: '测' }), [target.id], 'found by one character of the new name');
  t.equal(index.patch('44010601001321999999', { status: 'online' }), undefined, 'unknown id');
  t.throws(() => ((index.get(target.id) as { name: string }).name = 'x'), 'stored channels are frozen');
});

t.test('re-upserting an existing channel replaces it in place', async (t) => {
  const index = built();
  const target = catalog[100];
  t.equal(index.upsert({ ...target, class: target.class === 1 ? 1 : 2, status: 'offline' }), 'updated');
  t.equal(index.size, 5000);
  t.same(index.upsertMany(catalog.slice(0, 40)), { created: 0, updated: 40 });
  t.same(index.upsertMany([...catalog.slice(0, 101), catalog[0]]), { created: 0, updated: 102 });
  t.equal(index.get(target.id)?.status, target.status, 'bulk upsert restored it');
});

t.test('bad cursor and bad query arguments are BAD_REQUEST', async (t) => {
  const index = built();
  const bad = (q: Partial<CatalogQuery>) => () => index.query({ visible: 'all', limit: 10, ...q });
  for (const cursor of ['nope', encodeCursor('123'), encodeCursor('4401060100132100000x'), '']) {
    t.throws(bad({ cursor }), new DomainError('BAD_REQUEST', 400, 'invalid cursor'), `cursor ${JSON.stringify(cursor)}`);
  }
  t.throws(bad({ limit: 0 }), { code: 'BAD_REQUEST' });
  t.throws(bad({ limit: 501 }), { code: 'BAD_REQUEST' });
  t.throws(bad({ bbox: [2, 0, 1, 1] }), { code: 'BAD_REQUEST' });
  t.throws(bad({ statuses: ['broken'] }), { code: 'BAD_REQUEST' });
  t.throws(bad({ networks: ['internet'] }), { code: 'BAD_REQUEST' });
  const cursor = index.query({ visible: 'all', limit: 10 }).nextCursor!;
  t.equal(index.query({ visible: 'all', limit: 10, cursor }).items[0].id, bruteForce(catalog, { visible: 'all' })[10].id);
});
