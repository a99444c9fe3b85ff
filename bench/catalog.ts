/**
 * GET /channels with filters + bbox (limit 50) over the 86,000-channel catalog, against a bare
 * Fastify JSON route — and, to show what the page size alone costs, against a bare route answering
 * a page of the same 50 channels. Same load generator, same run.
 *
 * The broker is the real process (`node dist/main.js`, as `npm start` runs it): a first start seeds
 * the demo catalog, a second start on the same data dir loads it from the journal; both are timed,
 * and the resident memory of the second (the catalog loaded, no seeding garbage) is reported.
 */
import autocannon, { type Result } from 'autocannon';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { log, result, root, rssMb, startServer } from './lib.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;
const PORT = Number(process.env.BENCH_PORT ?? 18181);
// Tianhe CBD area, class 1 + 2, online, one page of 50.
const QUERY = '/api/v1/channels?class=1&class=2&district=440106&status=online&bbox=113.30,23.10,113.40,23.16&limit=50';

interface Started {
  child: ChildProcess;
  readyMs: number;
}

/** Starts the built broker and waits until /healthz answers; the time is the operator's wait. */
async function startBroker(dataDir: string): Promise<Started> {
  const started = performance.now();
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: root,
    env: { ...process.env, BROKER_DATA_DIR: dataDir, BROKER_PORT: String(PORT), BROKER_MEDIA: 'none', BROKER_LOG_LEVEL: 'warn', BROKER_DEMO: 'auto' },
    stdio: 'ignore',
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${PORT}/healthz`)).ok) return { child, readyMs: Math.round(performance.now() - started) };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

async function load(url: string, headers: Record<string, string> = {}) {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, headers });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return r;
}

export async function catalogBench() {
  execFileSync(process.execPath, ['src/cli/build-if-stale.mjs'], { cwd: root, stdio: 'inherit' });
  const dataDir = mkdtempSync(join(tmpdir(), 'se-bench-catalog-'));
  try {
    const first = await startBroker(dataDir);
    log(`first start (seeds 86,000 channels, ten agencies): ready in ${first.readyMs} ms, RSS ${rssMb(first.child.pid!)} MB`);
    await stop(first.child);
    const broker = await startBroker(dataDir);
    const rss = rssMb(broker.child.pid!);
    log(`restart (catalog loaded from the journal): ready in ${broker.readyMs} ms, RSS ${rss} MB`);
    try {
      const [username, password] = readFileSync(join(dataDir, 'demo-credentials.txt'), 'utf8')
        .split('\n')
        .find((line) => line.startsWith('public.security.op'))!
        .split('\t');
      const login = await fetch(`http://127.0.0.1:${PORT}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      const headers = { authorization: `Bearer ${((await login.json()) as { token: string }).token}` };
      const probe = await fetch(`http://127.0.0.1:${PORT}${QUERY}`, { headers });
      const pageBody = await probe.text();
      const page = JSON.parse(pageBody) as { items: unknown[]; total: number };
      log(`query answers ${probe.status}: ${page.items.length} items of ${page.total}, ${pageBody.length} bytes`);
      if (probe.status !== 200 || page.items.length === 0) throw new Error('the benchmark query returns nothing: fix the query');

      // Baselines first, after a warm-up of the load generator itself (a cold client understates them).
      const bare = await startServer<{ port: number }>('bench/servers/bare.ts', { BENCH_PAGE: pageBody });
      let ping: Result;
      let samePage: Result;
      try {
        await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: 3 });
        ping = await load(`http://127.0.0.1:${bare.info.port}/ping`);
        samePage = await load(`http://127.0.0.1:${bare.info.port}/page`);
      } finally {
        await bare.stop();
      }
      log(`bare fastify /ping: ${ping.requests.average} req/s; bare fastify answering the same ${pageBody.length}-byte page: ${samePage.requests.average} req/s`);

      const repeated = await load(`http://127.0.0.1:${PORT}${QUERY}`, headers);
      log(`broker, one query repeated (paging/refresh: its total is remembered): ${repeated.requests.average} req/s, p99 ${repeated.latency.p99} ms`);
      let viewport = 0;
      const fresh = await autocannon({
        url: `http://127.0.0.1:${PORT}`,
        connections: CONNECTIONS,
        duration: DURATION,
        headers,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => {
              const i = viewport++;
              const minLon = 113.25 + (i % 997) * 0.0001;
              const minLat = 23.08 + (i % 991) * 0.0001;
              const box = [minLon, minLat, minLon + 0.1, minLat + 0.06].map((n) => n.toFixed(5)).join(',');
              return { ...req, path: QUERY.replace(/bbox=[^&]+/, `bbox=${box}`) };
            },
          },
        ],
      });
      if (fresh.non2xx > 0 || fresh.errors > 0) throw new Error(`${fresh.non2xx} non-2xx, ${fresh.errors} errors (fresh viewports)`);
      log(`broker, a new viewport every request (${viewport} distinct, every total counted): ${fresh.requests.average} req/s, p99 ${fresh.latency.p99} ms`);
      const round = (n: number) => Math.round(n * 100) / 100;
      result('catalog', repeated.requests.average, 'req/s', ping.requests.average, {
        p99Ms: repeated.latency.p99,
        uncached: { value: fresh.requests.average, ratio: round(fresh.requests.average / ping.requests.average), p99Ms: fresh.latency.p99 },
        samePageBaseline: { value: samePage.requests.average, ratio: round(repeated.requests.average / samePage.requests.average) },
        rssMb: rss,
        firstStartMs: first.readyMs,
        restartMs: broker.readyMs,
      });
    } finally {
      await stop(broker.child);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
