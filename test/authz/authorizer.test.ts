import t from 'tap';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { Authorizer, scopeOf, type PolicyChange, type PolicyPersistence } from '../../src/authz/authorizer.js';
import { ACTIONS, type Action, type Scope } from '../../src/authz/policy-rows.js';
import { DomainError } from '../../src/core/errors.js';
import type { Principal, Role } from '../../src/core/model.js';

const modelPath = join(import.meta.dirname, '../../policies/model.conf');
const policyPath = join(import.meta.dirname, '../../policies/policy.csv');

/** A fake policy store: the real one is the DocumentStore adapter, owned elsewhere. */
function memoryPersistence(initial: string[][] | null = null) {
  const state = { rows: initial, saves: 0, failNextSave: false };
  const persistence: PolicyPersistence = {
    load: async () => (state.rows ? state.rows.map((r) => [...r]) : null),
    save: async (rows) => {
      if (state.failNextSave) {
        state.failNextSave = false;
        throw new Error('store down');
      }
      state.rows = rows.map((r) => [...r]);
      state.saves += 1;
    },
  };
  return { persistence, state };
}

const create = (persistence: PolicyPersistence, paths = { modelPath, policyPath }) => Authorizer.create({ ...paths, persistence });

const principal = (role: Role, agencyId: string, id = `${role}-1`): Principal => ({
  kind: role === 'service' ? 'service' : 'user',
  id,
  name: id,
  role,
  agencyId,
});

/**
 * The permission table as API.md describes it: for each role, the widest scope at which it may take
 * each action. Missing = never (403). Written out here, not read from policy.csv, so that a wrong
 * policy line fails this test.
 */
const EXPECTED: Record<Role, Partial<Record<Action, Scope>>> = {
  'platform-admin': Object.fromEntries(ACTIONS.map((a) => [a, 'any'])),
  admin: {
    'agency:read': 'own',
    'user:read': 'own',
    'user:write': 'own',
    'service-account:read': 'own',
    'service-account:write': 'own',
    'channel:read': 'own',
    'stream:create': 'own',
    'stream:read': 'own',
    'stream:end': 'own',
    'stream:cut-player': 'own',
    'analytics:create': 'own',
    'analytics:read': 'own',
    'analytics:end': 'own',
    'capacity:read': 'own',
    'audit:read': 'own',
    'report:read': 'own',
    'audit:head': 'any',
    'audit:public-key': 'any',
  },
  operator: {
    'agency:read': 'own',
    'user:read': 'self',
    'channel:read': 'own',
    'stream:create': 'own',
    'stream:read': 'self',
    'stream:end': 'self',
    'capacity:read': 'own',
    'audit:read': 'self',
    'audit:public-key': 'any',
  },
  service: {
    'analytics:create': 'self',
    'analytics:read': 'self',
    'analytics:end': 'self',
    'audit:public-key': 'any',
  },
};

/** The object situations of the table and the scope each needs. */
const SITUATIONS = [
  { name: 'own object', target: (p: Principal) => ({ agencyId: p.agencyId, ownerId: p.id }), needs: 'self' },
  { name: 'colleague object', target: (p: Principal) => ({ agencyId: p.agencyId, ownerId: 'someone-else' }), needs: 'own' },
  { name: 'own agency', target: (p: Principal) => ({ agencyId: p.agencyId }), needs: 'own' },
  { name: 'other agency', target: () => ({ agencyId: 'elsewhere' }), needs: 'any' },
  { name: 'other agency object', target: () => ({ agencyId: 'elsewhere', ownerId: 'someone-else' }), needs: 'any' },
  { name: 'no agency given', target: () => ({}), needs: 'any' },
] as const;

const WIDTH: Record<Scope, number> = { self: 0, own: 1, any: 2 };

function outcome(authz: Authorizer, p: Principal, action: string, target: object): 'allow' | 403 | 404 | 'other' {
  try {
    authz.assert(p, action, target);
    return 'allow';
  } catch (err) {
    if (err instanceof DomainError && err.status === 403 && err.code === 'FORBIDDEN') return 403;
    if (err instanceof DomainError && err.status === 404 && err.code === 'NOT_FOUND') return 404;
    return 'other';
  }
}

