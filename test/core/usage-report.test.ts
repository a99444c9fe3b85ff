/**
 * usageReport over hand-made audit entries (the months around it, every counted action, the agency
 * taken from details before the actor) and the RFC 4180 rendering.
 */
import t from 'tap';
import type { AuditEntry } from '../../src/core/model.js';
import { csvField, usageReport, usageReportCsv } from '../../src/core/usage-report.js';

let seq = 0;
function entry(at: string, action: string, fields: Partial<AuditEntry> = {}): AuditEntry {
  seq++;
  return { seq, at, actor: { id: 'u-op', role: 'operator', agencyId: 'agency-a' }, action, target: `session:s-${seq}`, outcome: 'ok', prevHash: '', hash: '', ...fields };
}
const grant = (at: string, channelId: string, agencyId?: string) => entry(at, 'stream.grant', { details: { channelId, ...(agencyId && { agencyId }) } });
const end = (at: string, action: string, durationMs: number, agencyId = 'agency-a') => entry(at, action, { reason: 'x', details: { channelId: '1', agencyId, durationMs } });
/** A player's end as player-audit.ts writes it: the media node is the actor, the session's owner in the details. */
const play = (at: string, seconds: number, agencyId = 'agency-a', userId = 'u-op', channelId = 'c1', kind = 'stream') =>
  entry(at, 'play.end', { actor: { id: 'media:embedded', role: 'system', agencyId }, details: { sessionId: 's', kind, channelId, agencyId, userId, seconds, bytes: 1 } });

async function* asAsync(entries: AuditEntry[]) {
  yield* entries;
}

t.test('counts the month only, by agency, sorted', async (t) => {
  const log = [
    grant('2026-10-31T23:59:59.999Z', 'c1'),
    play('2026-10-31T23:59:59.999Z', 600),
    grant('2026-11-01T00:00:00.000Z', 'c1'),
    grant('2026-11-02T08:00:00.000Z', 'c1'),
    grant('2026-11-02T09:00:00.000Z', 'c2'),
    entry('2026-11-02T09:00:01.000Z', 'stream.grant', { outcome: 'error', details: { channelId: 'c9' } }),
    grant('2026-11-03T10:00:00.000Z', 'c3', 'agency-b'),
    // Players that ended in November: counted whatever month they started in. Lease time is not viewing.
    play('2026-11-05T00:00:00.000Z', 90),
    play('2026-11-05T00:00:00.000Z', 30, 'agency-a', 'u-op', 'c2'),
    play('2026-11-05T00:00:00.000Z', 6, 'agency-a', 'u-admin', 'c2'),
    end('2026-11-05T00:00:00.000Z', 'stream.release', 3_600_000),
    end('2026-11-05T00:00:00.000Z', 'stream.expire', 30_000),
    play('2026-11-06T00:00:00.000Z', 125, 'agency-b', 'u-b'),
    // An analytics reservation's relay is a player, not a viewer.
    play('2026-11-06T00:00:00.000Z', 500, 'agency-c', 'svc', 'c1', 'analytics'),
    play('2026-11-06T00:00:00.000Z', 0, 'agency-b', 'u-b'),
    entry('2026-11-07T00:00:00.000Z', 'analytics.grant', { details: { channelId: 'c1', agencyId: 'agency-c' } }),
    entry('2026-11-07T00:00:00.000Z', 'analytics.grant', { actor: { id: 'svc', role: 'service', agencyId: 'agency-c' } }),
    entry('2026-11-08T00:00:00.000Z', 'stream.deny', { outcome: 'denied', reason: 'capacity', details: { channelId: 'c1', agencyId: 'agency-b' } }),
    entry('2026-11-08T00:00:00.000Z', 'analytics.deny', { outcome: 'denied', reason: 'capacity', details: { channelId: 'c1', agencyId: 'agency-b' } }),
    entry('2026-11-09T00:00:00.000Z', 'auth.login', { actor: { id: 'u-x', role: 'operator', agencyId: 'agency-quiet' } }),
    entry('2026-11-10T00:00:00.000Z', 'analytics.release', { details: { agencyId: 'agency-a', durationMs: 60_000 } }),
    grant('2026-12-01T00:00:00.000Z', 'c4', 'agency-d'),
  ];
  const report = await usageReport(asAsync(log), '2026-11');
  t.same(report, {
    month: '2026-11',
    agencies: [
      // 90+30+6 s = 126 s = 2.1 min
      { agencyId: 'agency-a', sessions: 3, distinctChannels: 2, viewingMinutes: 2.1, analyticsReservations: 0, denied: 0 },
      // 125 s = 2.0833 min → 2.1
      { agencyId: 'agency-b', sessions: 1, distinctChannels: 1, viewingMinutes: 2.1, analyticsReservations: 0, denied: 2 },
      { agencyId: 'agency-c', sessions: 0, distinctChannels: 0, viewingMinutes: 0, analyticsReservations: 2, denied: 0 },
    ],
    // Most viewing first; a grant counts as the actor's session.
    users: [
      { userId: 'u-b', agencyId: 'agency-b', sessions: 0, viewingMinutes: 2.1, channels: [{ channelId: 'c1', viewingMinutes: 2.1 }] },
      {
        userId: 'u-op',
        agencyId: 'agency-a',
        sessions: 4,
        viewingMinutes: 2,
        channels: [
          { channelId: 'c1', viewingMinutes: 1.5 },
          { channelId: 'c2', viewingMinutes: 0.5 },
        ],
      },
      { userId: 'u-admin', agencyId: 'agency-a', sessions: 0, viewingMinutes: 0.1, channels: [{ channelId: 'c2', viewingMinutes: 0.1 }] },
    ],
  });
  t.same((await usageReport(log, '2026-09')).agencies, [], 'a month without activity');
  await t.rejects(usageReport(log, '2026-13'), RangeError);
});

t.test('CSV: header, one row per agency, RFC 4180 quoting', async (t) => {
  t.equal(csvField('plain'), 'plain');
  t.equal(csvField(12.5), '12.5');
  t.equal(csvField('a,b'), '"a,b"');
  t.equal(csvField('say "hi"'), '"say ""hi"""');
  t.equal(csvField('two\nlines'), '"two\nlines"');
  t.equal(csvField('cr\rhere'), '"cr\rhere"');
  t.equal(csvField(''), '');
  const csv = usageReportCsv({
    month: '2026-11',
    agencies: [
      { agencyId: 'agency-a', sessions: 3, distinctChannels: 2, viewingMinutes: 2.1, analyticsReservations: 0, denied: 0 },
      { agencyId: 'odd,"id"', sessions: 1, distinctChannels: 1, viewingMinutes: 0, analyticsReservations: 4, denied: 2 },
    ],
  });
  t.equal(
    csv,
    'month,agencyId,sessions,distinctChannels,viewingMinutes,analyticsReservations,denied\r\n' +
      '2026-11,agency-a,3,2,2.1,0,0\r\n' +
      '2026-11,"odd,""id""",1,1,0,4,2\r\n',
  );
  t.equal(usageReportCsv({ month: '2026-11', agencies: [] }), 'month,agencyId,sessions,distinctChannels,viewingMinutes,analyticsReservations,denied\r\n');
});
