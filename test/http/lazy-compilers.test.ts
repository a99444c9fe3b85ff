/**
 * Route schemas compile on first use (src/http/lazy-compilers.ts) and answer exactly as when compiled at
 * registration: the same coercion (a repeated or single query parameter becomes an array, defaults filled in),
 * the same 400 for bad input with the same message, the same serialised response (unknown fields dropped).
 * Two real Fastify apps, one with the eager compilers and one with the lazy ones, get the same requests.
 */
import t from 'tap';
import Fastify from 'fastify';
import AjvCompiler from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { Type } from '@sinclair/typebox';
import { lazyCompilers } from '../../src/http/lazy-compilers.js';

const Item = Type.Object({ id: Type.String(), n: Type.Integer() }, { $id: 'Item', additionalProperties: false });

function appWith(compilersFactory: { buildValidator: ReturnType<typeof AjvCompiler>; buildSerializer: ReturnType<typeof SerializerSelector> }) {
  const app = Fastify({
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    schemaController: { compilersFactory },
  });
  app.addSchema(Item);
  app.get('/items', {
    schema: {
      querystring: Type.Object(
        { classes: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 3 }))), limit: Type.Integer({ default: 50, minimum: 1, maximum: 500 }) },
        { additionalProperties: false },
      ),
      response: { 200: Type.Object({ query: Type.Unknown(), items: Type.Array(Type.Ref('Item')) }) },
    },
    handler: async (request) => ({ query: request.query, items: [{ id: 'a', n: 1, secret: 'never serialised' }] }),
  });
  app.post('/items', {
    schema: { body: Type.Ref('Item'), response: { 201: Type.Ref('Item') } },
    handler: async (request, reply) => reply.code(201).send(request.body),
  });
  app.get('/items/:n', {
    schema: { params: Type.Object({ n: Type.Integer() }) },
    handler: async (request) => request.params,
  });
  return app;
}

const eager = appWith({ buildValidator: AjvCompiler(), buildSerializer: SerializerSelector() });
const lazy = appWith(lazyCompilers({ buildValidator: AjvCompiler(), buildSerializer: SerializerSelector() }));
t.teardown(async () => {
  await eager.close();
  await lazy.close();
});

const requests = [
  { method: 'GET', url: '/items' },
  { method: 'GET', url: '/items?classes=2' },
  { method: 'GET', url: '/items?classes=1&classes=3&limit=7' },
  { method: 'GET', url: '/items?classes=9' },
  { method: 'GET', url: '/items?limit=zero' },
  { method: 'GET', url: '/items?other=1' },
  { method: 'POST', url: '/items', payload: { id: 'x', n: 2 } },
  { method: 'POST', url: '/items', payload: { id: 'x', n: 2, extra: true } },
  { method: 'POST', url: '/items', payload: { id: 'x' } },
  { method: 'POST', url: '/items', payload: { id: 'x', n: '3' } },
  { method: 'GET', url: '/items/12' },
  { method: 'GET', url: '/items/twelve' },
] as const;

t.test('the lazy compilers answer every request exactly as the eager ones', async (t) => {
  // Twice: the first request of each route compiles, the second runs the compiled function.
  for (let round = 0; round < 2; round++) {
    for (const request of requests) {
      const [a, b] = await Promise.all([eager.inject(request), lazy.inject(request)]);
      t.equal(b.statusCode, a.statusCode, `${request.method} ${request.url}: status`);
      t.equal(b.body, a.body, `${request.method} ${request.url}: body`);
    }
  }
  const coerced = await lazy.inject({ method: 'GET', url: '/items?classes=2' });
  t.same(coerced.json(), { query: { classes: [2], limit: 50 }, items: [{ id: 'a', n: 1 }] }, 'a single value became an array, the default was filled in, the unknown field dropped');
  t.equal((await lazy.inject({ method: 'GET', url: '/items?classes=9' })).statusCode, 400);
});
