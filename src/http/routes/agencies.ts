import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  AgencyParams,
  CreateAgencyBody,
  CreateServiceAccountBody,
  CreateUserBody,
  CreatedServiceAccount,
  IdParams,
  PatchAgencyBody,
  PatchUserBody,
  UserParams,
} from '../schemas/accounts.js';
import { errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { AccountsService } from '../../accounts/accounts-service.js';

const items = (ref: string) => Type.Object({ items: Type.Array(Type.Ref(ref)), nextCursor: Type.Null() });

/** Agencies, their users and service accounts: small lists, answered whole (nextCursor is always null). */
export const agencyRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountsService }> = async (app, { accounts }) => {
  app.get('/agencies', {
    schema: { tags: ['agencies'], response: { 200: items('Agency'), ...errors(401, 403) } },
    handler: async (request) => ({ items: accounts.listAgencies(principalOf(request)), nextCursor: null }),
  });
  app.get('/agencies/:agencyId', {
    schema: { tags: ['agencies'], params: AgencyParams, response: { 200: Type.Ref('Agency'), ...errors(401, 404) } },
    handler: async (request) => accounts.getAgency(principalOf(request), request.params.agencyId),
  });
  app.post('/agencies', {
    schema: { tags: ['agencies'], body: CreateAgencyBody, response: { 201: Type.Ref('Agency'), ...errors(400, 401, 403, 409) } },
    handler: async (request, reply) => reply.code(201).send(await accounts.createAgency(principalOf(request), request.body)),
  });
  app.patch('/agencies/:agencyId', {
    schema: { tags: ['agencies'], params: AgencyParams, body: PatchAgencyBody, response: { 200: Type.Ref('Agency'), ...errors(400, 401, 403, 404) } },
    handler: async (request) => accounts.patchAgency(principalOf(request), request.params.agencyId, request.body),
  });

  app.get('/agencies/:agencyId/users', {
    schema: { tags: ['users'], params: AgencyParams, response: { 200: items('User'), ...errors(401, 403, 404) } },
    handler: async (request) => ({ items: accounts.listUsers(principalOf(request), request.params.agencyId), nextCursor: null }),
  });
  app.post('/agencies/:agencyId/users', {
    schema: { tags: ['users'], params: AgencyParams, body: CreateUserBody, response: { 201: Type.Ref('User'), ...errors(400, 401, 403, 404, 409) } },
    handler: async (request, reply) => reply.code(201).send(await accounts.createUser(principalOf(request), request.params.agencyId, request.body)),
  });
  app.patch('/users/:userId', {
    schema: { tags: ['users'], params: UserParams, body: PatchUserBody, response: { 200: Type.Ref('User'), ...errors(400, 401, 403, 404) } },
    handler: async (request) => accounts.patchUser(principalOf(request), request.params.userId, request.body),
  });

  app.get('/agencies/:agencyId/service-accounts', {
    schema: { tags: ['service accounts'], params: AgencyParams, response: { 200: items('ServiceAccount'), ...errors(401, 403, 404) } },
    handler: async (request) => ({ items: accounts.listServiceAccounts(principalOf(request), request.params.agencyId), nextCursor: null }),
  });
  app.post('/agencies/:agencyId/service-accounts', {
    schema: { tags: ['service accounts'], params: AgencyParams, body: CreateServiceAccountBody, response: { 201: CreatedServiceAccount, ...errors(400, 401, 403, 404) } },
    handler: async (request, reply) =>
      reply.code(201).send(await accounts.createServiceAccount(principalOf(request), request.params.agencyId, request.body.name)),
  });
  app.delete('/service-accounts/:id', {
    schema: { tags: ['service accounts'], params: IdParams, response: { 204: Type.Null(), ...errors(401, 403, 404) } },
    handler: async (request, reply) => {
      await accounts.revokeServiceAccount(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
};
