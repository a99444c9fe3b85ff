/**
 * GET /channels with filters + bbox (limit 50) over the 86,000-channel catalog, against a bare
 * Fastify JSON route, same load generator, same run. Also: broker RSS with the catalog loaded.
 */
import autocannon from 'autocannon';
import { log, result, rssMb, startServer } from './lib.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;

export async function catalogBench() {
  const bare = await startServer<{ port: number }>('bench/servers/bare.ts');
  let baseline: number;
  try {
    const r = await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: DURATION });
    baseline = r.requests.average;
    log(`bare fastify: ${baseline} req/s, p99 ${r.latency.p99} ms`);
  } finally {
    await bare.stop();
  }

  const broker = await startServer<{ port: number; pid: number; token: string; channels: number; readyMs: number }>('bench/servers/broker.ts');
  try {
    const rss = rssMb(broker.info.pid);
    log(`broker: ${broker.info.channels} channels loaded, RSS ${rss} MB, ready in ${broker.info.readyMs} ms (seeding included)`);
    // Tianhe CBD area, class 1 + 2, online, one page of 50.
    const path = '/api/v1/channels?class=1&class=2&district=440106&status=online&bbox=113.30,23.10,113.40,23.16&limit=50';
    const headers = { authorization: `Bearer ${broker.info.token}` };
    const probe = await fetch(`http://127.0.0.1:${broker.info.port}${path}`, { headers });
    const page = (await probe.json()) as { items: unknown[]; total: number };
    log(`query answers ${probe.status}: ${page.items.length} items of ${page.total}`);
    if (probe.status !== 200 || page.items.length === 0) throw new Error('the benchmark query returns nothing: fix the query');
    const r = await autocannon({ url: `http://127.0.0.1:${broker.info.port}${path}`, connections: CONNECTIONS, duration: DURATION, headers });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx, ${r.errors} errors`);
    log(`broker GET /channels, one query repeated (paging, refresh: its total is cached): ${r.requests.average} req/s, p99 ${r.latency.p99} ms`);

    // Every request a viewport never asked before, so every total is counted afresh.
    let viewport = 0;
    const fresh = await autocannon({
      url: `http://127.0.0.1:${broker.info.port}`,
      connections: CONNECTIONS,
      duration: DURATION,
      headers,
      requests: [
        {
          method: 'GET',
          setupRequest: (req) => {
            const i = viewport++;
            const minLon = (113.25 + (i % 997) * 0.0001).toFixed(5);
            const minLat = (23.08 + (i % 991) * 0.0001).toFixed(5);
            const box = `${minLon},${minLat},${(Number(minLon) + 0.1).toFixed(5)},${(Number(minLat) + 0.06).toFixed(5)}`;
            return { ...req, path: `/api/v1/channels?class=1&class=2&district=440106&status=online&bbox=${box}&limit=50` };
          },
        },
      ],
    });
    if (fresh.non2xx > 0 || fresh.errors > 0) throw new Error(`${fresh.non2xx} non-2xx, ${fresh.errors} errors (fresh viewports)`);
    log(`broker GET /channels, a new viewport every request (${viewport} distinct, totals counted): ${fresh.requests.average} req/s, p99 ${fresh.latency.p99} ms`);
    result('catalog', r.requests.average, 'req/s', baseline, {
      rssMb: rssMb(broker.info.pid),
      p99Ms: r.latency.p99,
      uncached: { value: fresh.requests.average, ratio: Math.round((fresh.requests.average / baseline) * 100) / 100, p99Ms: fresh.latency.p99 },
    });
  } finally {
    await broker.stop();
  }
}
