/**
 * A soak: 3,000 live sessions heartbeating every 10 s (300 heartbeats/s, spread evenly) while 50
 * sessions a second are opened on other channels and released a second later, for 60 s
 * (BENCH_SOAK_SECONDS), with the default 30 s lease. Figures: p99 of heartbeats and of creations,
 * the broker's CPU, and sessions lost to expiry (must be 0). Baseline: a bare Fastify route at the
 * same request rates, same load generator, same run. BENCH_STORE=redis runs the broker on Redis.
 * That part's figures are the first JSON line. Then the player part (soak-players.ts): the same load
 * on a broker with its media node and real HTTP-FLV players; its last JSON line is the audit entries
 * per second the player records add beside the audit entries per second without players (same broker,
 * same run), the ratio, and sessions lost (0).
 *
 * Pool sizing: 3,000 live sessions plus the churn must never fill the pool, or creations measure
 * refusals. The broker gets 3,500 forwarding slots and frees a released channel at once
 * (BROKER_IDLE_CLOSE_SECONDS=0, as the allocate bench does): with the default 10 s linger, 50
 * releases/s would keep ~500 idle slots held and push the pool past 3,500.
 */
import { generateDemoCatalog } from '../src/core/demo-catalog.js';
import { cpuSeconds, dropRedisKeys, log, result, startServer, uniqueRedisPrefix } from './lib.js';
import { loopbackClient, percentile, type LoopbackClient } from './loopback-client.js';

const SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 60);
const STORE = process.env.BENCH_STORE === 'redis' ? 'redis' : 'memory';
/** The load model both soak benches share (bench/soak-players.ts adds players to it). */
export const SOAK_MODEL = {
  live: 3000,
  heartbeatEveryS: 10,
  churnPerS: 50,
  /** A churn session is released this long after it was due to open. */
  churnLifetimeMs: 1000,
  /** Enough sockets for ~400 req/s even if answers slow down to a few hundred ms. */
  sockets: 256,
  /** Live sessions are opened this many at a time before the measured window. */
  rampConcurrency: 64,
} as const;
const { live: LIVE, heartbeatEveryS: HEARTBEAT_EVERY_S, churnPerS: CHURN_PER_S, churnLifetimeMs: CHURN_LIFETIME_MS, sockets: SOCKETS, rampConcurrency: RAMP_CONCURRENCY } = SOAK_MODEL;
const FORWARDING_SLOTS = 3500;

interface BrokerInfo {
  port: number;
  pid: number;
  token: string;
  adminToken: string;
}

/** One kind of request sent at a fixed rate; `fire` must settle, never reject. */
interface Schedule {
  perSecond: number;
  fire(n: number, dueAt: number): Promise<void>;
}

/**
 * Open loop: the n-th request of each schedule is sent when it is due, whether or not earlier ones
 * were answered, so a slow server shows up as latency instead of as a lower rate.
 */
export async function openLoop(seconds: number, schedules: Schedule[]): Promise<void> {
  const start = performance.now();
  const end = start + seconds * 1000;
  const sent = schedules.map(() => 0);
  const inFlight = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      schedules.forEach((schedule, k) => {
        for (;;) {
          const dueAt = start + (sent[k]! * 1000) / schedule.perSecond;
          if (dueAt > now || dueAt >= end) break;
          const request = schedule.fire(sent[k]++, dueAt);
          inFlight.add(request);
          void request.finally(() => inFlight.delete(request));
        }
      });
      if (now >= end) {
        clearInterval(timer);
        resolve();
      }
    }, 1); // the tick's lag counts as latency, so keep it at Node's minimum
  });
  await Promise.all(inFlight);
}

