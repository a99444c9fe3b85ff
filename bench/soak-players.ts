/**
 * The soak's player part (issue 9): what the player records (play.start / play.end) add to the audit log
 * at 3,000 live sessions, with real HTTP-FLV players on the embedded media node, and that no session is
 * lost meanwhile.
 *
 * A broker with its embedded media node and BENCH_SOAK_CAMERAS (10) simulated cameras; 3,000 live
 * sessions spread over those channels (sessions of one channel share its forward: the machine cannot
 * relay 3,000 distinct cameras, about 150 fit a core, see media-capacity), heartbeating every 10 s, and
 * 50 sessions a second opened and released a second later, as in the soak. Two windows on the same
 * broker, the same load:
 *   A, without players: the audit entries per second of that load (grants, releases) — the baseline;
 *   B, with players: every churn session gets one HTTP-FLV player for its one-second life (released
 *      once the player has its first bytes), and BENCH_SOAK_PLAYERS (100) live sessions at a time have a
 *      player that watches WATCH_S (10 s) and leaves, its place taken by a player on another live session
 *      (10 new players a second). At most ~150 players at once: on this 2-core machine 200 live players
 *      left half of the players without an answer from the one media node within their watch time.
 * Figures: the play.start + play.end entries per second in B's steady part (after the first players'
 * watch time), beside the audit entries per second of A (the ratio); all entries per second in B by
 * action; players that received FLV; sessions lost (live sessions' heartbeats answered 404 or
 * stream.expire entries): must be 0.
 */
import { request, type ClientRequest } from 'node:http';
import { findFreePort } from '../src/media/net-ports.js';
import { cpuSeconds, log } from './lib.js';
import { loopbackClient, percentile, type LoopbackClient } from './loopback-client.js';
import { childPids, coreBusyPct, coreTimes, cpuDelta, cpuOf, startBrokerServer, startSimulatorProcess } from './media-lib.js';
import { SOAK_MODEL, liveExpiries, openLoop } from './soak.js';

const { live: LIVE, heartbeatEveryS: HEARTBEAT_EVERY_S, churnPerS: CHURN_PER_S, churnLifetimeMs: CHURN_LIFETIME_MS, sockets: SOCKETS, rampConcurrency: RAMP_CONCURRENCY } = SOAK_MODEL;
const CAMERAS = Number(process.env.BENCH_SOAK_CAMERAS ?? 10);
/** Live sessions with a player at any one time (each watches WATCH_S, then another session's player starts). */
const PLAYERS = Number(process.env.BENCH_SOAK_PLAYERS ?? 100);
const WATCH_S = 10;
const WINDOW_S = Number(process.env.BENCH_SOAK_PLAYER_SECONDS ?? 30);
/** A player with no answer by then gives up (a saturated node may not answer at all). */
const PLAYER_ANSWER_TIMEOUT_MS = 15_000;

interface BrokerInfo {
  port: number;
  pid: number;
  token: string;
  adminToken: string;
  channelIds: string[];
}

interface Urls {
  flv: string;
}

export interface PlayerSoakFigures {
  sessions: number;
  cameras: number;
  concurrentLivePlayers: number;
  windowSeconds: number;
  auditPerSecondWithout: number;
  auditPerSecondWith: number;
  playEntriesPerSecond: number;
  playersStarted: number;
  playersWithFlv: number;
  playersFailed: number;
  playerMiB: number;
  heartbeatP99Ms: number;
  createP99Ms: number;
  brokerCpuPct: number;
  mediaNodeCpuPct: number;
  machineBusyPct: number;
  connectionErrors: number;
  lost: number;
}

/** One HTTP-FLV player: connects, counts the bytes it is sent, and resolves when its connection ends. */
interface PlayerTally {
  started: number;
  withFlv: number;
  failed: number;
  bytes: number;
  /** Players that got no FLV, by kind (live, churn) and why: the HTTP status of their answer, the socket error, or `stopped` (window over before an answer). */
  refusedBy: Record<string, number>;
}

interface Player {
  /** The connection ended. */
  done: Promise<void>;
  /** The first media bytes arrived, or the connection ended without any. */
  watching: Promise<void>;
  stop(): void;
}

