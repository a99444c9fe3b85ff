/**
 * Issue 9, point 1: the media node's player events are bounded, handed out once, and a gap is on
 * record. PlayerEventLog (the node's queue) and PlayerAudit (the broker's writer) over a real audit store.
 */
import t from 'tap';
import { PlayerEventLog, REFUSAL_WINDOW_MS, REFUSALS_PER_SESSION_PER_WINDOW, type PlayerEventDraft } from '../../src/media/player-events.js';
import { PlayerAudit } from '../../src/core/player-audit.js';
import { AuditService } from '../../src/core/audit-service.js';
import { MemoryAuditStore } from '../../src/store/memory/audit-store.js';
import type { AuditEntry } from '../../src/core/model.js';
import type { SessionLease } from '../../src/core/ports.js';

const draft = (n: number, kind: PlayerEventDraft['kind'] = 'start'): PlayerEventDraft => ({
  kind,
  sessionId: `s_${n}`,
  channelId: '34020000001320000001',
  playerId: `p${n}`,
  address: '127.0.0.1',
  protocol: 'http-flv',
  userAgent: 'ua',
});

t.test('point 1: the queue keeps at most its bound, counts what it dropped, and hands each event out once', async (t) => {
  const log = new PlayerEventLog(3);
  for (let n = 1; n <= 5; n++) log.push(draft(n));
  const first = log.claim();
  t.same(first.events.map((e) => e.seq), [3, 4, 5], 'the newest 3 kept, in order');
  t.equal(first.missed, 2, 'the 2 dropped are counted');
  const second = log.claim();
  t.same(second.events, [], 'a second claimer gets nothing twice');
  t.equal(second.missed, 0, 'the gap is reported once');
  t.equal(second.instance, first.instance, 'one node process, one instance');
  log.push(draft(6));
  t.same(log.claim().events.map((e) => e.seq), [6], 'seq keeps counting');
});

t.test('point 1: a URL refused in a loop queues a few refusals per window and counts the rest', async (t) => {
  let now = 1_000_000;
  const log = new PlayerEventLog(100, () => now);
  for (let i = 0; i < 50; i++) log.pushRefusal({ ...draft(1, 'refused'), reason: 'too-many-players' });
  log.pushRefusal({ ...draft(2, 'refused'), reason: 'too-many-players' });
  const first = log.claim().events;
  t.equal(first.filter((e) => e.sessionId === 's_1').length, REFUSALS_PER_SESSION_PER_WINDOW, 'one session queues its share');
  t.equal(first.filter((e) => e.sessionId === 's_2').length, 1, "another session's refusal still gets in");
  now += REFUSAL_WINDOW_MS;
  log.pushRefusal({ ...draft(1, 'refused'), reason: 'too-many-players' });
  const [next] = log.claim().events;
  t.equal(next!.suppressed, 50 - REFUSALS_PER_SESSION_PER_WINDOW, 'the next window’s first refusal carries the count');
});

t.test('point 1: the broker writes a gap as play.events-missed and a player under its session owner', async (t) => {
  const store = await MemoryAuditStore.open(t.testdir());
  const audit = new AuditService(store);
  t.teardown(() => audit.close());
  const lease = { id: 's_1', principalId: 'u_op', agencyId: 'city' } as SessionLease;
  const players = new PlayerAudit({
    audit,
    slots: { getSession: async (id) => (id === 's_1' ? lease : null), getReservation: async () => null },
    roleOf: (id) => (id === 'u_op' ? 'operator' : undefined),
  });
  const log = new PlayerEventLog(2);
  log.push(draft(1));
  log.push(draft(2));
  log.push({ ...draft(1, 'end'), bytes: 10, seconds: 1.5 });
  // The session ended through the broker: the node stamped the owner, the store no longer knows it.
  log.push({ ...draft(3, 'end'), bytes: 5, seconds: 2, userId: 'u_gone', agencyId: 'other' });
  players.take({ nodeId: 'embedded', ...log.claim() });
  await players.settled();
  const entries: AuditEntry[] = [];
  for await (const entry of store.scan()) entries.push(entry);
  t.same(
    entries.map((e) => [e.action, e.details?.userId ?? null, e.details?.agencyId ?? null]),
    [
      ['play.events-missed', null, null],
      ['play.end', 'u_op', 'city'],
      ['play.end', 'u_gone', 'other'],
    ],
  );
  t.equal(entries[0]!.details?.missed, 2, 'the gap names how many events were lost');
  t.same(entries[1]!.actor, { id: 'u_op', role: 'operator', agencyId: 'city' }, "the session's user answers for its player");
  t.same(entries[2]!.actor, { id: 'media:embedded', role: 'system', agencyId: 'other' }, 'an owner of unknown role: the node is the actor');
  t.equal(entries[0]!.outcome, 'error');
  players.take({ nodeId: 'embedded', events: [], missed: 0, nodeLost: true });
  await players.settled();
  const after: AuditEntry[] = [];
  for await (const entry of store.scan()) after.push(entry);
  t.match(after.at(-1), { action: 'play.events-missed', outcome: 'error', details: { nodeId: 'embedded', missed: null } }, 'a lost node is noted');
  t.match(entries[1]!.details, { sessionId: 's_1', address: '127.0.0.1', bytes: 10, seconds: 1.5, nodeId: 'embedded', kind: 'stream' });
});
