/**
 * GET /channels with filters + bbox (limit 50) over the 86,000-channel catalog, against a bare
 * Fastify JSON route — and, to show what the page size alone costs, against a bare route answering
 * a page of the same 50 channels. Same load generator, same run.
 *
 * The broker is the real process (`node dist/main.js`, as `npm start` runs it): a first start seeds
 * the demo catalog, a second start on the same data dir regenerates it from its stored seed; both are
 * timed, and the resident memory of the second is reported (`npm run bench -- startup` is the startup bench).
 */
import autocannon, { type Result } from 'autocannon';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, log, result, root, rssMb, startServer } from './lib.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** One load's requests, seconds, CPU of its server and p99 (the worst round's), summed over the rounds. */
class Tally {
  private requests = 0;
  private seconds = 0;
  private cpu = 0;
  p99 = 0;
  add({ result, cpuSeconds }: { result: Result; cpuSeconds: number }): void {
    this.requests += result.requests.total;
    this.seconds += result.duration;
    this.cpu += cpuSeconds;
    this.p99 = Math.max(this.p99, result.latency.p99);
  }
  get rate(): number {
    return Math.round((this.requests / this.seconds) * 10) / 10;
  }
  get cpuUs(): number {
    return Math.round((this.cpu / this.requests) * 1e6);
  }
}

async function measured(pid: number, run: () => Promise<Result>): Promise<{ result: Result; cpuSeconds: number }> {
  const before = cpuSeconds(pid);
  const result = await run();
  return { result, cpuSeconds: cpuSeconds(pid) - before };
}
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
    env: { ...process.env, BROKER_DATA_DIR: dataDir, BROKER_PORT: String(PORT), BROKER_MEDIA: 'none', BROKER_LOG_LEVEL: 'warn', BROKER_DEMO: 'auto', BROKER_GB_SIP_PORT: '0' },
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
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION / ROUNDS, headers });
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
    log(`restart (catalog regenerated from its stored seed): ready in ${broker.readyMs} ms, RSS ${rss} MB`);
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

      // The four loads take turns in short rounds, the bare server and the broker both up throughout: on a
      // shared machine whose load moves, a baseline measured minutes before its figure would flatter one side.
      // Each also records the CPU its server spent per request, a figure the neighbours' load moves less.
      const bare = await startServer<{ port: number; pid: number }>('bench/servers/bare.ts', { BENCH_PAGE: pageBody });
      const brokerPid = broker.child.pid!;
      const totals = { ping: new Tally(), samePage: new Tally(), repeated: new Tally(), fresh: new Tally() };
      let viewport = 0;
      try {
        await autocannon({ url: `http://127.0.0.1:${bare.info.port}/ping`, connections: CONNECTIONS, duration: 3 });
        await autocannon({ url: `http://127.0.0.1:${PORT}${QUERY}`, connections: CONNECTIONS, duration: 3, headers });
        for (let round = 0; round < ROUNDS; round++) {
          totals.ping.add(await measured(bare.info.pid, () => load(`http://127.0.0.1:${bare.info.port}/ping`)));
          totals.samePage.add(await measured(bare.info.pid, () => load(`http://127.0.0.1:${bare.info.port}/page`)));
          totals.repeated.add(await measured(brokerPid, () => load(`http://127.0.0.1:${PORT}${QUERY}`, headers)));
          totals.fresh.add(
            await measured(brokerPid, async () => {
              const r = await autocannon({
                url: `http://127.0.0.1:${PORT}`,
                connections: CONNECTIONS,
                duration: DURATION / ROUNDS,
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
              if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx, ${r.errors} errors (fresh viewports)`);
              return r;
            }),
          );
        }
      } finally {
        await bare.stop();
      }
      const { ping, samePage, repeated, fresh } = totals;
      log(`bare fastify /ping: ${ping.rate} req/s, ${ping.cpuUs} µs CPU each; bare fastify answering the same ${pageBody.length}-byte page: ${samePage.rate} req/s, ${samePage.cpuUs} µs CPU each`);
      log(`broker, one query repeated (paging/refresh: its total is remembered): ${repeated.rate} req/s, p99 ${repeated.p99} ms, ${repeated.cpuUs} µs CPU each`);
      log(`broker, a new viewport every request (${viewport} distinct, every total counted): ${fresh.rate} req/s, p99 ${fresh.p99} ms, ${fresh.cpuUs} µs CPU each`);
      log(`(${ROUNDS} interleaved rounds of ${DURATION / ROUNDS} s per load; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores)`);
      const round = (n: number) => Math.round(n * 100) / 100;
      result('catalog', repeated.rate, 'req/s', ping.rate, {
        p99Ms: repeated.p99,
        uncached: { value: fresh.rate, ratio: round(fresh.rate / ping.rate), samePageRatio: round(fresh.rate / samePage.rate), p99Ms: fresh.p99, cpuUs: fresh.cpuUs },
        samePageBaseline: { value: samePage.rate, ratio: round(repeated.rate / samePage.rate), cpuUs: samePage.cpuUs },
        cpuUsPerRequest: { broker: repeated.cpuUs, samePage: samePage.cpuUs, ratio: round(samePage.cpuUs / repeated.cpuUs), uncached: fresh.cpuUs, uncachedRatio: round(samePage.cpuUs / fresh.cpuUs) },
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
