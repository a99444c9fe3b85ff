/**
 * One error handler for the whole API: domain errors and Fastify's own errors become the error
 * shape of ../shared/API.md; anything unexpected becomes a generic 500 with no message leak,
 * logged with the request id.
 */
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance } from 'fastify';
import { DomainError } from '../../core/errors.js';

const CODE_BY_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  503: 'UNAVAILABLE',
};

/** Fastify error codes that are the client's fault, with the status we answer. */
const FASTIFY_CLIENT_ERRORS: Record<string, number> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 415,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 400,
  FST_ERR_CTP_BODY_TOO_LARGE: 413,
  FST_ERR_CTP_EMPTY_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_JSON_BODY: 400,
  FST_ERR_VALIDATION: 400,
};

export interface ErrorBody {
  error: { code: string; message: string };
}

export const errorBody = (code: string, message: string): ErrorBody => ({ error: { code, message } });

function describe(err: FastifyError): { status: number; code: string; message: string; headers?: Record<string, string> } {
  if (err instanceof DomainError) return { status: err.status, code: err.code, message: err.message, headers: err.headers };
  if (err.validation) return { status: 400, code: 'BAD_REQUEST', message: err.message };
  const known = err.code ? FASTIFY_CLIENT_ERRORS[err.code] : undefined;
  if (known) return { status: known, code: CODE_BY_STATUS[known]!, message: err.message };
  // secure-json-parse (prototype poisoning) and JSON syntax errors carry a 400 statusCode.
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { status, code: CODE_BY_STATUS[status] ?? 'BAD_REQUEST', message: err.message };
  }
  if (status === 503) return { status, code: 'UNAVAILABLE', message: 'service unavailable, try again' };
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, code, message, headers } = describe(err);
    // The actor is logged here rather than bound to every request's logger: a child logger per
    // request costs more than the catalog query it would describe.
    const actor = request.principal ? { actor: request.principal.id, agency: request.principal.agencyId } : {};
    if (status >= 500) request.log.error({ err, ...actor }, 'request failed');
    else request.log.info({ code, status, ...actor }, message);
    if (headers) reply.headers(headers);
    return reply.code(status).send(errorBody(code, message));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' });
