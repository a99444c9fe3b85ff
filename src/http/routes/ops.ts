import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

export interface Readiness {
  /** Each check answers true when its dependency is reachable. */
  checks: Record<string, () => Promise<boolean>>;
}

const CHECK_TIMEOUT_MS = 1500;

async function settle(check: () => Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([check().catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** /healthz: the process answers. /readyz: the store and the media plane answer too (503 otherwise). */
export const opsRoutes: FastifyPluginAsyncTypebox<Readiness> = async (app, { checks }) => {
  app.get('/healthz', {
    config: { public: true },
    schema: { tags: ['operations'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    handler: async () => ({ status: 'ok' as const }),
  });
  app.get('/readyz', {
    config: { public: true },
    schema: {
      tags: ['operations'],
      response: {
        200: Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.Boolean()) }),
        503: Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.Boolean()) }),
      },
    },
    handler: async (_request, reply) => {
      const names = Object.keys(checks);
      const results = await Promise.all(names.map((name) => settle(checks[name]!)));
      const report = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
      const ready = results.every(Boolean);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: report });
    },
  });
  app.get('/openapi.json', {
    config: { public: true },
    schema: { hide: true },
    handler: async () => app.swagger(),
  });
};
