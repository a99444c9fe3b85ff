/**
 * SIP messages (RFC 3261 §7): a bounded parser and a serializer of our own. Nothing a peer sends is
 * trusted: the whole message, the number of headers and every header line are bounded, Content-Length
 * is never believed beyond the bytes that arrived, and a malformed message is a `{ok: false}` result
 * (answered 400 when enough of it parsed to answer, dropped otherwise), never an exception.
 * Bodies stay bytes: MANSCDP bodies are GB2312 or UTF-8 and manscdp.ts decodes them.
 * @see https://www.rfc-editor.org/rfc/rfc3261#section-7
 */

export interface SipLimits {
  /** Bytes of one message, start line to body end (BROKER_GB_SIP_MAX_MESSAGE_BYTES). */
  maxMessageBytes: number;
  /** Header lines of one message (BROKER_GB_SIP_MAX_HEADERS). */
  maxHeaders: number;
}

export const DEFAULT_SIP_LIMITS: SipLimits = { maxMessageBytes: 65_535, maxHeaders: 64 };

/** RFC 3261 §7.3.3 compact forms → full names (lowercase). */
const COMPACT: Readonly<Record<string, string>> = {
  v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type',
  k: 'supported', s: 'subject', e: 'content-encoding', o: 'event', u: 'allow-events',
};

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const METHOD = /^[A-Z]{2,16}$/;
const REQUEST_URI = /^(sips?|tel):[\x21-\x7e]{1,500}$/;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Header fields in arrival order; names are matched case-insensitively and compact forms expanded. */
export class SipHeaders {
  private readonly fields: Array<[string, string]> = [];

  static of(entries: ReadonlyArray<readonly [string, string | number]>): SipHeaders {
    const headers = new SipHeaders();
    for (const [name, value] of entries) headers.add(name, String(value));
    return headers;
  }

  add(name: string, value: string): this {
    this.fields.push([name, value]);
    return this;
  }

  /** Replaces every field of that name with one. */
  set(name: string, value: string): this {
    this.delete(name);
    return this.add(name, value);
  }

  delete(name: string): void {
    const key = canonical(name);
    for (let i = this.fields.length - 1; i >= 0; i--) if (canonical(this.fields[i]![0]) === key) this.fields.splice(i, 1);
  }

  get(name: string): string | undefined {
    const key = canonical(name);
    return this.fields.find(([n]) => canonical(n) === key)?.[1];
  }

  /** Every value of the header, comma-separated lists split (outside quotes and angle brackets). */
  getAll(name: string): string[] {
    const key = canonical(name);
    return this.fields.filter(([n]) => canonical(n) === key).flatMap(([, v]) => splitList(v));
  }

  entries(): ReadonlyArray<readonly [string, string]> {
    return this.fields;
  }

  get size(): number {
    return this.fields.length;
  }
}

export interface SipRequest {
  kind: 'request';
  method: string;
  uri: string;
  headers: SipHeaders;
  body: Buffer;
}

export interface SipResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

export type ParseResult =
  | { ok: true; message: SipMessage }
  /**
   * `request` is set when the start line and headers of a request parsed far enough to answer it
   * (Via, From, To, Call-ID, CSeq present): the caller answers 400 with `reason`.
   */
  | { ok: false; reason: string; request?: SipRequest };

function canonical(name: string): string {
  const lower = name.toLowerCase();
  return COMPACT[lower] ?? lower;
}

