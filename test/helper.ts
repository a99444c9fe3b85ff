/**
 * Builds the broker and its app exactly as the process does (same config loader, same adapters),
 * over a temporary data dir, with the control-plane-only media adapter unless a test asks otherwise.
 */
import type { Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { loadConfig, type Config } from '../src/config.js';
import { createBroker, type Broker, type BrokerOverrides } from '../src/broker.js';
import { buildApp, type BrokerApp } from '../src/app.js';
import { createLogger } from '../src/logging.js';
import type { AgencyInput } from '../src/accounts/accounts-service.js';
import { findFreePort } from '../src/media/net-ports.js';

export interface TestBroker {
  app: BrokerApp;
  broker: Broker;
  config: Config;
  dataDir: string;
  adminPassword: string;
  adminToken: string;
  /** Logs in and returns the bearer token. */
  login(username: string, password: string): Promise<string>;
  /** Creates an agency (as platform-admin) with an admin and an operator; returns their tokens. */
  agency(input: Partial<AgencyInput> & { id: string }): Promise<{ adminToken: string; operatorToken: string; adminId: string; operatorId: string }>;
}

export const auth = (token: string) => ({ authorization: `Bearer ${token}` });

/** Both stores behind the port: tests that must hold for each run once per store. */
export const STORES = [{ BROKER_STORE: 'memory' }, { BROKER_STORE: 'redis' }] as const;

/** Removes every key a test wrote under its prefix on the shared Redis. */
export async function deleteRedisPrefix(prefix: string, url = 'redis://127.0.0.1:6379'): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.del(keys);
    }
  } finally {
    await client.close();
  }
}

export async function makeTempDir(t: Test, prefix = 'se-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function buildTestBroker(
  t: Test,
  options: { env?: Record<string, string>; config?: Partial<Config>; overrides?: BrokerOverrides; dataDir?: string; start?: boolean } = {},
): Promise<TestBroker> {
  const dataDir = options.dataDir ?? (await makeTempDir(t));
  const env = { ...options.env };
  if (env.BROKER_STORE === 'redis' && !env.BROKER_REDIS_PREFIX) {
    env.BROKER_REDIS_PREFIX = `t${randomBytes(6).toString('hex')}`;
    t.teardown(() => deleteRedisPrefix(env.BROKER_REDIS_PREFIX!));
  }
  // A broker reopened on the same data dir or Redis prefix passes the first one's password (config.adminPassword).
  const adminPassword = options.config?.adminPassword ?? randomBytes(12).toString('base64url');
  const config = loadConfig(
    // GB/T 28181 off unless a test asks for it: its default port (5060) is one for the whole machine.
    { BROKER_MEDIA: 'none', BROKER_DEMO: '0', BROKER_DATA_DIR: dataDir, BROKER_LOGIN_FAILURE_DELAY_MS: '0', BROKER_GB_SIP_PORT: '0', ...env },
    { adminPassword, logLevel: 'silent', ...options.config },
  );
  if (config.media === 'embedded') {
    // The broker runs here from sources; its media node child runs compiled, as the other children do.
    assertDistFresh();
    process.env.BROKER_MEDIA_NODE_COMPILED = '1';
  }
  const logger = createLogger({ level: config.logLevel });
  const broker = await createBroker(config, logger, options.overrides);
  await broker.accounts.bootstrap(config.adminPassword, () => adminPassword);
  const app = await buildApp(broker, config, logger);
  await app.ready();
  if (options.start) broker.start();
  t.teardown(async () => {
    await app.close();
    await broker.close();
  });

  const login = async (username: string, password: string) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password } });
    if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`);
    return res.json().token as string;
  };
  const adminToken = await login('admin', adminPassword);

  const agency: TestBroker['agency'] = async (input) => {
    const body = {
      name: input.name ?? `agency ${input.id}`,
      networks: input.networks ?? ['video', 'police', 'gov', 'interconnect'],
      classes: input.classes ?? [1, 2, 3],
      quotas: input.quotas ?? { forwarding: 100, analytics: 100 },
      ...(input.canPreempt !== undefined && { canPreempt: input.canPreempt }),
      id: input.id,
    };
    const created = await app.inject({ method: 'POST', url: '/api/v1/agencies', headers: auth(adminToken), payload: body });
    if (created.statusCode !== 201) throw new Error(`agency ${input.id}: ${created.statusCode} ${created.body}`);
    const tokens: string[] = [];
    const ids: string[] = [];
    for (const role of ['admin', 'operator'] as const) {
      const username = `${input.id}.${role}`.slice(0, 32);
      const password = randomBytes(12).toString('base64url');
      const res = await app.inject({
        method: 'POST',
        url: `/api/v1/agencies/${input.id}/users`,
        headers: auth(adminToken),
        payload: { username, password, role },
      });
      if (res.statusCode !== 201) throw new Error(`user ${username}: ${res.statusCode} ${res.body}`);
      ids.push(res.json().id);
      tokens.push(await login(username, password));
    }
    return { adminToken: tokens[0]!, operatorToken: tokens[1]!, adminId: ids[0]!, operatorId: ids[1]! };
  };

  return { app, broker, config, dataDir, adminPassword, adminToken, login, agency };
}

/** BROKER_* settings of a broker that runs its own media node child on free loopback ports. */
export async function embeddedMediaEnv(): Promise<Record<string, string>> {
  return {
    BROKER_MEDIA: 'embedded',
    BROKER_MEDIA_RTMP_PORT: String(await findFreePort()),
    BROKER_MEDIA_HTTP_PORT: String(await findFreePort()),
    BROKER_MEDIA_CONTROL_PORT: String(await findFreePort()),
  };
}

/**
 * Polls `check` until it holds; throws (failing the test, never hanging) when the deadline passes.
 * The one way tests wait: on a condition, never on a fixed sleep that decides an outcome. A check that
 * throws fails at once; wrap calls that may fail while a peer comes up (`.catch(() => false)`).
 */
export async function until(_t: Test, what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * Node arguments that run a script: an entry point of the project (`src/…/x.ts`) runs as deployed, compiled
 * from dist/, which also spares every child process tsx's start-up (about a second of CPU each); a test's
 * own fixture (`test/…`) runs through tsx. `npm test` compiles first (pretest); a test run straight through
 * `npx tap` after a source change is told to.
 */
export function nodeArgs(script: string): string[] {
  const compiled = /^src\/(.+)\.ts$/.exec(script);
  if (!compiled) return ['--import', 'tsx', script];
  assertDistFresh();
  return [join(projectRoot, 'dist', `${compiled[1]}.js`)];
}

let distChecked = false;
function assertDistFresh(): void {
  if (distChecked) return;
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((max, entry) => {
      const file = join(dir, entry.name);
      return Math.max(max, entry.isDirectory() ? newest(file) : statSync(file).mtimeMs);
    }, 0);
  let built = 0;
  try {
    built = statSync(join(projectRoot, 'dist/.tsbuildinfo')).mtimeMs;
  } catch {
    // never built
  }
  if (newest(join(projectRoot, 'src')) > built) {
    throw new Error('dist/ is older than src/: child processes run the compiled code, so run `npm run build` (npm test does it)');
  }
  distChecked = true;
}

/** Runs an entry point of the project (`src/cli/…`, `src/main.ts`) to its end, with its output. */
export function runScript(
  script: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs(script), ...args], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