async function baselineP99(): Promise<number> {
  const bare = await startServer<{ port: number }>('bench/servers/bare.ts');
  const client = loopbackClient(bare.info.port, SOCKETS);
  try {
    await client.preconnect(SOCKETS);
    const latencies: number[] = [];
    let failed = 0;
    const ping = async (_n: number, dueAt: number) => {
      const answer = await client.send('GET', '/ping', { dueAt }).catch(() => undefined);
      if (answer?.status === 200) latencies.push(answer.ms);
      else failed++;
    };
    await openLoop(SECONDS, [
      { perSecond: LIVE / HEARTBEAT_EVERY_S, fire: ping },
      { perSecond: 2 * CHURN_PER_S, fire: ping },
    ]);
    if (failed > 0) throw new Error(`the bare route failed ${failed} requests`);
    const p99 = percentile(latencies, 99);
    log(`bare fastify: ${latencies.length} requests at ${LIVE / HEARTBEAT_EVERY_S + 2 * CHURN_PER_S}/s, p50 ${percentile(latencies, 50)} ms, p99 ${p99} ms`);
    return p99;
  } finally {
    client.close();
    await bare.stop();
  }
}

async function openLive(client: LoopbackClient, token: string, channels: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < channels.length; i += RAMP_CONCURRENCY) {
    const answers = await Promise.all(
      channels.slice(i, i + RAMP_CONCURRENCY).map((channelId) => client.send('POST', '/api/v1/streams', { token, json: { channelId, purpose: 'bench soak live' } })),
    );
    for (const a of answers) {
      if (a.status !== 201) throw new Error(`opening a live session answered ${a.status}: ${a.body}`);
      ids.push((JSON.parse(a.body) as { id: string }).id);
    }
  }
  return ids;
}

/**
 * stream.expire entries of the live sessions (the ones the bench heartbeats) recorded while it still
 * heartbeated them (`until`: when the heartbeats stopped; the leases lapse 30 s after). A churn session
 * whose release the loaded machine dropped (a connection error, counted apart) expires as a client
 * that went away would: that is the lease doing its job, not a lost session.
 */