function player(kind: 'live' | 'churn', url: string, watchMs: number | undefined, tally: PlayerTally): Player {
  let req: ClientRequest | undefined;
  let watched: () => void = () => undefined;
  const watching = new Promise<void>((resolve) => (watched = resolve));
  tally.started++;
  const done = new Promise<void>((resolve) => {
    let bytes = 0;
    let flv = false;
    let why = 'stopped';
    const finish = () => {
      if (flv) tally.withFlv++;
      else {
        tally.failed++;
        tally.refusedBy[`${kind} ${why}`] = (tally.refusedBy[`${kind} ${why}`] ?? 0) + 1;
      }
      tally.bytes += bytes;
      watched();
      resolve();
    };
    req = request(url, { agent: false, headers: { 'user-agent': 'bench-soak-player/1' } }, (res) => {
      why = `http ${res.statusCode}`;
      if (res.statusCode !== 200) {
        res.resume();
        req!.destroy();
        return;
      }
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0 && chunk.toString('latin1', 0, 3) === 'FLV') flv = true;
        bytes += chunk.length;
        watched();
      });
      if (watchMs !== undefined) setTimeout(() => req!.destroy(), watchMs);
    });
    const giveUp = setTimeout(() => {
      why = 'no answer in 15 s';
      req!.destroy();
    }, PLAYER_ANSWER_TIMEOUT_MS);
    req.once('response', () => clearTimeout(giveUp));
    req.once('close', () => {
      clearTimeout(giveUp);
      finish();
    });
    req.once('error', (error: NodeJS.ErrnoException) => {
      if (why === 'stopped') why = error.code ?? error.message;
    });
    req.end();
  });
  return { done, watching, stop: () => req?.destroy() };
}

async function auditSeq(client: LoopbackClient, adminToken: string): Promise<number> {
  const answer = await client.send('GET', '/api/v1/audit/head', { token: adminToken });
  if (answer.status !== 200) throw new Error(`GET /audit/head answered ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { seq: number }).seq;
}

/** Audit entries recorded between two times, by action, paged as a platform-admin. */
async function actionsBetween(client: LoopbackClient, adminToken: string, from: string, to: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let cursor: string | null = null;
  do {
    const query: string = `/api/v1/audit?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const answer = await client.send('GET', query, { token: adminToken });
    if (answer.status !== 200) throw new Error(`GET /audit answered ${answer.status}: ${answer.body}`);
    const page = JSON.parse(answer.body) as { items: Array<{ action: string }>; nextCursor: string | null };
    for (const { action } of page.items) counts[action] = (counts[action] ?? 0) + 1;
    cursor = page.nextCursor;
  } while (cursor);
  return counts;
}

/** Audit entries per second between `afterS` seconds into a window and its end, read while the window runs. */
function measureAuditRate(client: LoopbackClient, adminToken: string, afterS: number, windowS: number) {
  const marks: Array<{ seq: number; at: number; iso: string }> = [];
  const mark = async () => {
    const at = performance.now();
    const iso = new Date().toISOString();
    marks.push({ seq: await auditSeq(client, adminToken), at, iso });
  };
  const timers = [setTimeout(() => void mark(), afterS * 1000), setTimeout(() => void mark(), windowS * 1000 - 50)];
  return {
    cancel: () => timers.forEach(clearTimeout),
    result() {
      const [first, last] = marks;
      if (!first || !last) throw new Error('the audit rate was not sampled');
      return { perSecond: (last.seq - first.seq) / ((last.at - first.at) / 1000), from: first.iso, to: last.iso, seconds: (last.at - first.at) / 1000 };
    },
  };
}

