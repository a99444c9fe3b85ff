/**
 * Domain errors carry the public error code and HTTP status of ../shared/API.md. The HTTP layer
 * renders them as {"error": {"code", "message"}}; anything else becomes a generic 500.
 */
export class DomainError extends Error {
  readonly code: string;
  readonly status: number;
  /** Extra response headers, e.g. Retry-After. */
  readonly headers: Record<string, string>;

  /**
   * No stack trace: a domain error is an answer (a refused grant, a 404), never logged with a stack, and
   * capturing one cost more than the rest of a refusal in an emergency burst of thousands.
   */
  constructor(code: string, status: number, message: string, headers: Record<string, string> = {}) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.code = code;
    this.status = status;
    this.headers = headers;
    this.name = 'DomainError';
  }
}

export const badRequest = (message: string, code = 'BAD_REQUEST') => new DomainError(code, 400, message);
export const unauthenticated = (message = 'authentication required', code = 'UNAUTHENTICATED') =>
  new DomainError(code, 401, message);
export const forbidden = (message = 'your role may not do this') => new DomainError('FORBIDDEN', 403, message);
export const notFound = (what = 'resource') => new DomainError('NOT_FOUND', 404, `${what} not found`);
export const conflict = (message: string, code = 'CONFLICT') => new DomainError(code, 409, message);
export const rateLimited = (message: string, retryAfterSeconds: number) =>
  new DomainError('RATE_LIMITED', 429, message, { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) });
export const unavailable = (message = 'the store is unavailable, try again') => new DomainError('UNAVAILABLE', 503, message);
