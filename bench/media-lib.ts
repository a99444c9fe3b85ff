/**
 * Media bench plumbing: the camera simulator and media nodes as child processes (optionally pinned to
 * a core with taskset), plain ffmpeg readers as the baseline, and CPU accounting that includes a
 * process's children (a media node's relays are ffmpeg processes of their own).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { ffmpegPath } from '../src/media/ffmpeg.js';
import { cpuSeconds, root } from './lib.js';

export const hasTaskset = spawnSync('taskset', ['-V']).status === 0;

/** `taskset -c <core>` in front of a command when taskset exists and a core is asked for. */
function pinned(core: number | undefined, command: string, args: string[]): [string, string[]] {
  return core !== undefined && hasTaskset ? ['taskset', ['-c', String(core), command, ...args]] : [command, args];
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill(signal);
  });
}

/** Resolves once the child prints a line matching `pattern`; rejects (and kills it) if it exits or stalls. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} not ready in ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!pattern.test(line)) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface BrokerBenchServer<T> {
  child: ChildProcess;
  info: T;
  stop(): Promise<void>;
}

/**
 * bench/servers/broker.ts with an embedded media node. Not lib.ts's startServer: the media node child
 * shares the broker's stdout and prints its own JSON ready line first, so the broker's line is picked
 * by a field only it has.
 */
