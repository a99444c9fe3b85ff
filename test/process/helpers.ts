/**
 * Real processes for process-level tests: a private redis-server on a free port (so a test may
 * kill and restart it) and broker processes started the way `npm start` does (src/main.ts).
 */
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { makeTempDir, nodeArgs, until } from '../helper.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A child killed by a signal has signalCode set and exitCode null. */
const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;


export interface PrivateRedis {
  port: number;
  url: string;
  /** SIGKILL: an unclean failure. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (the append-only file brings the data back). */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open, commands pile up unanswered (a hung Redis). */
  freeze(): void;
  /** SIGCONT: it runs what piled up, late. */
  thaw(): void;
}

/** A redis-server of the test's own, with AOF fsync'd on every write so a kill loses nothing. */
export async function privateRedis(t: Test): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await makeTempDir(t, 'se-redis-');
  let child: ChildProcess | undefined;
  const ping = () =>
    new Promise<boolean>((resolve) => {
      const c = spawn('redis-cli', ['-p', String(port), 'ping']);
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('exit', () => resolve(out.trim() === 'PONG'));
    });
  const redis: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
      child = server;
      // The port was free a moment ago; another test may have taken it since. A PONG then comes from
      // that test's server, and sharing it would mix two tests' keys: only our own live server counts.
      await until(t, `redis-server on ${port}`, async () => {
        if (exited(server)) throw new Error(`redis-server could not start on port ${port} (taken by another test?)`);
        return (await ping()) && !exited(server);
      }, 10_000);
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async kill() {
      if (!child || exited(child)) return;
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
  await redis.start();
  t.teardown(() => redis.kill());
  return redis;
}

export interface BrokerProcess {
  port: number;
  url: string;
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `node --import tsx src/main.ts` with the given BROKER_* settings; resolves once /healthz answers. */
export async function startBroker(t: Test, env: Record<string, string>): Promise<BrokerProcess> {
  const port = await freePort();
  const dataDir = await makeTempDir(t, 'se-broker-');
  const child = spawn(process.execPath, nodeArgs('src/main.ts'), {
    cwd: root,
    env: { ...process.env, BROKER_PORT: String(port), BROKER_DATA_DIR: dataDir, BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_LOG_LEVEL: 'warn', BROKER_GB_SIP_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const broker: BrokerProcess = {
    port,
    url,
    child,
    output: () => output,
    kill: (signal = 'SIGKILL') =>
      new Promise((resolve) => {
        if (exited(child)) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
  t.teardown(() => broker.kill());
  await until(t, `broker on ${port}`, async () => {
    if (exited(child)) throw new Error(`broker exited: ${output}`);
    return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok === true;
  }, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
  return broker;
}

export async function api(base: string, method: string, path: string, token?: string, body?: unknown, contentType = 'application/json') {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': contentType }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : null };
}
