import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AgencyId, Cursor, Limit, ObjectId, errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import { SignedAuditHead } from '../schemas/audit.js';
import type { AuditService } from '../../core/audit-service.js';
import type { AccessControl } from '../../core/ports.js';
import { badRequest } from '../../core/errors.js';

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

const VerifyQuery = Type.Object(
  {
    seq: Type.Optional(Type.Integer({ minimum: 0, description: 'a kept head’s seq' })),
    hash: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'the kept head’s hash (64 hex digits)' })),
  },
  { additionalProperties: false },
);

const VerifyAnswer = Type.Object({
  ok: Type.Boolean(),
  entries: Type.Integer(),
  firstBadSeq: Type.Union([Type.Integer(), Type.Null()]),
  extends: Type.Optional(Type.Boolean({ description: 'with ?seq&hash: the log still holds entry seq with that hash, the chain intact up to it' })),
});

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
    schema: {
      tags: ['audit'],
      description: 'Verifies the whole chain; with seq and hash (both or neither) also whether the log still extends that kept head.',
      querystring: VerifyQuery,
      response: { 200: VerifyAnswer, ...errors(400, 401, 403) },
    },
    handler: async (request) => {
      access.assert(principalOf(request), 'audit:verify', {});
      const { seq, hash } = request.query;
      if ((seq === undefined) !== (hash === undefined)) throw badRequest('seq and hash go together: give both, or neither');
      if (seq === undefined || hash === undefined) return audit.verify();
      return audit.verifyExtends({ seq, hash: hash.toLowerCase() });
    },
  });
  app.get('/audit/head', {
    schema: { tags: ['audit'], description: 'The newest entry, signed: keep it to prove later that the log was not cut.', response: { 200: SignedAuditHead, ...errors(401, 403) } },
    handler: async (request) => {
      access.assert(principalOf(request), 'audit:head', {});
      return audit.signedHead();
    },
  });
  app.get('/audit/public-key', {
    schema: {
      tags: ['audit'],
      description: 'The Ed25519 public key audit heads verify with (any signed-in caller).',
      response: { 200: Type.Object({ keyId: Type.String(), publicKeyPem: Type.String({ description: 'SPKI, PEM' }) }), ...errors(401, 403) },
    },
    handler: async (request) => {
      access.assert(principalOf(request), 'audit:public-key', {});
      return audit.publicKey();
    },
  });
};
