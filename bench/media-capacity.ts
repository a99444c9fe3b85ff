/**
 * How many relayed channels one media node process carries on one core before it falls behind, and
 * what a forward costs in CPU — against one plain `ffmpeg -c copy` process per channel, measured in the
 * same run on the same core.
 *
 * Layout (taskset, when present): the camera simulator (its NMS and one ffmpeg publisher per camera),
 * the reference readers and this process on core 0; the media node and its ffmpeg relays on core 1.
 * The simulator is not free — it is reported, and kept off the measured core. Forwards pull the
 * simulator's cameras round-robin (a camera's RTMP fan-out costs the simulator little; each forward
 * is still its own RTMP pull and relay).
 *
 * Steps: N = 25, 50, 75, 100, … forwards started through the node's control API, one HTTP-FLV reader per
 * channel. A step keeps up when the bytes delivered to the readers are ≥ 95 % of what the same cameras
 * sent a direct reader in the same window, and the node plus its relays use < 95 % of their core.
 * The run stops by itself after the first step that falls behind or after ~4 minutes of steps.
 *
 * CPU per transcode (a phase of its own, on a node with one forward): one H.265 channel (a simulated RTSP
 * camera, 640x360 25 fps) transcoded to H.264 by the node's ffmpeg child (libx264 veryfast), one viewer; its CPU
 * seconds per wall second from /proc/<pid>/stat. Baseline in the same run, on the same core: one plain ffmpeg
 * reading the same camera over RTSP and encoding it with the same settings to /dev/null. `BENCH_MEDIA_ONLY=transcode`
 * runs this phase alone.
 *
 * Shorter runs: `BENCH_MEDIA_ONLY=rtmp-h264` or `rtsp-h265` runs that source kind's steps and baseline alone
 * (its last line is that kind's figure); `BENCH_WINDOW_SECONDS` (default 10) is each step's window,
 * `BENCH_STEPS_BUDGET_SECONDS` (default 240) the time for steps per source kind, `BENCH_MEDIA_STEPS=50,100`
 * replaces the step list. `BENCH_PROFILE=<dir>` starts each media node with `--cpu-prof --cpu-prof-dir=<dir>`
 * (a .cpuprofile per node, written when it stops).
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { availableParallelism } from 'node:os';
import { findFreePort } from '../src/media/net-ports.js';
import { buildPlayUrls } from '../src/media/play-urls.js';
import { ffmpegPath } from '../src/media/ffmpeg.js';
import { cpuSeconds, log, result } from './lib.js';
import {
  childPids,
  coreBusyPct,
  coreTimes,
  cpuDelta,
  cpuOf,
  ffmpegCopyReader,
  hasTaskset,
  sleep,
  startMediaNodeProcess,
  startSimulatorProcess,
  stopChild,
} from './media-lib.js';

const STEPS = process.env.BENCH_MEDIA_STEPS ? process.env.BENCH_MEDIA_STEPS.split(',').map(Number) : [25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 600, 800, 1000];
const CAMERAS = 10;
const WARMUP_MS = 3000;
const WINDOW_MS = Number(process.env.BENCH_WINDOW_SECONDS ?? 10) * 1000;
const STEPS_BUDGET_MS = Number(process.env.BENCH_STEPS_BUDGET_SECONDS ?? 240) * 1000;
const KEEPS_UP_DELIVERY = 0.95;
const KEEPS_UP_CPU_PCT = 95;
const BASELINE_CHANNELS = 50;
const START_CONCURRENCY = 8;
const TARGET_FORWARDS = 3000;

const pinnable = hasTaskset && availableParallelism() >= 2;
const HARNESS_CORE = pinnable ? 0 : undefined;
const MEASURED_CORE = pinnable ? 1 : undefined;

interface Reader {
  bytes: number;
  camera: number;
  req: ClientRequest;
}

function readHttpFlv(url: string, camera: number): Reader {
  const reader: Reader = { bytes: 0, camera, req: request(url) };
  reader.req.on('response', (res) => res.on('data', (chunk: Buffer) => (reader.bytes += chunk.length)));
  reader.req.on('error', () => undefined);
  reader.req.end();
  return reader;
}

async function inBatches<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

const pct = (cpuSec: number, ms: number) => (cpuSec / (ms / 1000)) * 100;
const round1 = (n: number) => Math.round(n * 10) / 10;

type SourceKind = 'rtmp-h264' | 'rtsp-h265';

export async function mediaCapacityBench() {
  if (HARNESS_CORE !== undefined) spawnSync('taskset', ['-pc', String(HARNESS_CORE), String(process.pid)]);
  log(pinnable ? 'simulator, readers and harness on core 0; media node (+ relays) and baseline ffmpeg on core 1' : 'taskset or a second core missing: nothing pinned, figures are per machine, not per core');
  const only = process.env.BENCH_MEDIA_ONLY;
  if (only !== undefined && !['transcode', 'rtmp-h264', 'rtsp-h265'].includes(only)) {
    throw new Error(`BENCH_MEDIA_ONLY=${only}: "transcode", "rtmp-h264" or "rtsp-h265"`);
  }
  if (only === 'transcode') {
    const transcode = await measureTranscode();
    result('media-capacity', transcode.transcodeCpuPct, '% of a core per transcode', transcode.baselineCpuPct, { transcode });
    return;
  }
  if (only === 'rtmp-h264' || only === 'rtsp-h265') {
    const one = await measure(only);
    log(`${only}: ${one.carried} forwards per core vs ${one.baseline} ffmpeg relays (${((one.carried as number) / (one.baseline as number)).toFixed(2)}×)`);
    result('media-capacity', one.carried as number, 'forwards', one.baseline as number, { [only === 'rtmp-h264' ? 'h264' : 'h265']: one });
    return;
  }
  const h264 = await measure('rtmp-h264');
  const h265 = await measure('rtsp-h265');
  const transcode = await measureTranscode();
  const ratio = (r: Record<string, unknown>) => (r.carried as number) / (r.baseline as number);
  log(`H.264 over RTMP: ${h264.carried} forwards per core vs ${h264.baseline} ffmpeg relays (${ratio(h264).toFixed(2)}×; by CPU per forward ${h264.cpuRatio}×); H.265 over RTSP: ${h265.carried} vs ${h265.baseline} (${ratio(h265).toFixed(2)}×; by CPU ${h265.cpuRatio}×)`);
  result('media-capacity', h264.carried as number, 'forwards', h264.baseline as number, { h264, h265, transcode });
}

function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The node's transcoder settings (transcodes.ts transcodeArgs) on a plain ffmpeg that reads the camera itself. */
function plainTranscoder(sourceUrl: string, core: number | undefined) {
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-rtsp_transport', 'tcp', '-i', sourceUrl,
    '-map', '0:v', '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '50',
    '-f', 'flv', '/dev/null',
  ];
  const [command, argv] = core !== undefined ? ['taskset', ['-c', String(core), ffmpegPath, ...args]] : [ffmpegPath, args];
  return spawn(command, argv, { stdio: 'ignore' });
}

