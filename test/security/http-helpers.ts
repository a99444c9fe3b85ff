/**
 * A broker on a real listening port, built like main.ts builds it (same config loader, the project's
 * logger, same app), for what app.inject cannot do: raw bytes on a socket, timeouts, upgrades, and the
 * log lines a real request writes.
 */
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config.js';
import { createBroker, type Broker } from '../../src/broker.js';
import { buildApp, type BrokerApp } from '../../src/app.js';
import { createLogger } from '../../src/logging.js';
import { makeTempDir } from '../helper.js';

export interface ListeningBroker {
  app: BrokerApp;
  broker: Broker;
  config: Config;
  port: number;
  base: string;
  adminPassword: string;
  /** Every log line written so far (when a log level was asked for). */
  logText(): string;
}

export async function listenBroker(t: Test, options: { env?: Record<string, string>; logLevel?: Config['logLevel'] } = {}): Promise<ListeningBroker> {
  const dataDir = await makeTempDir(t);
  const adminPassword = randomBytes(12).toString('base64url');
  const config = loadConfig(
    { BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_DATA_DIR: dataDir, BROKER_LOGIN_FAILURE_DELAY_MS: '0', BROKER_PORT: '0', BROKER_GB_SIP_PORT: '0', ...options.env },
    { adminPassword, logLevel: options.logLevel ?? 'silent' },
  );
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ level: config.logLevel }, sink);
  const broker = await createBroker(config, logger);
  await broker.accounts.bootstrap(config.adminPassword, () => adminPassword);
  const app = await buildApp(broker, config, logger);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await app.close();
    await broker.close();
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, broker, config, port, base: `http://127.0.0.1:${port}`, adminPassword, logText: () => chunks.join('') };
}

/** A raw TCP connection that records what the server sends and when it closes. */
export interface RawClient {
  socket: Socket;
  received(): string;
  closed: boolean;
  /** Resolves once the server closed the connection (or reset it). */
  whenClosed: Promise<void>;
}

export async function rawConnect(port: number): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const data: Buffer[] = [];
  const client: RawClient = {
    socket,
    received: () => Buffer.concat(data).toString('latin1'),
    closed: false,
    whenClosed: new Promise<void>((resolve) => {
      socket.on('close', () => {
        client.closed = true;
        resolve();
      });
    }),
  };
  socket.on('data', (d: Buffer) => data.push(d));
  socket.on('error', () => undefined);
  return client;
}

/** One raw request (bytes as given) on a fresh connection; resolves with everything the server sent once it closes. */
export async function rawRequest(port: number, bytes: Buffer | string, timeoutMs = 10_000): Promise<string> {
  const client = await rawConnect(port);
  client.socket.write(bytes);
  const timer = setTimeout(() => client.socket.destroy(), timeoutMs);
  await client.whenClosed;
  clearTimeout(timer);
  return client.received();
}

/** Status line and JSON body of a raw HTTP/1.1 response text (first response only). */
export function parseResponse(text: string): { status: number; headers: Record<string, string>; body: string; json: unknown } {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (headers['content-length'] !== undefined) body = body.slice(0, Number(headers['content-length']));
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status, headers, body, json };
}
