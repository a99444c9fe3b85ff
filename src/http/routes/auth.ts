import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ChangePasswordBody, LoginBody, LoginResponse } from '../schemas/accounts.js';
import { errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { AccountsService } from '../../accounts/accounts-service.js';
import { publicUser } from '../../accounts/accounts-service.js';
import { forbidden, notFound } from '../../core/errors.js';
import { parseAuthorization } from '../../accounts/authorization-header.js';

export const authRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountsService }> = async (app, { accounts }) => {
  app.post('/auth/login', {
    config: { public: true },
    schema: { tags: ['auth'], body: LoginBody, response: { 200: LoginResponse, ...errors(400, 401, 429) } },
    handler: (request) => accounts.login(request.body.username, request.body.password, request.ip),
  });

  app.post('/auth/password', {
    schema: {
      tags: ['auth'],
      description: "Changes the caller's own password. Ends the caller's other tokens; the one that asked keeps working.",
      body: ChangePasswordBody,
      response: { 204: Type.Null(), ...errors(400, 401, 403, 429) },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      const credentials = parseAuthorization(request.headers.authorization);
      if (credentials?.kind !== 'bearer') throw forbidden('a service account has no password');
      await accounts.changeOwnPassword(principal, credentials.token, request.body.currentPassword, request.body.newPassword, request.ip);
      return reply.code(204).send(null);
    },
  });

  app.get('/auth/me', {
    schema: { tags: ['auth'], response: { 200: { $ref: 'User' }, ...errors(401) } },
    handler: async (request) => {
      const principal = principalOf(request);
      const user = accounts.user(principal.id);
      if (!user) throw notFound('user');
      return publicUser(user);
    },
  });
};