export async function playerSoak(): Promise<PlayerSoakFigures> {
  const simulator = await startSimulatorProcess(CAMERAS, await findFreePort());
  try {
    const broker = await startBrokerServer<BrokerInfo>({
      BROKER_MEDIA: 'embedded',
      BROKER_MEDIA_RTMP_PORT: String(await findFreePort()),
      BROKER_MEDIA_HTTP_PORT: String(await findFreePort()),
      BROKER_MEDIA_CONTROL_PORT: String(await findFreePort()),
      BROKER_IDLE_CLOSE_SECONDS: '0',
      BROKER_SOURCE_TIMEOUT_SECONDS: '20',
      BROKER_LOG_LEVEL: 'error',
      BENCH_CAMERA_BASE_URL: simulator.baseUrl,
      BENCH_CAMERAS: String(CAMERAS),
    });
    const client = loopbackClient(broker.info.port, SOCKETS);
    const players = new Set<{ stop(): void }>();
    try {
      const { token, adminToken, pid, channelIds } = broker.info;
      await client.preconnect(SOCKETS);
      const live: string[] = [];
      const urls = new Map<string, Urls>();
      const rampStart = performance.now();
      for (let i = 0; i < LIVE; i += RAMP_CONCURRENCY) {
        const answers = await Promise.all(
          Array.from({ length: Math.min(RAMP_CONCURRENCY, LIVE - i) }, (_, k) =>
            client.send('POST', '/api/v1/streams', { token, json: { channelId: channelIds[(i + k) % channelIds.length], purpose: 'bench soak live with players' } }),
          ),
        );
        for (const a of answers) {
          if (a.status !== 201) throw new Error(`opening a live session answered ${a.status}: ${a.body}`);
          const session = JSON.parse(a.body) as { id: string; urls: Urls };
          live.push(session.id);
          urls.set(session.id, session.urls);
        }
      }
      log(`players: ${live.length} live sessions on ${channelIds.length} camera channels opened in ${Math.round(performance.now() - rampStart)} ms`);

      const heartbeats: number[] = [];
      const creations: number[] = [];
      const lost = new Set<string>();
      const failures: string[] = [];
      /** A connection the loaded machine dropped (ECONNRESET): counted and reported, it is not an answer. */
      let connectionErrors = 0;
      const fail = (what: string, status: number | string, body = '') => {
        if (typeof status === 'string') connectionErrors++;
        else failures.push(`${what} answered ${status} ${body.slice(0, 120)}`);
      };
      const tally: PlayerTally = { started: 0, withFlv: 0, failed: 0, bytes: 0, refusedBy: {} };
      let withPlayers = false;

      const heartbeat = async (n: number, dueAt: number) => {
        const id = live[n % LIVE]!;
        const answer = await client.send('POST', `/api/v1/streams/${id}/heartbeat`, { token, dueAt }).catch((err: Error) => err);
        if (answer instanceof Error) return fail('heartbeat', answer.message);
        if (answer.status === 404) {
          lost.add(id);
          return;
        }
        if (answer.status !== 200) return fail('heartbeat', answer.status, answer.body);
        heartbeats.push(answer.ms);
        // A player that starts later needs a token that has not lapsed: the heartbeat's fresh URLs.
        urls.set(id, (JSON.parse(answer.body) as { urls: Urls }).urls);
      };
      const churn = async (n: number, dueAt: number) => {
        const channelId = channelIds[n % channelIds.length]!;
        const created = await client.send('POST', '/api/v1/streams', { token, dueAt, json: { channelId, purpose: 'bench soak churn with players' } }).catch((err: Error) => err);
        if (created instanceof Error) return fail('creation', created.message);
        if (created.status !== 201) return fail('creation', created.status, created.body);
        creations.push(created.ms);
        const session = JSON.parse(created.body) as { id: string; urls: Urls };
        // Its player is cut by the release (play.end from the session's end).
        const viewer = withPlayers ? player('churn', session.urls.flv, undefined, tally) : undefined;
        if (viewer) players.add(viewer);
        const releaseAt = dueAt + CHURN_LIFETIME_MS;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, releaseAt - performance.now())));
        // A viewer closes what it watched, not what it is still waiting for: on a slow grant, not before the first bytes.
        if (viewer) await viewer.watching;
        const released = await client.send('DELETE', `/api/v1/streams/${session.id}`, { token, dueAt: Math.max(releaseAt, performance.now()) }).catch((err: Error) => err);
        if (released instanceof Error) fail('release', released.message);
        else if (released.status !== 204) fail('release', released.status, released.body);
        if (viewer) {
          await viewer.done;
          players.delete(viewer);
        }
      };
      // Consecutive players go to different sessions (n-th to live[n]): 20 a second reach the same one every 150 s.
      const livePlayer = async (n: number) => {
        const viewer = player('live', urls.get(live[n % LIVE]!)!.flv, WATCH_S * 1000, tally);
        players.add(viewer);
        await viewer.done;
        players.delete(viewer);
      };
      const load = [
        { perSecond: LIVE / HEARTBEAT_EVERY_S, fire: heartbeat },
        { perSecond: CHURN_PER_S, fire: churn },
      ];

      // Window A: the load without players.
      const without = measureAuditRate(client, adminToken, CHURN_LIFETIME_MS / 1000 + 1, WINDOW_S);
      await openLoop(WINDOW_S, load);
      const a = without.result();
      log(`players: window A (no players) ${a.seconds.toFixed(1)} s: ${a.perSecond.toFixed(1)} audit entries/s`);

      // Window B: the same load with players; counted once the first live players have watched their time.
      withPlayers = true;
      const cpuBefore = cpuSeconds(pid);
      const mediaPids = childPids(pid);
      const mediaBefore = cpuOf(mediaPids);
      const coresBefore = coreTimes();
      const started = performance.now();
      const windowB = WINDOW_S + WATCH_S;
      const rate = measureAuditRate(client, adminToken, WATCH_S + 1, windowB);
      // At the window's end the players still watching leave at once: waiting out their watch time would leave the live sessions unheartbeated.
      let heartbeatsStopped = '';
      const leave = setTimeout(() => {
        heartbeatsStopped = new Date().toISOString();
        withPlayers = false;
        players.forEach((viewer) => viewer.stop());
      }, windowB * 1000);
      await openLoop(windowB, [...load, { perSecond: PLAYERS / WATCH_S, fire: livePlayer }]);
      clearTimeout(leave);
      const elapsedS = (performance.now() - started) / 1000;
      const brokerCpuPct = Math.round(((cpuSeconds(pid) - cpuBefore) / elapsedS) * 1000) / 10;
      const mediaNodeCpuPct = Math.round((cpuDelta(mediaBefore, cpuOf(mediaPids)) / elapsedS) * 1000) / 10;
      // What the whole machine did meanwhile (other work included): a saturated machine explains players without an answer.
      const busy = coreBusyPct(coresBefore, coreTimes());
      const machineBusyPct = Math.round(busy.reduce((sum, pct) => sum + pct, 0) / busy.length);
      const b = rate.result();
      const expired = await liveExpiries(client, adminToken, new Set(live), heartbeatsStopped || new Date().toISOString());
      const actions = await actionsBetween(client, adminToken, b.from, b.to);
      const playEntries = (actions['play.start'] ?? 0) + (actions['play.end'] ?? 0);
      log(`players: audit entries of window B's steady part by action: ${JSON.stringify(actions)}; players without FLV, by why: ${JSON.stringify(tally.refusedBy)}`);
      const figures: PlayerSoakFigures = {
        sessions: LIVE,
        cameras: channelIds.length,
        concurrentLivePlayers: PLAYERS,
        windowSeconds: Math.round(b.seconds * 10) / 10,
        auditPerSecondWithout: Math.round(a.perSecond * 10) / 10,
        auditPerSecondWith: Math.round(b.perSecond * 10) / 10,
        playEntriesPerSecond: Math.round((playEntries / b.seconds) * 10) / 10,
        playersStarted: tally.started,
        playersWithFlv: tally.withFlv,
        playersFailed: tally.failed,
        playerMiB: Math.round(tally.bytes / 1048576),
        heartbeatP99Ms: percentile(heartbeats, 99),
        createP99Ms: percentile(creations, 99),
        brokerCpuPct,
        mediaNodeCpuPct,
        machineBusyPct,
        connectionErrors,
        lost: lost.size + expired,
      };
      log(`players: window B (with players) ${JSON.stringify(figures)}`);
      if (failures.length > 0) throw new Error(`${failures.length} requests failed, first: ${failures.slice(0, 5).join('; ')}`);
      if (figures.lost > 0) throw new Error(`sessions lost to expiry with players connected: ${lost.size} heartbeats answered 404, ${expired} stream.expire audit entries`);
      return figures;
    } finally {
      for (const viewer of players) viewer.stop();
      client.close();
      await broker.stop();
    }
  } finally {
    await simulator.stop();
  }
}
