/**
 * One error handler for the whole API: domain errors and Fastify's own errors become the error
 * shape of ../shared/API.md; anything unexpected becomes a generic 500 with no message leak,
 * logged with the request id.
 *
 * The shape also holds for what the HTTP layer answers before any route runs (API.md "Conventions"):
 * `clientErrorHandler` answers the requests Node's parser refuses (bad bytes or spaces in the URL,
 * headers too large, too slow) and `frameworkErrors` those Fastify's router refuses (bad %-encoding).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../core/errors.js';

const CODE_BY_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  417: 'EXPECTATION_FAILED',
  426: 'UPGRADE_REQUIRED',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
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

const REASON: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 417: 'Expectation Failed', 431: 'Request Header Fields Too Large' };

/** A complete HTTP/1.1 response in the error shape, for the places that write to the socket themselves. */
export function rawErrorResponse(status: number, code: string, message: string): string {
  const body = JSON.stringify(errorBody(code, message));
  return (
    `HTTP/1.1 ${status} ${REASON[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** Node's parser and timeout errors → status, code and a message that quotes nothing the client sent. */
function describeClientError(err: NodeJS.ErrnoException & { reason?: unknown }): { status: number; code: string; message: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'HEADERS_TOO_LARGE', message: 'request headers are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'REQUEST_TIMEOUT', message: 'the request did not arrive in time' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'chunk extensions are too large' };
    default: {
      // llhttp's reason names the rule broken ("Invalid method encountered"), never the bytes.
      const reason = typeof err.reason === 'string' && /^[\x20-\x7e]{1,100}$/.test(err.reason) ? `: ${err.reason}` : '';
      return { status: 400, code: 'BAD_REQUEST', message: `malformed HTTP request${reason}` };
    }
  }
}

/**
 * Fastify's `clientErrorHandler`: Node emits `clientError` for a request its parser refuses or that
 * overran `requestTimeout`/`headersTimeout`, before any route or hook. Like Node's own handler it answers
 * only when nothing of a response went out on the socket yet, then closes the connection. The error is
 * logged by its code only: Node attaches the raw request bytes (credentials included) to it.
 */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException & { reason?: unknown }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, code, message } = describeClientError(err);
  this.log.debug({ errCode: err.code, status }, 'client error');
  // Node's in-flight response on this socket (a timed-out body belongs to a request being read).
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) socket.write(rawErrorResponse(status, code, message));
  socket.destroy();
}

/** Fastify's `frameworkErrors`: the router refused the URL (bad %-encoding, a parameter too long). */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  request.log.info({ errCode: err.code }, 'malformed URL');
  const [status, code, message] =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? [414, 'URI_TOO_LONG', 'a path segment is too long']
      : err.code === 'FST_ERR_BAD_URL'
        ? [400, 'BAD_REQUEST', 'malformed URL (bad %-encoding)']
        : [500, 'INTERNAL', 'internal error'];
  void reply.code(status).header('x-request-id', request.id).send(errorBody(code, message));
}

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
  // Node answers an HTTP/1.1 request without Host with a bare 400 of its own (requireHostHeader); app.ts
  // turns that off so the answer has the error shape. Runs before authentication.
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new DomainError('BAD_REQUEST', 400, 'an HTTP/1.1 request needs a Host header');
    }
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, code, message, headers } = describe(err);
    // The actor is logged here rather than bound to every request's logger: a child logger per
    // request costs more than the catalog query it would describe.
    const actor = request.principal ? { actor: request.principal.id, agency: request.principal.agencyId } : {};
    // A domain error is an answer the broker chose (a full pool's 503, a silent camera's 504): worth a
    // line, not a stack. Only what nobody expected is logged as an error, with its stack.
    if (status >= 500 && !(err instanceof DomainError)) request.log.error({ err, ...actor }, 'request failed');
    else request.log.info({ code, status, ...actor }, message);
    if (headers) reply.headers(headers);
    return reply.code(status).send(errorBody(code, message));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' });