/** CPU of one transcode, beside one plain ffmpeg doing the same decode + encode (see the header). */
async function measureTranscode(): Promise<{ transcodeCpuPct: number; nodeCpuPct: number; baselineCpuPct: number; ratio: number; windowSeconds: number; viewerKbps: number; coresBusyPct: string }> {
  log('--- CPU per transcode: one H.265 camera (RTSP) → H.264');
  const simulator = await startSimulatorProcess(1, await findFreePort(), HARNESS_CORE, { rtspPort: await findFreePort() });
  const cameraUrl = `${simulator.h265RtspBaseUrl!}/1`;
  const cleanups: Array<() => Promise<void>> = [() => simulator.stop()];
  try {
    const playSecret = randomBytes(32).toString('hex');
    const node = await startMediaNodeProcess(
      { rtmpPort: await findFreePort(), httpPort: await findFreePort(), controlPort: await findFreePort(), controlSecret: randomBytes(32).toString('hex'), playSecret, maxForwards: 10 },
      MEASURED_CORE,
    );
    cleanups.unshift(() => node.stop());
    const forward = await node.control('POST', '/forwards', { channelId: 'bench-t', sourceUrl: cameraUrl, fence: 1 });
    if (forward.status !== 200) throw new Error(`forward refused: ${forward.status} ${JSON.stringify(forward.body)}`);
    const started = await node.control('POST', '/transcodes', { channelId: 'bench-t' });
    if (started.status !== 200) throw new Error(`transcode refused: ${started.status} ${JSON.stringify(started.body)}`);
    const urls = buildPlayUrls(node.playBaseUrl, playSecret, { sessionId: 's-t', channelId: 'bench-t', nodeId: 'bench-node', fence: 1, expiresAt: Date.now() + 3_600_000 });
    const viewer = readHttpFlv(urls.flv.replace('/bench-t.flv', `/${started.body.stream}.flv`), 1);
    cleanups.unshift(async () => void viewer.req.destroy());
    await sleep(WARMUP_MS);
    // The node's children: its transcoder, and (run through tsx) esbuild's service.
    const transcoders = childPids(node.pid).filter((pid) => /ffmpeg/.test(processName(pid)));
    if (transcoders.length !== 1) throw new Error(`expected one transcoder child of the node, found ${transcoders.length}`);
    const before = cpuOf(transcoders);
    const nodeBefore = cpuSeconds(node.pid);
    const viewerBytes = viewer.bytes;
    const cores = coreTimes();
    const t0 = performance.now();
    await sleep(WINDOW_MS);
    const elapsed = performance.now() - t0;
    const coresBusy = coreBusyPct(cores, coreTimes()).join('/');
    const transcodeCpuPct = round1(pct(cpuDelta(before, cpuOf(transcoders)), elapsed));
    const nodeCpuPct = round1(pct(cpuSeconds(node.pid) - nodeBefore, elapsed));
    const viewerKbps = Math.round(((viewer.bytes - viewerBytes) * 8) / (elapsed / 1000) / 1000);
    viewer.req.destroy();
    await node.stop();
    cleanups.splice(0, 2);
    log(`transcoder (ffmpeg child of the node): ${transcodeCpuPct} % of a core; the node itself (one forward, its tap, one viewer) ${nodeCpuPct} %; viewer got ${viewerKbps} kbit/s H.264`);

    const plain = plainTranscoder(cameraUrl, MEASURED_CORE);
    cleanups.unshift(() => stopChild(plain, 'SIGKILL'));
    await sleep(WARMUP_MS);
    // Under taskset, the child is taskset until it execs ffmpeg: same pid either way.
    const plainBefore = cpuOf([plain.pid!]);
    const t1 = performance.now();
    await sleep(WINDOW_MS);
    const baselineCpuPct = round1(pct(cpuDelta(plainBefore, cpuOf([plain.pid!])), performance.now() - t1));
    if (plain.exitCode !== null) throw new Error(`the baseline ffmpeg exited (${plain.exitCode})`);
    log(`baseline: one plain ffmpeg (RTSP in, libx264 veryfast zerolatency, to /dev/null): ${baselineCpuPct} % of a core`);
    const ratio = Math.round((transcodeCpuPct / baselineCpuPct) * 100) / 100;
    log(`CPU per transcode ${transcodeCpuPct} % vs ${baselineCpuPct} % (${ratio}×): ~${Math.floor(KEEPS_UP_CPU_PCT / transcodeCpuPct)} transcodes per core`);
    return { transcodeCpuPct, nodeCpuPct, baselineCpuPct, ratio, windowSeconds: Math.round(elapsed / 1000), viewerKbps, coresBusyPct: coresBusy };
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

async function measure(kind: SourceKind): Promise<Record<string, unknown>> {
  const benchStarted = performance.now();
  log(`--- sources: ${kind}`);
  const simulator = await startSimulatorProcess(CAMERAS, await findFreePort(), HARNESS_CORE, kind === 'rtsp-h265' ? { rtspPort: await findFreePort() } : undefined);
  const base = kind === 'rtsp-h265' ? simulator.h265RtspBaseUrl! : simulator.baseUrl;
  const cameraUrl = (camera: number) => `${base}/${camera}`;
  // One direct reader per camera: what the source sent, window by window.
  const references = Array.from({ length: CAMERAS }, (_, i) => ffmpegCopyReader(cameraUrl(i + 1), { core: HARNESS_CORE }));
  const cleanups: Array<() => Promise<void>> = [() => simulator.stop(), ...references.map((r) => () => stopChild(r.child))];
  try {
    await Promise.all(references.map((r) => r.firstByte));
    const playSecret = randomBytes(32).toString('hex');
    const node = await startMediaNodeProcess(
      {
        rtmpPort: await findFreePort(),
        httpPort: await findFreePort(),
        controlPort: await findFreePort(),
        controlSecret: randomBytes(32).toString('hex'),
        playSecret,
        maxForwards: 1000,
      },
      MEASURED_CORE,
    );
    cleanups.unshift(() => node.stop());
    const readers: Reader[] = [];
    cleanups.unshift(async () => readers.forEach((r) => r.req.destroy()));

    const steps: Array<Record<string, number | boolean | string>> = [];
    let carried = 0;
    let perForwardPct = NaN;
    let sourceKbps = NaN;
    // The H.265 references write MPEG-TS (ffmpeg has no H.265 in FLV), a few % more bytes than the node's
    // FLV: delivery is taken relative to the first step (25 forwards, far from any limit).
    let deliveryScale = 1;
    for (const target of STEPS) {
      if (performance.now() - benchStarted > STEPS_BUDGET_MS) {
        log(`time budget spent before N=${target}; stopping`);
        break;
      }
      const fresh = Array.from({ length: target - readers.length }, (_, i) => readers.length + i + 1);
      let refused = 0;
      await inBatches(fresh, START_CONCURRENCY, async (n) => {
        const channelId = `bench-${n}`;
        const camera = ((n - 1) % CAMERAS) + 1;
        const res = await node.control('POST', '/forwards', { channelId, sourceUrl: cameraUrl(camera), fence: 1 });
        if (res.status !== 200) {
          refused += 1;
          return;
        }
        const urls = buildPlayUrls(node.playBaseUrl, playSecret, { sessionId: `s-${n}`, channelId, nodeId: 'bench-node', fence: 1, expiresAt: Date.now() + 3_600_000 });
        readers.push(readHttpFlv(urls.flv, camera));
      });
      await sleep(WARMUP_MS);

      const pids = () => [node.pid, ...childPids(node.pid)];
      const simPids = () => [simulator.child.pid!, ...childPids(simulator.child.pid!)];
      const readerBytes = readers.map((r) => r.bytes);
      const referenceBytes = references.map((r) => r.bytes());
      const nodeCpu = cpuSeconds(node.pid);
      const allCpu = cpuOf(pids());
      const simCpu = cpuOf(simPids());
      const harnessCpu = cpuSeconds(process.pid);
      const cores = coreTimes();
      const started = performance.now();
      await sleep(WINDOW_MS);
      const elapsed = performance.now() - started;
      const coresBusyPct = coreBusyPct(cores, coreTimes());
      const harnessPct = pct(cpuSeconds(process.pid) - harnessCpu, elapsed);
      const nodePct = pct(cpuSeconds(node.pid) - nodeCpu, elapsed);
      const totalPct = pct(cpuDelta(allCpu, cpuOf(pids())), elapsed);
      const simulatorPct = pct(cpuDelta(simCpu, cpuOf(simPids())), elapsed);
      const referenceDelta = references.map((r, i) => r.bytes() - referenceBytes[i]!);
      const delivered = readers.reduce((sum, r, i) => sum + (r.bytes - readerBytes[i]!), 0);
      const expected = readers.reduce((sum, r) => sum + referenceDelta[r.camera - 1]!, 0);
      if (steps.length === 0 && kind === 'rtsp-h265') deliveryScale = delivered / expected;
      const delivery = delivered / expected / deliveryScale;
      sourceKbps = (referenceDelta.reduce((a, b) => a + b, 0) / CAMERAS / (elapsed / 1000)) * 8 / 1000;
      const keepsUp = refused === 0 && delivery >= KEEPS_UP_DELIVERY && totalPct < KEEPS_UP_CPU_PCT;
      const step = {
        forwards: readers.length,
        refused,
        deliveryPct: round1(delivery * 100),
        deliveredMbps: round1((delivered * 8) / (elapsed / 1000) / 1e6),
        nodeCpuPct: round1(nodePct),
        relaysCpuPct: round1(totalPct - nodePct),
        totalCpuPct: round1(totalPct),
        cpuPerForwardPct: Math.round((totalPct / readers.length) * 100) / 100,
        simulatorCpuPct: round1(simulatorPct),
        harnessCpuPct: round1(harnessPct),
        // Everything that ran on each core (other users' processes included): a falling step whose
        // node core is saturated by others measured the machine, not the node.
        coresBusyPct: coresBusyPct.join('/'),
        keepsUp,
      };
      steps.push(step);
      log(`N=${target}: ${JSON.stringify(step)}`);
      if (!keepsUp) break;
      carried = readers.length;
      perForwardPct = totalPct / readers.length;
    }
    for (const reader of readers) reader.req.destroy();
    await node.stop();
    cleanups.shift();

    // Baseline: one plain ffmpeg relay per channel on the measured core, reading to nowhere.
    const plain = Array.from({ length: BASELINE_CHANNELS }, (_, i) => ffmpegCopyReader(cameraUrl((i % CAMERAS) + 1), { core: MEASURED_CORE }));
    cleanups.unshift(async () => void (await Promise.all(plain.map((p) => stopChild(p.child)))));
    await Promise.all(plain.map((p) => p.firstByte));
    await sleep(WARMUP_MS);
    const plainPids = plain.map((p) => p.child.pid!);
    const before = cpuOf(plainPids);
    const plainBytes = plain.map((p) => p.bytes());
    const started = performance.now();
    await sleep(WINDOW_MS);
    const elapsed = performance.now() - started;
    const plainPct = pct(cpuDelta(before, cpuOf(plainPids)), elapsed);
    const plainPerChannelPct = plainPct / BASELINE_CHANNELS;
    const plainMbps = (plain.reduce((sum, p, i) => sum + p.bytes() - plainBytes[i]!, 0) * 8) / (elapsed / 1000) / 1e6;
    const plainCapacity = Math.floor(KEEPS_UP_CPU_PCT / plainPerChannelPct);
    log(`baseline: ${BASELINE_CHANNELS} plain ffmpeg -c copy relays use ${round1(plainPct)} % of a core (${plainPerChannelPct.toFixed(2)} % each, ${round1(plainMbps)} Mbit/s out) → ~${plainCapacity} per core at ${KEEPS_UP_CPU_PCT} %`);

    const projected = Math.floor(KEEPS_UP_CPU_PCT / perForwardPct);
    log(`CPU projection: ${KEEPS_UP_CPU_PCT} % of a core / ${perForwardPct.toFixed(2)} % per forward → ~${projected} forwards per core if the core were the limit`);
    const nodesFor3000 = carried > 0 ? Math.ceil(TARGET_FORWARDS / carried) : NaN;
    const gbps = (TARGET_FORWARDS * sourceKbps) / 1e6;
    log(`source: ${round1(sourceKbps)} kbit/s per camera (measured by the direct readers)`);
    log(`one media node on one core carries ${carried} forwards (${perForwardPct.toFixed(2)} % CPU each, node + relays); ${TARGET_FORWARDS} forwards → ${nodesFor3000} such nodes (cores); ` +
      `${round1(gbps)} Gbit/s in from cameras and ${round1(gbps)} Gbit/s out to one viewer each`);
    // The same comparison by CPU alone: what the step criterion cannot show once the harness core (simulator
    // and readers) is the limit before the measured one is.
    const cpuRatio = Math.round((plainPerChannelPct / perForwardPct) * 100) / 100;
    log(`CPU per forward ${perForwardPct.toFixed(2)} % vs ${plainPerChannelPct.toFixed(2)} % per ffmpeg relay: ${cpuRatio}× fewer CPU per forward`);
    return {
      kind,
      carried,
      baseline: plainCapacity,
      cpuRatio,
      cpuPerForwardPct: Math.round(perForwardPct * 100) / 100,
      cpuProjectedForwardsPerCore: projected,
      baselineCpuPerChannelPct: Math.round(plainPerChannelPct * 100) / 100,
      sourceKbps: Math.round(sourceKbps),
      nodesFor3000,
      gbitPerSecondIn3000: Math.round(gbps * 100) / 100,
      gbitPerSecondOut3000OneViewerEach: Math.round(gbps * 100) / 100,
      pinned: pinnable,
      steps,
    };
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}
