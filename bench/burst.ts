/**
 * A burst: 5,000 requests for forwarding slots arrive at once, for 5,000 distinct channels, against
 * the default pool of 3,000. Exactly 3,000 must be granted and the rest refused with 503 — on one
 * broker with the memory store, and on three brokers sharing one Redis prefix (requests dealt
 * round-robin), where only the Lua check-and-take keeps the limit. Baseline: the same 5,000
 * concurrent requests to a bare Fastify route.
 */
import { randomBytes } from 'node:crypto';
import { generateDemoCatalog } from '../src/core/demo-catalog.js';
import { dropRedisKeys, log, result, startServer, uniqueRedisPrefix, type Server } from './lib.js';
import { loopbackClient, percentile, type Answer } from './loopback-client.js';

const REQUESTS = 5000;
/** BROKER_FORWARDING_SLOTS left at its default. */
const SLOTS = 3000;
/** Requests per target before the burst, so the burst does not also measure JIT warm-up. */
const WARM_UP = 200;

interface BrokerInfo {
  port: number;
  pid: number;
  token: string;
  adminToken: string;
  channels: number;
  readyMs: number;
}

interface Target {
  port: number;
  token?: string;
}

interface BurstOutcome {
  wallMs: number;
  answers: Answer[];
}

/** Fires one request per channel (or per slot in `count`) all at once, dealt round-robin over the targets. */
async function fire(targets: Target[], count: number, request: (i: number) => { method: string; path: string; json?: unknown }): Promise<BurstOutcome> {
  const perTarget = Math.ceil(count / targets.length);
  const clients = targets.map((t) => loopbackClient(t.port, perTarget));
  try {
    // Open sessions' consoles already hold their connections: the burst is of requests, not of TCP handshakes.
    for (const client of clients) await client.preconnect(perTarget);
    for (const [i, client] of clients.entries()) {
      await Promise.all(Array.from({ length: WARM_UP }, () => client.send('GET', targets[i]!.token ? '/api/v1/capacity' : '/ping', { token: targets[i]!.token })));
    }
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const { method, path, json } = request(i);
        return clients[i % clients.length]!.send(method, path, { token: targets[i % targets.length]!.token, json });
      }),
    );
    return { wallMs: performance.now() - started, answers };
  } finally {
    for (const client of clients) client.close();
  }
}

interface BurstFigures {
  wallMs: number;
  granted: number;
  p50Ms: number;
  p99Ms: number;
}

/** Grants are 201, refusals 503 FORWARDING_CAPACITY_EXHAUSTED; anything else, or a wrong count, fails the run. */
function tally(label: string, { wallMs, answers }: BurstOutcome): { figures: BurstFigures; wrong?: string } {
  const byStatus = new Map<string, number>();
  for (const a of answers) {
    const key = a.status === 201 ? '201' : `${a.status} ${(JSON.parse(a.body) as { error?: { code?: string } }).error?.code ?? ''}`;
    byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
  }
  const granted = byStatus.get('201') ?? 0;
  const refused = byStatus.get('503 FORWARDING_CAPACITY_EXHAUSTED') ?? 0;
  const latencies = answers.map((a) => a.ms);
  const figures = { wallMs: Math.round(wallMs), granted, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
  log(`${label}: ${JSON.stringify(figures)}, answers ${JSON.stringify(Object.fromEntries(byStatus))}`);
  const wrong = granted !== SLOTS || refused !== REQUESTS - SLOTS ? `${label}: ${granted} granted and ${refused} refused, expected exactly ${SLOTS} and ${REQUESTS - SLOTS}` : undefined;
  return { figures, wrong };
}

async function forwardingUsed(port: number, adminToken: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/capacity`, { headers: { authorization: `Bearer ${adminToken}` } });
  return ((await res.json()) as { forwarding: { used: number } }).forwarding.used;
}

async function burstOn(label: string, brokers: Server<BrokerInfo>[], channels: string[]): Promise<BurstFigures> {
  const outcome = await fire(
    brokers.map((b) => ({ port: b.info.port, token: b.info.token })),
    REQUESTS,
    (i) => ({ method: 'POST', path: '/api/v1/streams', json: { channelId: channels[i], purpose: 'bench burst' } }),
  );
  const { figures, wrong } = tally(label, outcome);
  const used = await forwardingUsed(brokers[0]!.info.port, brokers[0]!.info.adminToken);
  log(`${label}: GET /capacity says ${used} forwarding slots used`);
  // Both figures are printed before failing, so a wrong count shows how it was wrong.
  if (wrong) throw new Error(wrong);
  if (used !== SLOTS) throw new Error(`${label}: GET /capacity says ${used} forwarding slots used, expected ${SLOTS}`);
  return figures;
}

export async function burstBench() {
  const bare = await startServer<{ port: number }>('bench/servers/bare.ts');
  let baselineMs: number;
  try {
    const outcome = await fire([{ port: bare.info.port }], REQUESTS, () => ({ method: 'GET', path: '/ping' }));
    if (outcome.answers.some((a) => a.status !== 200)) throw new Error('the bare route answered other than 200');
    baselineMs = outcome.wallMs;
    log(`bare fastify: ${REQUESTS} concurrent requests in ${Math.round(baselineMs)} ms, p99 ${percentile(outcome.answers.map((a) => a.ms), 99)} ms`);
  } finally {
    await bare.stop();
  }

  // Distinct online channels; the bench agency sees every class and network.
  const channels = generateDemoCatalog()
    .filter((c) => c.status === 'online')
    .slice(0, REQUESTS)
    .map((c) => c.id);

  const memoryBroker = await startServer<BrokerInfo>('bench/servers/broker.ts', { BROKER_STORE: 'memory' });
  let memory: BurstFigures;
  try {
    memory = await burstOn('memory, 1 broker', [memoryBroker], channels);
  } finally {
    await memoryBroker.stop();
  }

  const prefix = uniqueRedisPrefix('burst');
  const shared = { BROKER_STORE: 'redis', BROKER_REDIS_PREFIX: prefix, BENCH_ADMIN_PASSWORD: randomBytes(12).toString('base64url') };
  const brokers: Server<BrokerInfo>[] = [];
  let redis3: BurstFigures;
  try {
    // The first broker seeds the catalog into Redis; the others load it from there once it is complete.
    brokers.push(await startServer<BrokerInfo>('bench/servers/broker.ts', shared));
    for (let i = 1; i < 3; i++) brokers.push(await startServer<BrokerInfo>('bench/servers/broker.ts', { ...shared, BENCH_SEED: '0' }));
    log(`redis: 3 brokers ready in ${brokers.map((b) => b.info.readyMs).join(' / ')} ms with ${brokers.map((b) => b.info.channels).join(' / ')} channels`);
    redis3 = await burstOn('redis, 3 brokers', brokers, channels);
  } finally {
    await Promise.all(brokers.map((b) => b.stop()));
    log(`redis: deleted ${await dropRedisKeys(prefix)} keys of ${prefix}`);
  }

  result('burst', memory.wallMs, 'ms', baselineMs, { granted: memory.granted, p50Ms: memory.p50Ms, p99Ms: memory.p99Ms, redis3 });
}
