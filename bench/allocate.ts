/**
 * Allocate + release: one operator token, a new distinct channel each time (a new forwarding slot),
 * then DELETE — against a bare Fastify JSON route in the same run, and against a bare route that pays
 * what a grant's durability costs (bench/servers/durable.ts: one group-committed, fdatasync'ed journal line
 * per request on the embedded store; one EVALSHA plus one list append per request on Redis), with the same
 * connections and the same POST + DELETE pairs. Both requests of a pair count. The three loads take turns
 * in short rounds, so a shared machine's moving load falls on all of them alike.
 */
import autocannon, { type Result } from 'autocannon';
import { cpus, loadavg } from 'node:os';
import { generateDemoCatalog } from '../src/core/demo-catalog.js';
import { dropRedisKeys, log, result, startServer, uniqueRedisPrefix } from './lib.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 32;

/** Requests and seconds summed over the rounds; p99 the worst round's. */
class Tally {
  requests = 0;
  seconds = 0;
  p99 = 0;
  add(r: Result): Result {
    this.requests += r.requests.total;
    this.seconds += r.duration;
    this.p99 = Math.max(this.p99, r.latency.p99);
    return r;
  }
  get rate(): number {
    return Math.round((this.requests / this.seconds) * 10) / 10;
  }
}

/** POST then DELETE of what the POST created, on every connection, for one round. */
function pairs(port: number, post: string, body: () => string, del: (id: string) => string, headers: Record<string, string>, onGrant: (status: number) => void) {
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: DURATION / ROUNDS,
    headers,
    requests: [
      {
        method: 'POST',
        path: post,
        setupRequest: (req) => ({ ...req, body: body() }),
        onResponse: (status, text, context) => {
          onGrant(status);
          if (status === 201) context.id = (JSON.parse(text) as { id: string }).id;
        },
      },
      {
        method: 'DELETE',
        setupRequest: (req, context) => {
          const { 'content-type': _json, ...rest } = headers;
          return { ...req, path: del(String(context.id)), body: undefined, headers: rest };
        },
      },
    ],
  });
}

export async function allocateBench(store: 'memory' | 'redis') {
  const prefix = uniqueRedisPrefix('allocate');
  const env: Record<string, string> = { BROKER_STORE: store, BROKER_IDLE_CLOSE_SECONDS: '0' };
  if (store === 'redis') env.BROKER_REDIS_PREFIX = prefix;
  const bare = await startServer<{ port: number }>('bench/servers/bare.ts');
  const durable = await startServer<{ port: number }>('bench/servers/durable.ts', { BENCH_DURABLE: store, BENCH_REDIS_PREFIX: prefix });
  const broker = await startServer<{ port: number; token: string }>('bench/servers/broker.ts', env);
  try {
    const channels = generateDemoCatalog()
      .filter((c) => c.status === 'online')
      .map((c) => c.id);
    let next = 0;
    let granted = 0;
    let refused = 0;
    const json = { 'content-type': 'application/json' };
    const brokerHeaders = { authorization: `Bearer ${broker.info.token}`, ...json };
    const body = () => JSON.stringify({ channelId: channels[next++ % channels.length], purpose: 'bench allocate' });
    const ping = new Tally();
    const durableTally = new Tally();
    const brokerTally = new Tally();
    // Warm the load generator and all three servers first: a cold client understates what follows, and so
    // does a cold broker (its first round used to be spent compiling its request path; the baselines were warm).
    await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: 2 });
    await pairs(durable.info.port, '/grant', body, (id) => `/grant/${id}`, json, () => {});
    await pairs(broker.info.port, '/api/v1/streams', body, (id) => `/api/v1/streams/${id}`, brokerHeaders, () => {});
    for (let round = 0; round < ROUNDS; round++) {
      ping.add(await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: DURATION / ROUNDS }));
      const d = durableTally.add(await pairs(durable.info.port, '/grant', body, (id) => `/grant/${id}`, json, () => {}));
      if (d.non2xx > 0 || d.errors > 0) throw new Error(`durable baseline: ${d.non2xx} non-2xx, ${d.errors} errors`);
      brokerTally.add(
        await pairs(broker.info.port, '/api/v1/streams', body, (id) => `/api/v1/streams/${id}`, brokerHeaders, (status) => {
          if (status === 201) granted++;
          else refused++;
        }),
      );
    }
    log(`bare fastify /ping: ${ping.rate} req/s`);
    log(`durable baseline (${store === 'memory' ? 'one fdatasync\'ed journal line' : 'one EVALSHA + one RPUSH'} per request, POST + DELETE): ${durableTally.rate} req/s, p99 ${durableTally.p99} ms`);
    log(`broker (${store}) allocate+release: ${brokerTally.rate} req/s, p99 ${brokerTally.p99} ms; ${granted} granted, ${refused} refused`);
    log(`(${ROUNDS} interleaved rounds of ${DURATION / ROUNDS} s per load; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores)`);
    if (granted === 0) throw new Error('nothing was granted');
    result(store === 'memory' ? 'allocate' : 'allocate-redis', brokerTally.rate, 'req/s', ping.rate, {
      granted,
      refused,
      p99Ms: brokerTally.p99,
      durableBaseline: { value: durableTally.rate, ratio: Math.round((brokerTally.rate / durableTally.rate) * 100) / 100, p99Ms: durableTally.p99 },
    });
  } finally {
    await broker.stop();
    await durable.stop();
    await bare.stop();
    if (store === 'redis') log(`redis: deleted ${await dropRedisKeys(prefix)} keys of ${prefix}`);
  }
}