t.test('function level: role × situation × action truth table', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  for (const role of Object.keys(EXPECTED) as Role[]) {
    const p = principal(role, role === 'platform-admin' ? 'platform' : 'weather');
    for (const action of ACTIONS) {
      const widest = EXPECTED[role][action];
      for (const s of SITUATIONS) {
        const expected = widest === undefined ? 403 : WIDTH[widest] >= WIDTH[s.needs] ? 'allow' : 404;
        const got = outcome(authz, p, action, s.target(p));
        if (got !== expected) t.fail(`${role} ${action} on ${s.name}: expected ${expected}, got ${got}`);
        t.equal(authz.can(p, action, s.target(p)), expected === 'allow', `${role} ${action} ${s.name} can()`);
      }
    }
  }
});

t.test('function level: the cases API.md names', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  const operator = principal('operator', 'weather', 'op-1');
  const admin = principal('admin', 'weather', 'ad-1');
  const service = principal('service', 'weather', 'svc-1');
  const root = principal('platform-admin', 'platform', 'root');
  const cases: Array<[string, Principal, string, object, 'allow' | 403 | 404]> = [
    ['operator creating an agency', operator, 'agency:write', { agencyId: 'new-agency' }, 403],
    ['service account asking for a stream', service, 'stream:create', { agencyId: 'weather', ownerId: 'svc-1' }, 403],
    ['operator opening a stream for its agency', operator, 'stream:create', { agencyId: 'weather', ownerId: 'op-1' }, 'allow'],
    ['operator ending its own session', operator, 'stream:end', { agencyId: 'weather', ownerId: 'op-1' }, 'allow'],
    ["operator ending a colleague's session", operator, 'stream:end', { agencyId: 'weather', ownerId: 'op-2' }, 404],
    ["admin ending a session of its agency", admin, 'stream:end', { agencyId: 'weather', ownerId: 'op-2' }, 'allow'],
    ["admin ending another agency's session", admin, 'stream:end', { agencyId: 'police', ownerId: 'x' }, 404],
    ['admin listing users of its agency', admin, 'user:read', { agencyId: 'weather' }, 'allow'],
    ['admin creating users in another agency', admin, 'user:write', { agencyId: 'police' }, 404],
    ['admin reserving analytics', admin, 'analytics:create', { agencyId: 'weather', ownerId: 'ad-1' }, 'allow'],
    ['operator reserving analytics', operator, 'analytics:create', { agencyId: 'weather', ownerId: 'op-1' }, 403],
    ['service reserving analytics', service, 'analytics:create', { agencyId: 'weather', ownerId: 'svc-1' }, 'allow'],
    ["service ending another service's reservation", service, 'analytics:end', { agencyId: 'weather', ownerId: 'svc-2' }, 404],
    ['admin verifying the audit chain', admin, 'audit:verify', {}, 403],
    ['platform-admin verifying the audit chain', root, 'audit:verify', {}, 'allow'],
    ['admin importing channels', admin, 'channel:write', {}, 403],
    ['platform-admin ending any session', root, 'stream:end', { agencyId: 'weather', ownerId: 'op-1' }, 'allow'],
    ['an action nobody knows', root, 'agency:delete', {}, 403],
    ['admin reading channels of every agency (past its grants)', admin, 'channel:read', {}, 404],
    ['platform-admin reading channels of every agency', root, 'channel:read', {}, 'allow'],
    ["admin reading a channel's source URL", admin, 'channel:read-source', {}, 403],
    ["platform-admin reading a channel's source URL", root, 'channel:read-source', {}, 'allow'],
    ['admin reading the media nodes', admin, 'media:read', {}, 403],
    ['platform-admin reading the media nodes', root, 'media:read', {}, 'allow'],
    ["operator reading its agency's capacity", operator, 'capacity:read', { agencyId: 'weather' }, 'allow'],
    ['service reading capacity', service, 'capacity:read', { agencyId: 'weather' }, 403],
    ["admin reading another agency's usage report", admin, 'report:read', { agencyId: 'police' }, 404],
    ["operator reading a colleague's audit entries", operator, 'audit:read', { agencyId: 'weather', ownerId: 'op-2' }, 404],
    ["service reading its own reservation", service, 'analytics:read', { agencyId: 'weather', ownerId: 'svc-1' }, 'allow'],
    ["operator reading an event of a colleague's session", operator, 'stream:read', { agencyId: 'weather', ownerId: 'op-2' }, 404],
  ];
  for (const [name, p, action, target, expected] of cases) t.equal(outcome(authz, p, action, target), expected, name);
});