export async function liveExpiries(client: LoopbackClient, adminToken: string, live: ReadonlySet<string>, until: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const query: string = `/api/v1/audit?action=stream.expire&to=${encodeURIComponent(until)}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const answer = await client.send('GET', query, { token: adminToken });
    if (answer.status !== 200) throw new Error(`GET /audit answered ${answer.status}: ${answer.body}`);
    const page = JSON.parse(answer.body) as { items: Array<{ target: string }>; nextCursor: string | null };
    count += page.items.filter((e) => live.has(e.target.replace(/^session:/, ''))).length;
    cursor = page.nextCursor;
  } while (cursor);
  return count;
}

export async function soakBench() {
  const baseline = await baselineP99();

  const channels = generateDemoCatalog()
    .filter((c) => c.status === 'online')
    .map((c) => c.id);
  const liveChannels = channels.slice(0, LIVE);
  // Churn channels are distinct from the live ones; with no linger a released one could be reused, but 81,000 last ~27 min.
  const churnChannels = channels.slice(LIVE);

  const prefix = uniqueRedisPrefix('soak');
  const env: Record<string, string> = { BROKER_STORE: STORE, BROKER_FORWARDING_SLOTS: String(FORWARDING_SLOTS), BROKER_IDLE_CLOSE_SECONDS: '0' };
  if (STORE === 'redis') env.BROKER_REDIS_PREFIX = prefix;
  const broker = await startServer<BrokerInfo>('bench/servers/broker.ts', env);
  const client = loopbackClient(broker.info.port, SOCKETS);
  try {
    const { token, adminToken, pid } = broker.info;
    await client.preconnect(SOCKETS);
    const rampStart = performance.now();
    const live = await openLive(client, token, liveChannels);
    log(`broker (${STORE}, ${FORWARDING_SLOTS} slots, no idle linger): ${live.length} live sessions opened in ${Math.round(performance.now() - rampStart)} ms`);

    const heartbeats: number[] = [];
    const creations: number[] = [];
    const releases: number[] = [];
    const lost = new Set<string>();
    const failures: string[] = [];
    /**
     * A connection the client saw dropped (socket hang up, ECONNRESET): on a saturated shared machine that
     * is mostly keep-alive's race (a pooled socket closed as a request goes out). Counted and reported; an
     * answer with an unexpected status fails the run.
     */
    let connectionErrors = 0;
    const fail = (what: string, status: number | string, body = '') => {
      if (typeof status === 'string') connectionErrors++;
      else if (failures.length < 5) failures.push(`${what} answered ${status} ${body.slice(0, 120)}`);
      else failures.push(what);
    };

    const heartbeat = async (n: number, dueAt: number) => {
      const id = live[n % LIVE]!;
      const answer = await client.send('POST', `/api/v1/streams/${id}/heartbeat`, { token, dueAt }).catch((err: Error) => err);
      if (answer instanceof Error) fail('heartbeat', answer.message);
      else if (answer.status === 200) heartbeats.push(answer.ms);
      else if (answer.status === 404) lost.add(id);
      else fail('heartbeat', answer.status, answer.body);
    };
    const churn = async (n: number, dueAt: number) => {
      const channelId = churnChannels[n % churnChannels.length]!;
      const created = await client.send('POST', '/api/v1/streams', { token, dueAt, json: { channelId, purpose: 'bench soak churn' } }).catch((err: Error) => err);
      if (created instanceof Error) return fail('creation', created.message);
      if (created.status !== 201) return fail('creation', created.status, created.body);
      creations.push(created.ms);
      const releaseAt = dueAt + CHURN_LIFETIME_MS;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, releaseAt - performance.now())));
      const id = (JSON.parse(created.body) as { id: string }).id;
      const released = await client.send('DELETE', `/api/v1/streams/${id}`, { token, dueAt: releaseAt }).catch((err: Error) => err);
      if (released instanceof Error) fail('release', released.message);
      else if (released.status === 204) releases.push(released.ms);
      else fail('release', released.status, released.body);
    };

    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    await openLoop(SECONDS, [
      { perSecond: LIVE / HEARTBEAT_EVERY_S, fire: heartbeat },
      { perSecond: CHURN_PER_S, fire: churn },
    ]);
    const wallSeconds = (performance.now() - started) / 1000;
    const cpuPct = Math.round(((cpuSeconds(pid) - cpuBefore) / wallSeconds) * 1000) / 10;

    const expired = await liveExpiries(client, adminToken, new Set(live), new Date().toISOString());
    const figures = {
      heartbeats: heartbeats.length,
      heartbeatP50Ms: percentile(heartbeats, 50),
      heartbeatP99Ms: percentile(heartbeats, 99),
      creations: creations.length,
      createP50Ms: percentile(creations, 50),
      createP99Ms: percentile(creations, 99),
      releases: releases.length,
      releaseP99Ms: percentile(releases, 99),
      cpuPct,
      lostToHeartbeat404: lost.size,
      liveExpiriesAudited: expired,
      connectionErrors,
    };
    log(`broker (${STORE}) over ${wallSeconds.toFixed(1)} s: ${JSON.stringify(figures)}`);
    if (failures.length > 0) throw new Error(`${failures.length} requests failed, first: ${failures.slice(0, 5).join('; ')}`);
    if (lost.size > 0 || expired > 0) throw new Error(`sessions lost to expiry: ${lost.size} heartbeats answered 404, ${expired} stream.expire audit entries`);
    result('soak', figures.heartbeatP99Ms, 'ms', baseline, {
      lost: lost.size + expired,
      connectionErrors,
      cpuPct,
      createP99Ms: figures.createP99Ms,
      heartbeats: figures.heartbeats,
      creations: figures.creations,
      store: STORE,
      forwardingSlots: FORWARDING_SLOTS,
    });
  } finally {
    client.close();
    await broker.stop();
    if (STORE === 'redis') log(`redis: deleted ${await dropRedisKeys(prefix)} keys of ${prefix}`);
  }

  const { playerSoak } = await import('./soak-players.js');
  const players = await playerSoak();
  // value: the audit entries/s the player records add (play.start + play.end); baseline: all audit entries/s of the same load without players.
  result('soak-players', players.playEntriesPerSecond, 'play entries/s', players.auditPerSecondWithout, { ...players });
}