/** Splits `a, b;x="1,2", <sip:c,d>` at top-level commas. */
export function splitList(value: string): string[] {
  const parts: string[] = [];
  let depthAngle = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depthAngle++;
    else if (ch === '>') depthAngle = Math.max(0, depthAngle - 1);
    else if (ch === ',' && depthAngle === 0) {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts.filter((p) => p.length > 0);
}

/** Offset of the blank line ending the headers (CRLFCRLF, or a bare LFLF from lenient peers) and its length. */
export function headerEnd(buf: Buffer, from = 0, limit = buf.length): { at: number; length: number } | undefined {
  const end = Math.min(limit, buf.length);
  for (let i = from; i < end - 1; i++) {
    if (buf[i] !== 0x0a) continue;
    if (buf[i + 1] === 0x0a) return { at: i - (i > 0 && buf[i - 1] === 0x0d ? 1 : 0), length: buf[i - 1] === 0x0d ? 3 : 2 };
    if (buf[i + 1] === 0x0d && i + 2 < end && buf[i + 2] === 0x0a) {
      const crBefore = i > 0 && buf[i - 1] === 0x0d;
      return { at: crBefore ? i - 1 : i, length: crBefore ? 4 : 3 };
    }
  }
  return undefined;
}

/**
 * Parses one message from `buf` (one UDP datagram, or one frame the TCP framer cut). The body is the
 * Content-Length bytes after the headers; fewer bytes than it claims is a malformed message, more are
 * ignored (RFC 3261 §18.3). Without Content-Length (UDP only), the body is the rest of the datagram.
 */
export function parseSipMessage(buf: Buffer, limits: SipLimits = DEFAULT_SIP_LIMITS): ParseResult {
  if (buf.length > limits.maxMessageBytes) return { ok: false, reason: `message over ${limits.maxMessageBytes} bytes` };
  const end = headerEnd(buf);
  if (!end) return { ok: false, reason: 'no blank line after the headers' };
  // Headers are ASCII by the grammar; a display name in UTF-8 passes through latin1 and back unchanged.
  const head = buf.subarray(0, end.at).toString('latin1');
  const lines = head.split(/\r?\n/);
  const startLine = lines.shift() ?? '';
  const headers = new SipHeaders();
  for (const line of lines) {
    if (line.length === 0) return { ok: false, reason: 'empty header line' };
    if (line[0] === ' ' || line[0] === '\t') {
      // Folded continuation of the previous header (RFC 3261 §7.3.1).
      const entries = headers.entries() as Array<[string, string]>;
      const last = entries[entries.length - 1];
      if (!last) return { ok: false, reason: 'continuation line before any header' };
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    if (headers.size >= limits.maxHeaders) return { ok: false, reason: `more than ${limits.maxHeaders} headers` };
    const colon = line.indexOf(':');
    if (colon <= 0) return { ok: false, reason: 'header line without a name' };
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) return { ok: false, reason: 'header name is not a token' };
    if (CONTROL.test(value)) return { ok: false, reason: `header ${name} has control characters` };
    headers.add(name, value);
  }

  const rest = buf.subarray(end.at + end.length);
  const lengthHeader = headers.get('content-length');
  let body: Buffer;
  let bodyProblem: string | undefined;
  if (lengthHeader === undefined) {
    body = rest;
  } else if (!/^[0-9]{1,9}$/.test(lengthHeader)) {
    body = Buffer.alloc(0);
    bodyProblem = 'Content-Length is not a number';
  } else {
    const length = Number(lengthHeader);
    if (length > rest.length) {
      body = Buffer.alloc(0);
      bodyProblem = `Content-Length ${length} but ${rest.length} bytes arrived`;
    } else body = Buffer.from(rest.subarray(0, length));
  }

  const status = /^SIP\/2\.0 ([1-6][0-9]{2}) ?(.*)$/.exec(startLine);
  if (status) {
    if (bodyProblem) return { ok: false, reason: bodyProblem };
    const problem = missingCoreHeader(headers);
    if (problem) return { ok: false, reason: problem };
    return { ok: true, message: { kind: 'response', status: Number(status[1]), reason: status[2] ?? '', headers, body } };
  }
  const request = /^([A-Za-z]+) (\S+) SIP\/2\.0$/.exec(startLine);
  if (!request) return { ok: false, reason: 'not a SIP start line' };
  const method = request[1]!;
  const uri = request[2]!;
  const parsed: SipRequest = { kind: 'request', method, uri, headers, body };
  const problem = missingCoreHeader(headers);
  if (problem) return { ok: false, reason: problem };
  if (!METHOD.test(method)) return { ok: false, reason: 'method is not upper-case letters', request: parsed };
  if (!REQUEST_URI.test(uri)) return { ok: false, reason: 'Request-URI is not a sip: URI', request: parsed };
  const cseq = parseCSeq(headers.get('cseq'));
  if (!cseq) return { ok: false, reason: 'CSeq is not "number METHOD"', request: parsed };
  if (cseq.method !== method && method !== 'ACK' && method !== 'CANCEL') {
    return { ok: false, reason: 'CSeq method differs from the request method', request: parsed };
  }
  if (bodyProblem) return { ok: false, reason: bodyProblem, request: parsed };
  return { ok: true, message: parsed };
}

function missingCoreHeader(headers: SipHeaders): string | undefined {
  for (const name of ['via', 'from', 'to', 'call-id', 'cseq']) {
    if (!headers.get(name)) return `missing ${name} header`;
  }
  return undefined;
}

/** Serializes with a Content-Length that is always the body's real length. */
export function serializeSipMessage(message: SipMessage): Buffer {
  const startLine = message.kind === 'request' ? `${message.method} ${message.uri} SIP/2.0` : `SIP/2.0 ${message.status} ${message.reason}`;
  const lines = [startLine];
  for (const [name, value] of message.headers.entries()) {
    if (canonical(name) === 'content-length') continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push(`Content-Length: ${message.body.length}`, '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'utf8'), message.body]);
}

// ---------------------------------------------------------------------------------------------
// Header values.
// ---------------------------------------------------------------------------------------------

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string | undefined): CSeq | undefined {
  const match = value === undefined ? null : /^([0-9]{1,10})\s+([A-Za-z]{2,16})$/.exec(value);
  if (!match) return undefined;
  const seq = Number(match[1]);
  return seq < 2 ** 31 ? { seq, method: match[2]!.toUpperCase() } : undefined;
}

/** `;a=b;c` parameters, lowercase names, quotes removed. */
export function parseParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of text.split(';')) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    const name = (eq < 0 ? trimmed : trimmed.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : unquote(trimmed.slice(eq + 1).trim());
    params.set(name, value);
  }
  return params;
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}

