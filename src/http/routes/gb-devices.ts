import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { errors } from '../schemas/common.js';
import { CreateGbDeviceBody, GbDeviceParams, PatchGbDeviceBody } from '../schemas/gb-devices.js';
import { principalOf } from '../plugins/auth.js';
import type { GbServer } from '../../gb28181/gb-server.js';
import { notFound } from '../../core/errors.js';

/** GB/T 28181 devices and lower platforms (platform-admin). A small list, answered whole. */
export const gbDeviceRoutes: FastifyPluginAsyncTypebox<{ gb: GbServer | undefined }> = async (app, { gb }) => {
  const server = () => {
    if (!gb) throw notFound('GB/T 28181 access (it is off: BROKER_GB_SIP_PORT=0)');
    return gb;
  };
  app.get('/gb/devices', {
    schema: { tags: ['gb28181'], response: { 200: Type.Object({ items: Type.Array(Type.Ref('GbDevice')), nextCursor: Type.Null() }), ...errors(401, 403, 404) } },
    handler: async (request) => ({ items: server().list(principalOf(request)), nextCursor: null }),
  });
  app.get('/gb/devices/:id', {
    schema: { tags: ['gb28181'], params: GbDeviceParams, response: { 200: Type.Ref('GbDevice'), ...errors(400, 401, 403, 404) } },
    handler: async (request) => server().read(principalOf(request), request.params.id),
  });
  app.post('/gb/devices', {
    schema: { tags: ['gb28181'], body: CreateGbDeviceBody, response: { 201: Type.Ref('GbDevice'), ...errors(400, 401, 403, 404, 409) } },
    handler: async (request, reply) => reply.code(201).send(await server().create(principalOf(request), request.body)),
  });
  app.patch('/gb/devices/:id', {
    schema: { tags: ['gb28181'], params: GbDeviceParams, body: PatchGbDeviceBody, response: { 200: Type.Ref('GbDevice'), ...errors(400, 401, 403, 404) } },
    handler: async (request) => server().patch(principalOf(request), request.params.id, request.body),
  });
  app.post('/gb/devices/:id/catalog', {
    schema: { tags: ['gb28181'], params: GbDeviceParams, response: { 202: Type.Object({ queried: Type.Boolean() }), ...errors(400, 401, 403, 404, 409, 503) } },
    handler: async (request, reply) => {
      await server().requery(principalOf(request), request.params.id);
      return reply.code(202).send({ queried: true });
    },
  });
};