t.test('reach: the widest scope of each role × action, as lists use it; 403 when never', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  for (const role of Object.keys(EXPECTED) as Role[]) {
    const p = principal(role, role === 'platform-admin' ? 'platform' : 'weather');
    for (const action of ACTIONS) {
      const widest = EXPECTED[role][action];
      if (widest === undefined) t.throws(() => authz.reach(p, action), { status: 403, code: 'FORBIDDEN' }, `${role} never ${action}`);
      else t.equal(authz.reach(p, action), widest, `${role} ${action} reaches ${widest}`);
    }
  }
  t.throws(() => authz.reach(principal('platform-admin', 'platform'), 'agency:delete'), { status: 403, code: 'FORBIDDEN' }, 'unknown actions reach nothing');
});

t.test('assertList: a list wider than the role reaches is 403, never 404', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  const widths = {
    mine: (p: Principal) => ({ agencyId: p.agencyId, ownerId: p.id }),
    agency: (p: Principal) => ({ agencyId: p.agencyId }),
    all: () => ({}),
  } as const;
  const needs: Record<keyof typeof widths, Scope> = { mine: 'self', agency: 'own', all: 'any' };
  for (const role of Object.keys(EXPECTED) as Role[]) {
    const p = principal(role, role === 'platform-admin' ? 'platform' : 'weather');
    for (const action of ACTIONS) {
      const widest = EXPECTED[role][action];
      for (const [width, target] of Object.entries(widths) as Array<[keyof typeof widths, (p: Principal) => object]>) {
        const allowed = widest !== undefined && WIDTH[widest] >= WIDTH[needs[width]];
        if (allowed) t.doesNotThrow(() => authz.assertList(p, action, target(p)), `${role} lists ${action} ${width}`);
        else t.throws(() => authz.assertList(p, action, target(p)), { status: 403, code: 'FORBIDDEN' }, `${role} may not list ${action} ${width}`);
      }
    }
  }
});

t.test('assertRole answers 403 only for a role that may never act, whatever the object', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  t.throws(() => authz.assertRole(principal('service', 'weather'), 'stream:end'), { status: 403, code: 'FORBIDDEN' });
  t.doesNotThrow(() => authz.assertRole(principal('operator', 'weather'), 'stream:end'));
  t.equal(authz.mayEver('operator', 'user:write'), false);
  t.equal(authz.mayEver('admin', 'user:write'), true);
});

t.test('scopeOf: what the target is to the caller', async (t) => {
  const p = principal('operator', 'weather', 'op-1');
  t.equal(scopeOf(p, { agencyId: 'weather', ownerId: 'op-1' }), 'self');
  t.equal(scopeOf(p, { ownerId: 'op-1' }), 'self');
  t.equal(scopeOf(p, { agencyId: 'weather', ownerId: 'op-2' }), 'own');
  t.equal(scopeOf(p, { agencyId: 'weather' }), 'own');
  t.equal(scopeOf(p, { ownerId: 'op-2' }), 'any', 'another owner with no agency given is not assumed to be a colleague');
  t.equal(scopeOf(p, { agencyId: 'police', ownerId: 'op-1' }), 'any', 'an id in another agency is not "self"');
  t.equal(scopeOf(p, {}), 'any');
});

const CLASSES = [1, 2, 3] as const;
const NETWORKS = ['video', 'police', 'gov', 'interconnect'] as const;

t.test('agency grants: class × network visibility for several agencies', async (t) => {
  const authz = await create(memoryPersistence().persistence);
  await authz.setAgencyGrants('weather', [1], ['video', 'gov']);
  await authz.setAgencyGrants('politics', [1, 2, 3], ['police', 'video']);
  await authz.setAgencyGrants('worksafety', [], []);
  const visible: Record<string, string[]> = {
    platform: CLASSES.flatMap((c) => NETWORKS.map((n) => `${c}/${n}`)),
    weather: ['1/video', '1/gov'],
    politics: ['1/video', '1/police', '2/video', '2/police', '3/video', '3/police'],
    worksafety: [],
    unknown: [],
  };
  for (const [agency, allowed] of Object.entries(visible)) {
    for (const c of CLASSES) {
      for (const n of NETWORKS) {
        t.equal(authz.canSee(agency, { class: c, network: n }), allowed.includes(`${c}/${n}`), `${agency} sees class ${c} on ${n}`);
      }
    }
  }
  t.equal(authz.visibility('platform'), 'all');
  t.same(authz.visibility('weather'), { classes: [1], networks: ['video', 'gov'] });
  t.same(authz.visibility('politics'), { classes: [1, 2, 3], networks: ['video', 'police'] });
  t.same(authz.visibility('worksafety'), { classes: [], networks: [] });
  t.same(authz.visibility('unknown'), { classes: [], networks: [] });
});

