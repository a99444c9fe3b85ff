import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AgencyId, Cursor, Limit, ObjectId, errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { AuditService } from '../../core/audit-service.js';
import type { AccessControl } from '../../core/ports.js';

const AuditEntry = Type.Object(
  {
    seq: Type.Integer(),
    at: Type.String(),
    actor: Type.Object({ id: Type.String(), role: Type.String(), agencyId: Type.String() }),
    action: Type.String(),
    target: Type.String(),
    outcome: Type.String(),
    reason: Type.Optional(Type.String()),
    purpose: Type.Optional(Type.String()),
    details: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]))),
    prevHash: Type.String(),
    hash: Type.String(),
  },
  { $id: 'AuditEntry' },
);

const AuditQuery = Type.Object(
  {
    agencyId: Type.Optional(AgencyId),
    userId: Type.Optional(ObjectId),
    channelId: Type.Optional(Type.String({ pattern: '^[0-9]{20}$' })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z.*-]+$' })),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService; access: AccessControl }> = async (app, { audit, access }) => {
  app.addSchema(AuditEntry);
  app.get('/audit', {
    schema: { tags: ['audit'], querystring: AuditQuery, response: { 200: Type.Object({ items: Type.Array(Type.Ref('AuditEntry')), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 401, 403) } },
    handler: async (request) => {
      const principal = principalOf(request);
      return audit.query(principal, access.reach(principal, 'audit:read'), { ...request.query, limit: request.query.limit ?? 50 });
    },
  });
  app.get('/audit/verify', {
    schema: { tags: ['audit'], response: { 200: Type.Object({ ok: Type.Boolean(), entries: Type.Integer(), firstBadSeq: Type.Union([Type.Integer(), Type.Null()]) }), ...errors(401, 403) } },
    handler: async (request) => {
      access.assert(principalOf(request), 'audit:verify', {});
      return audit.verify();
    },
  });
};
