/**
 * GET /reports/usage?month=YYYY-MM: monthly usage per agency from the audit log. platform-admin: every
 * agency; admin: its own; operators and services may not read reports (403). JSON by default, CSV
 * (RFC 4180, as a download) when the client asks for `text/csv`.
 * @see ../../../shared/API.md "Reports"
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AuditService } from '../../core/audit-service.js';
import type { AccessControl } from '../../core/ports.js';
import { MONTH, usageReport, usageReportCsv } from '../../core/usage-report.js';
import { principalOf } from '../plugins/auth.js';
import { errors } from '../schemas/common.js';
import { SignedAuditHead } from '../schemas/audit.js';

const UsageQuery = Type.Object({ month: Type.String({ pattern: MONTH.source, description: 'YYYY-MM (UTC)' }) }, { additionalProperties: false });

const Count = Type.Integer({ minimum: 0 });
const UsageReport = Type.Object({
  month: Type.String(),
  agencies: Type.Array(
    Type.Object({
      agencyId: Type.String(),
      sessions: Count,
      distinctChannels: Count,
      viewingMinutes: Type.Number({ minimum: 0 }),
      analyticsReservations: Count,
      denied: Count,
    }),
  ),
  users: Type.Array(
    Type.Object({
      userId: Type.String(),
      agencyId: Type.String(),
      sessions: Count,
      viewingMinutes: Type.Number({ minimum: 0, description: 'Time its players were connected (play.end seconds), to 0.1 minute' }),
      channels: Type.Array(Type.Object({ channelId: Type.String(), viewingMinutes: Type.Number({ minimum: 0 }) }), { description: 'Most watched first' }),
    }),
    { description: 'Per user of the agencies the caller may read, most viewing first. In CSV: a second table after a blank line' },
  ),
  auditHead: Type.Union([SignedAuditHead, Type.Null()], {
    description: "The signed head at the month's end (its last entry); null when the month has no entry. In CSV: the last line, auditHead,seq=…,hash=…,at=…,keyId=…,signature=…",
  }),
});

/** True when the Accept header lists text/csv with a non-zero q (the only alternative to the JSON default). */
function wantsCsv(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((range) => {
    const [type, ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    return type === 'text/csv' && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

export const reportRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService; access: AccessControl }> = async (app, { audit, access }) => {
  app.get('/reports/usage', {
    schema: {
      tags: ['reports'],
      querystring: UsageQuery,
      response: {
        200: { description: 'The report', content: { 'application/json': { schema: UsageReport }, 'text/csv': { schema: Type.String({ description: 'RFC 4180, header row first; last line auditHead,seq=…,hash=…,at=…,keyId=…,signature=… (auditHead,none for a month without entries)' }) } } },
        ...errors(400, 401, 403),
      },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      access.assert(principal, 'report:read', { agencyId: principal.agencyId });
      const report = await usageReport(audit.scan(), request.query.month, { signHead: (head) => audit.signHead(head) });
      report.agencies = report.agencies.filter((a) => access.can(principal, 'report:read', { agencyId: a.agencyId }));
      report.users = (report.users ?? []).filter((u) => access.can(principal, 'report:read', { agencyId: u.agencyId }));
      if (!wantsCsv(request.headers.accept)) return { ...report, users: report.users, auditHead: report.auditHead ?? null };
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="usage-${report.month}.csv"`)
        .send(usageReportCsv(report));
    },
  });
};