export async function startBrokerServer<T>(env: Record<string, string>): Promise<BrokerBenchServer<T>> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/servers/broker.ts'], {
    cwd: root,
    env: { ...process.env, MEDIA_LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('bench broker not ready in 120 s'));
    }, 120_000);
    child.once('exit', (code) => reject(new Error(`bench broker exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{') || !line.includes('"token"')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as T);
    });
  });
  return { child, info, stop: () => stopChild(child) };
}

export interface SimulatorProcess {
  child: ChildProcess;
  /** rtmp://127.0.0.1:<port>/cam, camera n at `${baseUrl}/${n}`. */
  baseUrl: string;
  /** rtsp://127.0.0.1:<port>/cam: the same H.264 cameras over RTSP (with `h265Rtsp`). */
  rtspBaseUrl?: string;
  /** rtsp://127.0.0.1:<port>/cam265: the H.265 cameras (with `h265Rtsp`). */
  h265RtspBaseUrl?: string;
  stop(): Promise<void>;
}

/** `npm run simulate` as a child; its camera publishers (ffmpeg) inherit the core it is pinned to. */
/**
 * `h265Rtsp`: the simulator also serves every camera over RTSP (`rtspBaseUrl`) and `cameras` H.265 cameras
 * (`h265RtspBaseUrl`).
 */
export async function startSimulatorProcess(cameras: number, rtmpPort: number, core?: number, h265Rtsp?: { rtspPort: number }): Promise<SimulatorProcess> {
  const [command, args] = pinned(core, process.execPath, [
    '--import',
    'tsx',
    'src/media/simulator-main.ts',
    '--cameras',
    String(cameras),
    '--rtmp-port',
    String(rtmpPort),
    ...(h265Rtsp ? ['--h265-cameras', String(cameras), '--rtsp-port', String(h265Rtsp.rtspPort)] : []),
  ]);
  const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  await waitForLine(child, new RegExp(`^rtmp://.*/cam/${cameras}$`), 'camera simulator');
  const rtsp = h265Rtsp ? `rtsp://127.0.0.1:${h265Rtsp.rtspPort}` : undefined;
  return {
    child,
    baseUrl: `rtmp://127.0.0.1:${rtmpPort}/cam`,
    ...(rtsp ? { rtspBaseUrl: `${rtsp}/cam`, h265RtspBaseUrl: `${rtsp}/cam265` } : {}),
    stop: () => stopChild(child),
  };
}

export interface MediaNodeBenchProcess {
  child: ChildProcess;
  /** Process id of the node itself (under taskset, the child pid is the node: taskset execs it). */
  pid: number;
  controlUrl: string;
  playBaseUrl: string;
  control(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startMediaNodeProcess(
  env: { rtmpPort: number; httpPort: number; controlPort: number; controlSecret: string; playSecret: string; maxForwards: number },
  core?: number,
): Promise<MediaNodeBenchProcess> {
  // BENCH_PROFILE=<dir>: a V8 CPU profile of the node, written to <dir> when it exits (media-capacity.ts).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const [command, args] = pinned(core, process.execPath, [...profile, '--import', 'tsx', 'src/media/media-node-main.ts']);
  const child = spawn(command, args, {
    cwd: root,
    env: {
      ...process.env,
      MEDIA_NODE_ID: 'bench-node',
      MEDIA_RTMP_PORT: String(env.rtmpPort),
      MEDIA_HTTP_PORT: String(env.httpPort),
      MEDIA_CONTROL_PORT: String(env.controlPort),
      MEDIA_CONTROL_SECRET: env.controlSecret,
      MEDIA_PLAY_SECRET: env.playSecret,
      MEDIA_MAX_FORWARDS: String(env.maxForwards),
      MEDIA_SOURCE_TIMEOUT_MS: '10000',
      MEDIA_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await waitForLine(child, /"event":"ready"/, 'media node');
  const controlUrl = `http://127.0.0.1:${env.controlPort}`;
  return {
    child,
    pid: child.pid!,
    controlUrl,
    playBaseUrl: `http://127.0.0.1:${env.httpPort}`,
    async control(method, path, body) {
      const res = await fetch(`${controlUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${env.controlSecret}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    stop: () => stopChild(child),
  };
}

/**
 * `ffmpeg -i <source> -c copy -f flv pipe:1`: what one plain relay process costs; counts its output bytes.
 * `flushPackets` writes each packet out at once instead of filling ffmpeg's 32 KB output buffer first,
 * so the first output byte marks when ffmpeg had media, not when its buffer filled.
 */
export function ffmpegCopyReader(
  sourceUrl: string,
  options: { core?: number; flushPackets?: boolean } = {},
): { child: ChildProcess; bytes(): number; firstByte: Promise<number> } {
  // ffmpeg cannot put H.265 into FLV: an RTSP (H.265) source is copied into MPEG-TS instead, as cheap.
  const rtsp = sourceUrl.startsWith('rtsp:');
  const output = [...(options.flushPackets ? ['-flush_packets', '1'] : []), '-f', rtsp ? 'mpegts' : 'flv', 'pipe:1'];
  const input = rtsp ? ['-rtsp_transport', 'tcp', '-i', sourceUrl] : ['-i', sourceUrl];
  const [command, args] = pinned(options.core, ffmpegPath, ['-hide_banner', '-nostdin', '-loglevel', 'error', ...input, '-c', 'copy', ...output]);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let bytes = 0;
  const firstByte = new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', () => resolve(performance.now()));
    child.once('exit', (code) => reject(new Error(`ffmpeg reader exited (${code}) before any output`)));
  });
  firstByte.catch(() => undefined);
  child.stdout!.on('data', (chunk: Buffer) => (bytes += chunk.length));
  return { child, bytes: () => bytes, firstByte };
}

/** Direct children of a process, from /proc (a media node's ffmpeg relays). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.split(') ')[1]!.split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // The process ended between readdir and read.
    }
  }
  return out;
}

/** CPU seconds of each pid, skipping ones that ended. */
export function cpuOf(pids: number[]): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const pid of pids) {
    try {
      cpu.set(pid, cpuSeconds(pid));
    } catch {
      // Gone: its CPU is no longer readable; windows only count processes alive at both ends.
    }
  }
  return cpu;
}

/** CPU seconds used between two samples by the processes present in both. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, end] of after) {
    const start = before.get(pid);
    if (start !== undefined) sum += end - start;
  }
  return sum;
}

/** Per-core jiffies from /proc/stat: [busy, total] for each core, to see what else ran on a core. */
export function coreTimes(): Array<[number, number]> {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((line) => /^cpu\d+ /.test(line))
    .map((line) => {
      const [user, nice, system, idle, iowait, irq, softirq, steal] = line.split(/\s+/).slice(1, 9).map(Number) as number[];
      const busy = user! + nice! + system! + irq! + softirq! + steal!;
      return [busy, busy + idle! + iowait!];
    });
}

/** Busy percentage of each core between two coreTimes() samples. */
export function coreBusyPct(before: Array<[number, number]>, after: Array<[number, number]>): number[] {
  return after.map(([busy, total], i) => {
    const [busy0, total0] = before[i]!;
    return Math.round(((busy - busy0) / Math.max(1, total - total0)) * 1000) / 10;
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/** Milliseconds from `since` to the first body byte of an HTTP-FLV play (the viewer's first frame). */
export function firstBodyByte(url: string, since: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      if (res.statusCode !== 200) {
        req.destroy();
        reject(new Error(`play answered ${res.statusCode}`));
        return;
      }
      res.once('data', () => {
        resolve(performance.now() - since);
        req.destroy();
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no FLV byte within 15 s')));
    req.once('error', reject);
    req.end();
  });
}
