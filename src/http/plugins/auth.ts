/**
 * Authentication: every route is private unless its config says `public: true`. People send
 * `Authorization: Bearer <token>`, services `Authorization: ApiKey <key>`.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../core/model.js';
import { unauthenticated } from '../../core/errors.js';
import type {} from '@fastify/websocket';

export interface Authenticator {
  authenticate(authorization: string | undefined): Principal | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Reachable without credentials (login, health, docs). */
    public?: boolean;
  }
}

/** The authenticated caller; routes that reach here without one are a bug, so it throws 401. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthenticated();
  return request.principal;
}

async function authPlugin(app: FastifyInstance, opts: { authenticator: Authenticator }) {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public) return;
    // No route matched: the 404 handler answers, credentials or not (API.md: an unknown route is 404).
    // It names no resource, so a stranger learns nothing a 401 would have hidden.
    if (request.routeOptions.url === undefined) return;
    // Browsers cannot set headers on a WebSocket: the events socket may carry the token in ?token=.
    const query = request.query as Record<string, unknown> | undefined;
    const header =
      request.headers.authorization ?? (request.ws && typeof query?.token === 'string' ? `Bearer ${query.token}` : undefined);
    const principal = opts.authenticator.authenticate(header);
    if (!principal) throw unauthenticated();
    request.principal = principal;
  });
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x', dependencies: ['errors'] });