export interface SipUri {
  scheme: string;
  user: string;
  host: string;
  port?: number;
  params: Map<string, string>;
}

export function parseSipUri(text: string): SipUri | undefined {
  const match = /^(sips?):(?:([^@;?]+)@)?(\[[0-9a-fA-F:.]+\]|[^:;?]+)(?::([0-9]{1,5}))?((?:;[^?]*)?)/.exec(text.trim());
  if (!match) return undefined;
  const port = match[4] === undefined ? undefined : Number(match[4]);
  if (port !== undefined && port > 65535) return undefined;
  return { scheme: match[1]!, user: (match[2] ?? '').split(':')[0]!, host: match[3]!, port, params: parseParams(match[5] ?? '') };
}

export interface NameAddr {
  display: string;
  uri: string;
  parsed?: SipUri;
  params: Map<string, string>;
}

/** From, To, Contact: `"name" <sip:u@h>;tag=x` or `sip:u@h;tag=x`. */
export function parseNameAddr(value: string | undefined): NameAddr | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const lt = text.indexOf('<');
  if (lt >= 0) {
    const gt = text.indexOf('>', lt);
    if (gt < 0) return undefined;
    const uri = text.slice(lt + 1, gt).trim();
    return { display: unquote(text.slice(0, lt).trim()), uri, parsed: parseSipUri(uri), params: parseParams(text.slice(gt + 1)) };
  }
  // Without angle brackets, parameters after the URI belong to the header (RFC 3261 §20.10).
  const semi = text.indexOf(';');
  const uri = semi < 0 ? text : text.slice(0, semi);
  return { display: '', uri, parsed: parseSipUri(uri), params: parseParams(semi < 0 ? '' : text.slice(semi)) };
}

export interface Via {
  transport: string;
  host: string;
  port?: number;
  params: Map<string, string>;
}

export function parseVia(value: string | undefined): Via | undefined {
  const match = value === undefined ? null : /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9a-fA-F:.]+\]|[^\s:;]+)(?::([0-9]{1,5}))?\s*(.*)$/.exec(value.trim());
  if (!match) return undefined;
  return { transport: match[1]!.toUpperCase(), host: match[2]!, port: match[3] === undefined ? undefined : Number(match[3]), params: parseParams(match[4] ?? '') };
}

/** `Digest a="b", c=d` (WWW-Authenticate, Authorization). Names lowercase, quotes removed. */
export function parseDigest(value: string | undefined): Map<string, string> | undefined {
  if (value === undefined) return undefined;
  const match = /^Digest\s+(.*)$/is.exec(value.trim());
  if (!match) return undefined;
  const params = new Map<string, string>();
  for (const part of splitList(match[1]!)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    params.set(part.slice(0, eq).trim().toLowerCase(), unquote(part.slice(eq + 1).trim()));
  }
  return params;
}