t.test('visibility (kept per agency) follows every kind of grant change: one, several queued together, a reload', async (t) => {
  const { persistence, state } = memoryPersistence();
  const authz = await create(persistence);
  await authz.setAgencyGrants('weather', [1], ['video']);
  t.same(authz.visibility('weather'), { classes: [1], networks: ['video'] }, 'asked once: now kept');
  await authz.setAgencyGrants('weather', [1, 2], ['video', 'gov']);
  t.same(authz.visibility('weather'), { classes: [1, 2], networks: ['video', 'gov'] }, 'a change is seen at once');
  // Changes queued behind a running one are applied as one batch.
  await Promise.all([authz.setAgencyGrants('weather', [3], ['gov']), authz.setAgencyGrants('politics', [2], ['police']), authz.setAgencyGrants('weather', [2], ['police'])]);
  t.same(authz.visibility('weather'), { classes: [2], networks: ['police'] }, 'the last of a batch wins');
  t.same(authz.visibility('politics'), { classes: [2], networks: ['police'] });
  await authz.setAgencyGrants('weather', [], []);
  t.same(authz.visibility('weather'), { classes: [], networks: [] }, 'withdrawn');
  // Another broker changed the store: a reload replaces the rows.
  state.rows = [...(state.rows ?? []), ['p2', 'weather', 'class', '1'], ['p2', 'weather', 'network', 'video']];
  await authz.reload();
  t.same(authz.visibility('weather'), { classes: [1], networks: ['video'] }, 'a reload is seen at once');
});

t.test('agency grants: a wildcard in the store widens one dimension only', async (t) => {
  const { persistence } = memoryPersistence([
    ['p2', 'police', 'class', '*'],
    ['p2', 'police', 'network', 'police'],
  ]);
  const authz = await create(persistence);
  t.same(authz.visibility('police'), { classes: [1, 2, 3], networks: ['police'] });
  t.equal(authz.canSee('police', { class: 3, network: 'police' }), true);
  t.equal(authz.canSee('police', { class: 3, network: 'gov' }), false);
  t.equal(authz.canSee('platform', { class: 1, network: 'video' }), false, 'the store replaces the file defaults');
});

t.test('setAgencyGrants changes a decision at once (cache invalidated)', async (t) => {
  const { persistence } = memoryPersistence();
  const authz = await create(persistence);
  const changes: PolicyChange[] = [];
  authz.onChange((c) => changes.push(c));
  const channel = { class: 2, network: 'gov' };
  await authz.setAgencyGrants('weather', [1], ['gov']);
  t.equal(authz.canSee('weather', channel), false);
  t.equal(authz.canSee('weather', channel), false, 'answered again (now from the cache)');
  await authz.setAgencyGrants('weather', [1, 2], ['gov']);
  t.equal(authz.canSee('weather', channel), true);
  await authz.setAgencyGrants('weather', [1, 2], ['video']);
  t.equal(authz.canSee('weather', channel), false, 'narrowing takes effect at once too');
  t.same(changes, [
    { source: 'local', agencyId: 'weather' },
    { source: 'local', agencyId: 'weather' },
    { source: 'local', agencyId: 'weather' },
  ]);
});

t.test('persistence round trip: a second authorizer on the same store decides the same', async (t) => {
  const { persistence, state } = memoryPersistence();
  const first = await create(persistence);
  t.equal(state.rows, null, 'creating does not write');
  await first.setAgencyGrants('weather', [1, 2], ['gov', 'video']);
  await first.setAgencyGrants('politics', [3], ['police']);
  t.same(state.rows, [
    ['p2', 'platform', 'class', '*'],
    ['p2', 'platform', 'network', '*'],
    ['p2', 'weather', 'class', '1'],
    ['p2', 'weather', 'class', '2'],
    ['p2', 'weather', 'network', 'gov'],
    ['p2', 'weather', 'network', 'video'],
    ['p2', 'politics', 'class', '3'],
    ['p2', 'politics', 'network', 'police'],
  ]);
  const second = await create(persistence);
  for (const agency of ['platform', 'weather', 'politics']) {
    t.same(second.visibility(agency), first.visibility(agency), `${agency} visibility survives`);
    for (const c of CLASSES) for (const n of NETWORKS) {
      t.equal(second.canSee(agency, { class: c, network: n }), first.canSee(agency, { class: c, network: n }));
    }
  }
});

