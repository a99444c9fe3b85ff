import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { LoginBody, LoginResponse } from '../schemas/accounts.js';
import { errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { AccountsService } from '../../accounts/accounts-service.js';
import { publicUser } from '../../accounts/accounts-service.js';
import { notFound } from '../../core/errors.js';

export const authRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountsService }> = async (app, { accounts }) => {
  app.post('/auth/login', {
    config: { public: true },
    schema: { tags: ['auth'], body: LoginBody, response: { 200: LoginResponse, ...errors(400, 401, 429) } },
    handler: (request) => accounts.login(request.body.username, request.body.password, request.ip),
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
