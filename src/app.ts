/**
 * buildApp(deps): the Fastify app as a plugin tree. No listen, no signals, no process concerns —
 * main.ts owns those, and tests build the app with exactly these options.
 * @see https://github.com/fastify/demo (src/app.ts vs src/server.ts)
 */
import Fastify from 'fastify';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.js';
import { LazyChildLogger } from './logging.js';
import errorsPlugin, { clientErrorHandler, errorBody, frameworkErrors } from './http/plugins/errors.js';
import authPlugin from './http/plugins/auth.js';
import { ErrorResponse } from './http/schemas/common.js';
import { Agency, ServiceAccount, User } from './http/schemas/accounts.js';
import { Channel } from './http/schemas/channels.js';
import { Reservation, Stream } from './http/schemas/streams.js';
import { authRoutes } from './http/routes/auth.js';
import { agencyRoutes } from './http/routes/agencies.js';
import { channelRoutes } from './http/routes/channels.js';
import { streamRoutes } from './http/routes/streams.js';
import { auditRoutes } from './http/routes/audit.js';
import { opsRoutes } from './http/routes/ops.js';
import { consoleRoutes } from './http/routes/console.js';
import metricsPlugin from './http/plugins/metrics.js';
import { eventRoutes } from './http/routes/events.js';
import { reportRoutes } from './http/routes/reports.js';
import { gbDeviceRoutes } from './http/routes/gb-devices.js';
import { GbDevice } from './http/schemas/gb-devices.js';
import type { Broker } from './broker.js';
import AjvCompiler from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { lazyCompilers } from './http/lazy-compilers.js';

/** Fastify's own compiler factories, made once: pools keyed by the shared schemas and options (see buildApp). */
// Each route's schemas compile when the route is first used (lazy-compilers.ts), not all of them at start-up.
const SHARED_COMPILERS = lazyCompilers({ buildValidator: AjvCompiler(), buildSerializer: SerializerSelector() });

export const API_PREFIX = '/api/v1';

/** Client-chosen request ids are accepted only when they look like ids (they end up in logs). */
const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/**
 * Bounded connection time (API.md "Conventions"), on Node's HTTP server: a request must arrive in full
 * within `requestTimeout` (checked every `connectionsCheckingInterval`; a trickled body or header gets 408),
 * its headers — and a new connection's first request — within `headersTimeout`; an idle keep-alive
 * connection closes after `keepAliveTimeout`; a connection with no traffic at all for `socketIdle` closes
 * even mid-request. None of these reach an events WebSocket: Node hands the socket over on upgrade and
 * ws turns the socket timeout off.
 */
export function serverTimeouts(config: Pick<Config, 'requestTimeoutSeconds' | 'keepaliveTimeoutSeconds' | 'headersTimeoutSeconds' | 'socketIdleTimeoutSeconds'>) {
  const requestMs = config.requestTimeoutSeconds * 1000;
  const headersMs = Math.min(config.headersTimeoutSeconds * 1000, requestMs);
  return {
    requestMs,
    headersMs,
    keepAliveMs: config.keepaliveTimeoutSeconds * 1000,
    socketIdleMs: config.socketIdleTimeoutSeconds * 1000,
    // Node's default (30 s) would let a 30 s limit run to 60 s; a quarter of the shortest limit, at most 1 s.
    checkIntervalMs: Math.max(100, Math.min(1000, Math.floor(headersMs / 4))),
  };
}

export async function buildApp(broker: Broker, config: Config, logger: Logger) {
  const timeouts = serverTimeouts(config);
  const app = Fastify({
    loggerInstance: logger,
    // request.log becomes a pino child only when the request writes a line (most write none).
    childLoggerFactory: (parent, bindings, options) => new LazyChildLogger(parent as Logger, bindings, options) as unknown as Logger,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionTimeout: timeouts.socketIdleMs,
    http: {
      requestTimeout: timeouts.requestMs,
      headersTimeout: timeouts.headersMs,
      keepAliveTimeout: timeouts.keepAliveMs,
      connectionsCheckingInterval: timeouts.checkIntervalMs,
      maxHeaderSize: config.maxHeaderBytes,
      // Node would answer a missing Host with a bare 400; the errors plugin answers it in the error shape.
      requireHostHeader: false,
    },
    clientErrorHandler,
    frameworkErrors,
    bodyLimit: config.bodyLimitBytes,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: 'x-request-id',
    genReqId: (req) => {
      const offered = req.headers['x-request-id'];
      return typeof offered === 'string' && REQUEST_ID.test(offered) ? offered : randomUUID();
    },
    ajv: {
      // Unknown fields are an error (API.md), never silently dropped; repeated query params become arrays.
      customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true },
    },
    return503OnClosing: true,
    // One pool of compilers for the process: every app this process builds (tests build hundreds) reuses the
    // validators and serializers compiled for the same schemas instead of compiling them again.
    schemaController: { compilersFactory: SHARED_COMPILERS },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // At most this many sockets at once (Node closes the ones beyond); idle ones are closed by the timeouts above.
  app.server.maxConnections = config.maxConnections;
  // `Expect:` other than 100-continue: Node would answer a bare 417.
  app.server.on('checkExpectation', (_req, res) => {
    const body = JSON.stringify(errorBody('EXPECTATION_FAILED', 'only Expect: 100-continue is supported'));
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });

  // The API speaks JSON (and the import route its own two types): plain text is a 415, not a string body.
  app.removeContentTypeParser('text/plain');

  // A callback hook, not an async one: no promise per response for one header.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });

  for (const schema of [ErrorResponse, Agency, User, ServiceAccount, Channel, Stream, Reservation, GbDevice]) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Sharp Eyes broker', description: 'Video-sharing broker for a city Sharp Eyes platform (API v1)', version: '1.0.0' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'ApiKey <key>' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  // swagger-ui registers its own routes; they are public (documentation only).
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) route.config = { ...(route.config as object), public: true };
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' }, staticCSP: true });
  await app.register(websocket, { options: { maxPayload: config.wsMaxPayloadBytes } });
  await app.register(errorsPlugin);
  await app.register(authPlugin, { authenticator: broker.accounts });
  await app.register(metricsPlugin, { slots: broker.slots, media: broker.media, audit: broker.audit, apiPrefix: API_PREFIX, token: config.metricsToken });

  const readiness = { checks: { store: () => broker.storeReady(), media: () => broker.media.ready() } };
  await app.register(opsRoutes, readiness);
  await app.register(
    async (api) => {
      await api.register(opsRoutes, readiness);
      await api.register(authRoutes, { accounts: broker.accounts });
      await api.register(agencyRoutes, { accounts: broker.accounts });
      await api.register(channelRoutes, { catalog: broker.catalog, importBodyLimitBytes: config.importBodyLimitBytes });
      await api.register(streamRoutes, { streams: broker.streams, analytics: broker.analytics });
      await api.register(auditRoutes, { audit: broker.audit, access: broker.access });
      await api.register(eventRoutes, { events: broker.events, slots: broker.slots, access: broker.access, config, authenticator: broker.accounts });
      await api.register(reportRoutes, { audit: broker.audit, access: broker.access });
      await api.register(gbDeviceRoutes, { gb: broker.gb });
    },
    { prefix: API_PREFIX },
  );
  // The operator console (web/) at `/`: public static files that use the API above.
  await app.register(consoleRoutes);
  return app;
}

export type BrokerApp = Awaited<ReturnType<typeof buildApp>>;
