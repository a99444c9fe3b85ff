/**
 * Allocate + release: one operator token, a new distinct channel each time (a new forwarding slot),
 * then DELETE — against a bare Fastify JSON route in the same run. Both requests of a pair count.
 */
import autocannon from 'autocannon';
import { generateDemoCatalog } from '../src/core/demo-catalog.js';
import { dropRedisKeys, log, result, startServer, uniqueRedisPrefix } from './lib.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;

export async function allocateBench(store: 'memory' | 'redis') {
  const bare = await startServer<{ port: number }>('bench/servers/bare.ts');
  let baseline: number;
  try {
    // Warm the load generator first: a cold client understates the baseline.
    await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: 3 });
    baseline = (await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: DURATION })).requests.average;
    log(`bare fastify: ${baseline} req/s`);
  } finally {
    await bare.stop();
  }

  const prefix = uniqueRedisPrefix('allocate');
  const env: Record<string, string> = { BROKER_STORE: store, BROKER_IDLE_CLOSE_SECONDS: '0' };
  if (store === 'redis') env.BROKER_REDIS_PREFIX = prefix;
  const broker = await startServer<{ port: number; token: string }>('bench/servers/broker.ts', env);
  try {
    const channels = generateDemoCatalog()
      .filter((c) => c.status === 'online')
      .map((c) => c.id);
    let next = 0;
    let granted = 0;
    let refused = 0;
    const headers = { authorization: `Bearer ${broker.info.token}`, 'content-type': 'application/json' };
    const r = await autocannon({
      url: `http://127.0.0.1:${broker.info.port}`,
      connections: CONNECTIONS,
      duration: DURATION,
      headers,
      requests: [
        {
          method: 'POST',
          path: '/api/v1/streams',
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ channelId: channels[next++ % channels.length], purpose: 'bench allocate' }) }),
          onResponse: (status, body, context) => {
            if (status === 201) {
              granted++;
              context.id = (JSON.parse(body) as { id: string }).id;
            } else refused++;
          },
        },
        {
          method: 'DELETE',
          setupRequest: (req, context) => ({ ...req, path: `/api/v1/streams/${String(context.id)}`, body: undefined, headers: { authorization: headers.authorization } }),
        },
      ],
    });
    log(`broker (${store}) allocate+release: ${r.requests.average} req/s, p99 ${r.latency.p99} ms; ${granted} granted, ${refused} refused, non-2xx ${r.non2xx}`);
    if (granted === 0) throw new Error('nothing was granted');
    result(store === 'memory' ? 'allocate' : 'allocate-redis', r.requests.average, 'req/s', baseline, { granted, refused, p99Ms: r.latency.p99 });
  } finally {
    await broker.stop();
    if (store === 'redis') log(`redis: deleted ${await dropRedisKeys(prefix)} keys of ${prefix}`);
  }
}
