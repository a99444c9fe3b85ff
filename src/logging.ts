/**
 * The one way the project makes a logger (broker process, media node process, tests): pino with the
 * redaction that keeps every credential out of the logs (API.md "Conventions", STYLE.md 15).
 *
 * Three layers, because a credential can reach a log line three ways:
 * - `req` is serialized here, not by Fastify's default: the URL keeps its path but every
 *   credential-looking query parameter (`?token=`, `?key=`, `?access_token=`, …) is replaced, and
 *   the credential headers are dropped. Fastify's "incoming request" line logs `req.url` verbatim
 *   otherwise, and `/events?token=…` is how browsers authenticate the events socket.
 * - `redact` removes credential fields wherever objects put them (`*.password`, `*.token`, headers).
 * - every string logged (message, error message and stack) is scrubbed of `Bearer …` / `ApiKey …`
 *   values and credential query parameters, for the error that quotes a URL or a header.
 * Node's HTTP parse errors carry the raw request bytes (`rawPacket`, headers included): the error
 * serializer drops them.
 */
import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

const CENSOR = '[redacted]';

/** Query parameter names that carry credentials (matched case-insensitively, anywhere in the name). */
const CREDENTIAL_PARAM = /token|key|secret|pass(word)?|auth|sig(nature)?|credential|session|ticket|code/i;

/** Header names whose values are credentials. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-auth-token', 'x-media-secret'];

/** `?a=1&token=abc` → `?a=1&token=[redacted]`: the path and harmless parameters stay readable. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      let name = eq < 0 ? pair : pair.slice(0, eq);
      try {
        name = decodeURIComponent(name);
      } catch {
        // a name that does not decode is not trusted either
        return eq < 0 ? pair : `${pair.slice(0, eq)}=${CENSOR}`;
      }
      return eq >= 0 && CREDENTIAL_PARAM.test(name) ? `${pair.slice(0, eq)}=${CENSOR}` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

const SCHEME_VALUE = /\b(Bearer|ApiKey|Basic|Digest)(\s+)[^\s"',;]+/gi;
const QUERY_VALUE = /([?&;][^=&\s"'?#]*(?:token|key|secret|pass|auth|sig|credential|session|ticket|code)[^=&\s"'?#]*=)[^&\s"'#]+/gi;

/** Any text (a message, an error's stack): scheme credentials and credential query values replaced. */
export function scrubText(text: string): string {
  return text.replace(SCHEME_VALUE, `$1$2${CENSOR}`).replace(QUERY_VALUE, `$1${CENSOR}`);
}

function redactHeaders(headers: unknown): Record<string, unknown> | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    out[name] = CREDENTIAL_HEADERS.includes(name.toLowerCase()) ? CENSOR : value;
  }
  return out;
}

interface RequestLike {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, unknown>;
  socket?: { remoteAddress?: string; remotePort?: number };
}

/** Fastify's request fields (method, url, host, remote address and port), the URL redacted; no headers. */
export function serializeRequest(req: RequestLike): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
    host: req.host,
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
    remotePort: req.socket?.remotePort,
  };
}

/** pino's error serializer, without Node's raw request bytes, credentials scrubbed from its text. */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = stdSerializers.err(err) as unknown as Record<string, unknown>;
  delete out.rawPacket;
  for (const field of ['message', 'stack', 'url']) if (typeof out[field] === 'string') out[field] = scrubText(out[field]);
  if ('headers' in out) out.headers = redactHeaders(out.headers);
  return out;
}

export interface LoggerSettings {
  level: string;
  /** Fields on every line (e.g. `{ service: 'media-node' }`); pino's default pid/hostname otherwise. */
  base?: Record<string, unknown>;
}

/** Redaction paths: credential fields wherever an object logged carries them. */
const REDACT_PATHS = [
  ...['password', 'newPassword', 'currentPassword', 'token', 'apiKey', 'secret', 'authorization', 'auditSigningKey', 'privateKeyPem'].flatMap((f) => [f, `*.${f}`]),
  ...CREDENTIAL_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`]),
];

export function loggerOptions(settings: LoggerSettings): LoggerOptions {
  return {
    level: settings.level,
    ...(settings.base && { base: settings.base }),
    serializers: { req: serializeRequest, err: serializeError, error: serializeError },
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((a: unknown) => (typeof a === 'string' ? scrubText(a) : a)) as Parameters<typeof method>,
        );
      },
    },
  };
}

/** The project's logger; `destination` defaults to stdout (tests pass a stream they read). */
export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(settings), destination) : pino(loggerOptions(settings));
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type LogFn = (...args: unknown[]) => void;

/**
 * A request's logger (Fastify's `childLoggerFactory`) that becomes a pino child only when it writes a line.
 * pino's child() serialises and redacts its bindings at once: a sixth of a catalog query's CPU, for a
 * request that at the configured level usually writes nothing. The line written is the child's own, with
 * the same bindings (`reqId`), serializers, redaction and scrubbing.
 */
export class LazyChildLogger {
  private made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly ownBindings: Record<string, unknown>,
    private readonly options: { level?: string },
  ) {}

  private get real(): Logger {
    return (this.made ??= this.parent.child(this.ownBindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real.level = level;
  }

  isLevelEnabled(level: string): boolean {
    if (this.made) return this.made.isLevelEnabled(level);
    const values = this.parent.levels.values;
    const wanted = values[level];
    const threshold = values[this.level];
    return wanted !== undefined && threshold !== undefined && wanted >= threshold;
  }

  private write(level: LevelName, args: unknown[]): void {
    if (this.isLevelEnabled(level)) (this.real[level] as LogFn)(...args);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Record<string, unknown>, options?: { level?: string }): Logger {
    return this.real.child(bindings, options);
  }

  bindings(): Record<string, unknown> {
    return this.real.bindings();
  }
}
