import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Capacity, Heartbeat, IdempotencyHeaders, OpenReservationBody, OpenStreamBody, PlayerParams, StreamHeartbeat, StreamListQuery } from '../schemas/streams.js';
import { IdParams } from '../schemas/accounts.js';
import { errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { StreamService } from '../../core/stream-service.js';
import type { AnalyticsService } from '../../core/analytics-service.js';

/** Aborts when the client goes away before its answer is written (a queued request leaves the queue). */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export const streamRoutes: FastifyPluginAsyncTypebox<{ streams: StreamService; analytics: AnalyticsService }> = async (app, { streams, analytics }) => {
  app.post('/streams', {
    schema: {
      tags: ['streams'],
      body: OpenStreamBody,
      headers: IdempotencyHeaders,
      response: { 201: Type.Ref('Stream'), ...errors(400, 401, 403, 404, 409, 429, 503, 504) },
    },
    handler: async (request, reply) => {
      // Only a request that may wait in the queue needs to know when its client leaves.
      const gone = (request.body.waitSeconds ?? 0) > 0 ? clientGone(reply) : undefined;
      const view = await streams.open(principalOf(request), request.body, request.headers['idempotency-key'], gone);
      return reply.code(201).send(view);
    },
  });
  app.get('/streams', {
    schema: { tags: ['streams'], querystring: StreamListQuery, response: { 200: Type.Object({ items: Type.Array(Type.Ref('Stream')), nextCursor: Type.Null() }), ...errors(401, 403) } },
    handler: async (request) => ({ items: await streams.list(principalOf(request), request.query.scope ?? 'mine', { players: request.query.players === true }), nextCursor: null }),
  });
  app.get('/streams/:id', {
    schema: { tags: ['streams'], params: IdParams, response: { 200: Type.Ref('Stream'), ...errors(401, 404) } },
    handler: async (request) => streams.get(principalOf(request), request.params.id),
  });
  app.delete('/streams/:id/players/:playerId', {
    schema: { tags: ['streams'], params: PlayerParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } },
    handler: async (request, reply) => {
      await streams.cutPlayer(principalOf(request), request.params.id, request.params.playerId);
      return reply.code(204).send(null);
    },
  });
  app.post('/streams/:id/heartbeat', {
    schema: { tags: ['streams'], params: IdParams, response: { 200: StreamHeartbeat, ...errors(401, 404, 503) } },
    handler: async (request) => streams.heartbeat(principalOf(request), request.params.id),
  });
  app.delete('/streams/:id', {
    schema: { tags: ['streams'], params: IdParams, response: { 204: Type.Null(), ...errors(401, 404) } },
    handler: async (request, reply) => {
      await streams.release(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });

  app.post('/analytics/reservations', {
    schema: { tags: ['analytics'], body: OpenReservationBody, response: { 201: Type.Ref('Reservation'), ...errors(400, 401, 403, 404, 409, 429, 503, 504) } },
    handler: async (request, reply) => reply.code(201).send(await analytics.reserve(principalOf(request), request.body)),
  });
  app.get('/analytics/reservations', {
    schema: { tags: ['analytics'], response: { 200: Type.Object({ items: Type.Array(Type.Ref('Reservation')), nextCursor: Type.Null() }), ...errors(401, 403) } },
    handler: async (request) => ({ items: await analytics.list(principalOf(request)), nextCursor: null }),
  });
  app.get('/analytics/reservations/:id', {
    schema: { tags: ['analytics'], params: IdParams, response: { 200: Type.Ref('Reservation'), ...errors(401, 404) } },
    handler: async (request) => analytics.get(principalOf(request), request.params.id),
  });
  app.post('/analytics/reservations/:id/heartbeat', {
    schema: { tags: ['analytics'], params: IdParams, response: { 200: Heartbeat, ...errors(401, 404, 503) } },
    handler: async (request) => analytics.heartbeat(principalOf(request), request.params.id),
  });
  app.delete('/analytics/reservations/:id', {
    schema: { tags: ['analytics'], params: IdParams, response: { 204: Type.Null(), ...errors(401, 404) } },
    handler: async (request, reply) => {
      await analytics.release(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });

  app.get('/capacity', {
    schema: { tags: ['capacity'], response: { 200: Capacity, ...errors(401) } },
    handler: async (request) => analytics.capacity(principalOf(request)),
  });
};