t.test('reload picks up another broker’s change and tells listeners it was a reload', async (t) => {
  const { persistence } = memoryPersistence();
  const here = await create(persistence);
  const there = await create(persistence);
  const heard: PolicyChange[] = [];
  here.onChange((c) => heard.push(c));
  const channel = { class: 1, network: 'video' };
  t.equal(here.canSee('weather', channel), false);
  await there.setAgencyGrants('weather', [1], ['video']);
  t.equal(here.canSee('weather', channel), false, 'not yet reloaded');
  await here.reload();
  t.equal(here.canSee('weather', channel), true);
  t.same(heard, [{ source: 'reload' }]);
});

t.test('concurrent grant changes in one process do not lose each other', async (t) => {
  const { persistence, state } = memoryPersistence();
  const authz = await create(persistence);
  const heard: PolicyChange[] = [];
  authz.onChange((c) => heard.push(c));
  await Promise.all([
    authz.setAgencyGrants('a-one', [1], ['video']),
    authz.setAgencyGrants('a-two', [2], ['gov']),
    authz.setAgencyGrants('a-three', [3], ['police']),
  ]);
  const agencies = new Set((state.rows ?? []).map((r) => r[1]));
  t.same([...agencies].sort(), ['a-one', 'a-three', 'a-two', 'platform']);
  t.equal(state.saves, 1, 'changes queued at once are applied together: one save');
  t.same(heard, ['a-one', 'a-two', 'a-three'].map((agencyId) => ({ source: 'local', agencyId })), 'each change is told, in order');
  t.equal(authz.canSee('a-two', { class: 2, network: 'gov' }), true);
  // One queued behind a running change waits for it, then goes in the next save.
  const first = authz.setAgencyGrants('a-one', [2], ['gov']);
  await Promise.resolve();
  await Promise.all([first, authz.setAgencyGrants('a-two', [1], ['video']), authz.setAgencyGrants('a-three', [1], ['video'])]);
  t.ok(state.saves >= 2 && state.saves <= 3, `${state.saves} saves`);
  t.equal(authz.canSee('a-one', { class: 2, network: 'gov' }), true);
  t.equal(authz.canSee('a-three', { class: 1, network: 'video' }), true);
  t.equal(authz.canSee('a-three', { class: 3, network: 'police' }), false);
});

t.test('a failed save changes nothing and reports the error', async (t) => {
  const { persistence, state } = memoryPersistence();
  const authz = await create(persistence);
  await authz.setAgencyGrants('weather', [1], ['video']);
  state.failNextSave = true;
  await t.rejects(authz.setAgencyGrants('weather', [1, 2, 3], ['video']), { message: 'store down' });
  t.equal(authz.canSee('weather', { class: 3, network: 'video' }), false);
  await authz.setAgencyGrants('weather', [3], ['video']);
  t.equal(authz.canSee('weather', { class: 3, network: 'video' }), true, 'later changes still go through');
});

t.test('invalid grants are a 400 and change nothing', async (t) => {
  const { persistence, state } = memoryPersistence();
  const authz = await create(persistence);
  await t.rejects(authz.setAgencyGrants('weather', [4], ['video']), { status: 400, code: 'BAD_REQUEST' });
  await t.rejects(authz.setAgencyGrants('weather', [1], ['internet']), { status: 400, code: 'BAD_REQUEST' });
  await t.rejects(authz.setAgencyGrants('Not An Id', [1], ['video']), { status: 400, code: 'BAD_REQUEST' });
  t.equal(state.saves, 0);
});

t.test('bad policy is refused at load, naming the line', async (t) => {
  const dir = t.testdir({ 'typo.csv': 'p, operator, stream:create, own\np, operater, stream:end, self\n' });
  await t.rejects(create(memoryPersistence().persistence, { modelPath, policyPath: join(dir, 'typo.csv') }), {
    message: /typo\.csv:2: unknown role operater/,
  });
  await t.rejects(create(memoryPersistence([['p', 'service', 'stream:create', 'any']]).persistence), {
    message: /not a p2 grant row/,
  });
  await t.rejects(create(memoryPersistence([['p2', 'weather', 'class', '9']]).persistence), { message: /unknown class 9/ });
});

t.test('the shipped policy.csv grants the platform agency everything by default', async (t) => {
  const text = await readFile(policyPath, 'utf8');
  t.match(text, /^p2, platform, class, \*$/m);
  const authz = await create(memoryPersistence().persistence);
  t.equal(authz.visibility('platform'), 'all');
});
